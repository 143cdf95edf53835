/// Rounds `value` to the nearest multiple of `divisor`, never going below `minValue` (default `divisor`) nor more than
/// 10 % below `value` — the rule MobileNet V2/V3 and EfficientNet use for channel counts (torchvision's
/// `_make_divisible`). The one copy every architecture shares.
public func makeDivisible(_ value: Double, divisor: Int = 8, minValue: Int? = nil) -> Int {
    let minimum = minValue ?? divisor
    var rounded = max(minimum, Int(value + Double(divisor) / 2) / divisor * divisor)
    if Double(rounded) < 0.9 * value { rounded += divisor }
    return rounded
}
