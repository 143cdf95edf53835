// Preprocessing and augmentation on single HWC images, with torchvision's semantics (`torchvision.transforms`):
// Resize (bilinear, align_corners = false, no antialias), CenterCrop, RandomCrop with zero padding, RandomResizedCrop
// (Szegedy et al., "Going deeper with convolutions", 2015 — the Inception crop), RandomHorizontalFlip, Normalize,
// ConvertChannels (gray ↔ RGB, ITU-R 601 luma like PIL), and the standard CIFAR and ImageNet recipes.
// Invalid parameters throw `DataArgumentError` from the initialisers; `apply` never fails on an image of a
// supported shape (check a pipeline against a shape with `validateTransforms`).
import LiteCNNTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// MARK: - Helpers

@inline(__always) private func imageDimensions(_ image: Tensor, _ name: String) -> (height: Int, width: Int, channels: Int) {
    precondition(image.rank == 3, "\(name): expects an HWC image [H, W, C], got shape \(image.shape)")
    return (image.shape[0], image.shape[1], image.shape[2])
}

/// Python's `round` (half to even), which torchvision's crop arithmetic uses.
@inline(__always) func pythonRound(_ value: Double) -> Int { Int(value.rounded(.toNearestOrEven)) }

/// The window `top..<top+height, left..<left+width` of `image`, zero where it falls outside the image.
func cropWithZeroFill(_ image: Tensor, top: Int, left: Int, height: Int, width: Int) -> Tensor {
    let (h, w, c) = imageDimensions(image, "crop")
    if top == 0, left == 0, height == h, width == w { return image }
    return image.scalars.withUnsafeBufferPointer { source in
        Tensor(shape: [height, width, c], layout: .plain) { out in
            for y in 0..<height {
                let sy = top + y
                let row = y * width * c
                if sy < 0 || sy >= h {
                    for i in row..<(row + width * c) { out[i] = 0 }
                    continue
                }
                for x in 0..<width {
                    let sx = left + x
                    let o = row + x * c
                    if sx < 0 || sx >= w {
                        for k in 0..<c { out[o + k] = 0 }
                    } else {
                        let s = (sy * w + sx) * c
                        for k in 0..<c { out[o + k] = source[s + k] }
                    }
                }
            }
        }
    }
}

/// Source index pairs and weights for one axis of a bilinear resize with `align_corners = false`
/// (PyTorch's `upsample_bilinear2d`): source coordinate `s = (d + 0.5) · in / out − 0.5`, clamped below at 0;
/// `i0 = ⌊s⌋`, `i1 = min(i0 + 1, in − 1)`, weight of `i1` = `s − i0`.
func bilinearAxis(input: Int, output: Int) -> (low: [Int], high: [Int], weight: [Float]) {
    var low = [Int](repeating: 0, count: output), high = low, weight = [Float](repeating: 0, count: output)
    let scale = Float(input) / Float(output)
    for d in 0..<output {
        let s = max(0, (Float(d) + 0.5) * scale - 0.5)
        let i0 = min(Int(s), input - 1)
        low[d] = i0
        high[d] = min(i0 + 1, input - 1)
        weight[d] = s - Float(i0)
    }
    return (low, high, weight)
}

/// Bilinear resize of the window `top..<top+height, left..<left+width` (inside the image) to `outHeight × outWidth`:
/// identical to cropping first and resizing the crop.
func resizeBilinear(_ image: Tensor, top: Int, left: Int, height: Int, width: Int,
                    outHeight: Int, outWidth: Int) -> Tensor {
    let (h, w, c) = imageDimensions(image, "resize")
    precondition(top >= 0 && left >= 0 && height >= 1 && width >= 1 && top + height <= h && left + width <= w,
                 "resize: window (\(top), \(left), \(height), \(width)) outside a \(h)×\(w) image")
    if height == outHeight, width == outWidth { return cropWithZeroFill(image, top: top, left: left, height: height, width: width) }
    let rows = bilinearAxis(input: height, output: outHeight), columns = bilinearAxis(input: width, output: outWidth)
    return image.scalars.withUnsafeBufferPointer { source in
        Tensor(shape: [outHeight, outWidth, c], layout: .plain) { out in
            for y in 0..<outHeight {
                let r0 = (top + rows.low[y]) * w, r1 = (top + rows.high[y]) * w, wy = rows.weight[y]
                for x in 0..<outWidth {
                    let c0 = left + columns.low[x], c1 = left + columns.high[x], wx = columns.weight[x]
                    let p00 = (r0 + c0) * c, p01 = (r0 + c1) * c, p10 = (r1 + c0) * c, p11 = (r1 + c1) * c
                    let o = (y * outWidth + x) * c
                    for k in 0..<c {
                        let upper = source[p00 + k] + (source[p01 + k] - source[p00 + k]) * wx
                        let lower = source[p10 + k] + (source[p11 + k] - source[p10 + k]) * wx
                        out[o + k] = upper + (lower - upper) * wy
                    }
                }
            }
        }
    }
}

private func positive(_ value: Int, _ name: String) throws {
    guard value >= 1 else { throw DataArgumentError(argument: name, reason: "must be at least 1, got \(value)") }
}

// MARK: - Resize

/// Bilinear resize (`torchvision.transforms.Resize(size, interpolation=BILINEAR, antialias=False)`, i.e.
/// `F.interpolate(mode="bilinear", align_corners=False)`), either to a fixed `height × width` or so that the shorter
/// side becomes `shorterSide` (the longer side becomes `⌊shorterSide · long / short⌋`, as torchvision's `Resize(int)`).
///
/// `[H, W, C] → [height, width, C]`. Output pixel `(y, x)` samples the input at `((y + 0.5)·H/height − 0.5,
/// (x + 0.5)·W/width − 0.5)`, clamped to the image, interpolating the four neighbours. No antialiasing filter is
/// applied when shrinking (torchvision ≥ 0.17 defaults to `antialias=True`; pass `antialias=False` to compare).
/// An image already of the target size is returned unchanged.
public struct Resize: ImageTransform {
    public enum Target: Sendable, Equatable {
        case size(height: Int, width: Int)
        case shorterSide(Int)
    }

    public let target: Target

    /// Resize to exactly `height × width`. Throws when either is below 1.
    public init(height: Int, width: Int) throws {
        try positive(height, "Resize height")
        try positive(width, "Resize width")
        target = .size(height: height, width: width)
    }

    /// Resize so that the shorter side is `shorterSide`, keeping the aspect ratio. Throws when it is below 1.
    public init(shorterSide: Int) throws {
        try positive(shorterSide, "Resize shorterSide")
        target = .shorterSide(shorterSide)
    }

    func outputSize(height: Int, width: Int) -> (Int, Int) {
        switch target {
        case .size(let h, let w): return (h, w)
        case .shorterSide(let s):
            if height <= width { return (s, max(1, Int(Double(s) * Double(width) / Double(height)))) }
            return (max(1, Int(Double(s) * Double(height) / Double(width))), s)
        }
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, _) = imageDimensions(image, "Resize")
        let (oh, ow) = outputSize(height: h, width: w)
        return resizeBilinear(image, top: 0, left: 0, height: h, width: w, outHeight: oh, outWidth: ow)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        switch target {
        case .size(let h, let w): return [h, w, inputShape[2]]
        case .shorterSide:
            guard inputShape[0] > 0, inputShape[1] > 0 else { return [-1, -1, inputShape[2]] }
            let (h, w) = outputSize(height: inputShape[0], width: inputShape[1])
            return [h, w, inputShape[2]]
        }
    }
}

// MARK: - Crops

/// The central `height × width` window (`torchvision.transforms.CenterCrop`): top = round((H − height) / 2),
/// left = round((W − width) / 2) with Python's half-to-even rounding. An image smaller than the crop is first padded
/// with zeros on both sides (left/top get ⌊deficit/2⌋), as torchvision does. `[H, W, C] → [height, width, C]`.
public struct CenterCrop: ImageTransform {
    public let height: Int
    public let width: Int

    /// A square `size × size` crop. Throws when `size < 1`.
    public init(size: Int) throws { try self.init(height: size, width: size) }

    /// A `height × width` crop. Throws when either is below 1.
    public init(height: Int, width: Int) throws {
        try positive(height, "CenterCrop height")
        try positive(width, "CenterCrop width")
        self.height = height
        self.width = width
    }

    /// The window's top-left corner in an `inputHeight × inputWidth` image (negative = zero padding).
    public func origin(inputHeight h: Int, inputWidth w: Int) -> (top: Int, left: Int) {
        func start(_ size: Int, _ crop: Int) -> Int {
            if size >= crop { return pythonRound(Double(size - crop) / 2) }
            return -((crop - size) / 2)
        }
        return (start(h, height), start(w, width))
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, _) = imageDimensions(image, "CenterCrop")
        let (top, left) = origin(inputHeight: h, inputWidth: w)
        return cropWithZeroFill(image, top: top, left: left, height: height, width: width)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { [height, width, inputShape[2]] }
}

/// A random `height × width` window after zero-padding every side by `padding` pixels
/// (`torchvision.transforms.RandomCrop(size, padding, pad_if_needed=True)`; the CIFAR recipe uses size 32, padding 4).
///
/// The padded image is `(H + 2p) × (W + 2p)`; top and left are uniform integers in `0...(H + 2p − height)` and
/// `0...(W + 2p − width)`. When the padded image is still smaller than the crop it is padded further with zeros on
/// both sides (torchvision's `pad_if_needed`), so `apply` never fails. `[H, W, C] → [height, width, C]`.
public struct RandomCrop: ImageTransform {
    public let height: Int
    public let width: Int
    public let padding: Int

    /// A square `size × size` crop after padding by `padding`. Throws when `size < 1` or `padding < 0`.
    public init(size: Int, padding: Int = 0) throws { try self.init(height: size, width: size, padding: padding) }

    public init(height: Int, width: Int, padding: Int = 0) throws {
        try positive(height, "RandomCrop height")
        try positive(width, "RandomCrop width")
        guard padding >= 0 else { throw DataArgumentError(argument: "RandomCrop padding", reason: "must be ≥ 0, got \(padding)") }
        self.height = height
        self.width = width
        self.padding = padding
    }

    /// The window's top-left corner in the unpadded image's coordinates (negative = inside the padding).
    public func origin(inputHeight h: Int, inputWidth w: Int, generator: inout SeededGenerator) -> (top: Int, left: Int) {
        func start(_ size: Int, _ crop: Int, _ g: inout SeededGenerator) -> Int {
            let padded = size + 2 * padding
            if padded < crop { return -padding - (crop - padded) / 2 }
            return Int.random(in: 0...(padded - crop), using: &g) - padding
        }
        let top = start(h, height, &generator)
        let left = start(w, width, &generator)
        return (top, left)
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, _) = imageDimensions(image, "RandomCrop")
        let (top, left) = origin(inputHeight: h, inputWidth: w, generator: &generator)
        return cropWithZeroFill(image, top: top, left: left, height: height, width: width)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { [height, width, inputShape[2]] }
}

/// torchvision's `RandomResizedCrop(size, scale, ratio)` (the Inception crop): pick a window covering a random
/// fraction of the area with a random aspect ratio, then resize it bilinearly to `height × width`.
///
/// Up to 10 attempts: area fraction `a ~ U(scale)`, aspect `r = exp(U(log ratio))` (width / height),
/// window `w = round(√(a·H·W·r))`, `h = round(√(a·H·W / r))`; accepted when `0 < w ≤ W` and `0 < h ≤ H`, at a uniform
/// random position. Otherwise the fallback is the central window with the image's own aspect ratio clamped to
/// `ratio`. Defaults are torchvision's: scale 0.08…1, ratio 3/4…4/3. `[H, W, C] → [height, width, C]`.
public struct RandomResizedCrop: ImageTransform {
    public let height: Int
    public let width: Int
    public let scale: ClosedRange<Double>
    public let ratio: ClosedRange<Double>

    /// A square `size × size` output. Throws when `size < 1`, `scale` is not within (0, 1] or `ratio` not positive.
    public init(size: Int, scale: ClosedRange<Double> = 0.08...1, ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) throws {
        try self.init(height: size, width: size, scale: scale, ratio: ratio)
    }

    public init(height: Int, width: Int, scale: ClosedRange<Double> = 0.08...1,
                ratio: ClosedRange<Double> = (3.0 / 4)...(4.0 / 3)) throws {
        try positive(height, "RandomResizedCrop height")
        try positive(width, "RandomResizedCrop width")
        guard scale.lowerBound > 0, scale.upperBound <= 1, scale.lowerBound.isFinite else {
            throw DataArgumentError(argument: "RandomResizedCrop scale", reason: "must lie in (0, 1], got \(scale)")
        }
        guard ratio.lowerBound > 0, ratio.upperBound.isFinite else {
            throw DataArgumentError(argument: "RandomResizedCrop ratio", reason: "must be positive and finite, got \(ratio)")
        }
        self.height = height
        self.width = width
        self.scale = scale
        self.ratio = ratio
    }

    /// The crop window `(top, left, height, width)` for an `inputHeight × inputWidth` image (torchvision's
    /// `RandomResizedCrop.get_params`).
    public func cropBox(inputHeight: Int, inputWidth: Int,
                        generator g: inout SeededGenerator) -> (top: Int, left: Int, height: Int, width: Int) {
        let area = Double(inputHeight * inputWidth)
        let logLow = log(ratio.lowerBound), logHigh = log(ratio.upperBound)
        for _ in 0..<10 {
            let target = area * Double.random(in: scale, using: &g)
            let aspect = exp(logLow == logHigh ? logLow : Double.random(in: logLow...logHigh, using: &g))
            let w = pythonRound((target * aspect).squareRoot())
            let h = pythonRound((target / aspect).squareRoot())
            if w > 0, w <= inputWidth, h > 0, h <= inputHeight {
                let top = Int.random(in: 0...(inputHeight - h), using: &g)
                let left = Int.random(in: 0...(inputWidth - w), using: &g)
                return (top, left, h, w)
            }
        }
        let inputRatio = Double(inputWidth) / Double(inputHeight)
        var w = inputWidth, h = inputHeight
        if inputRatio < ratio.lowerBound {
            h = max(1, min(inputHeight, pythonRound(Double(w) / ratio.lowerBound)))
        } else if inputRatio > ratio.upperBound {
            w = max(1, min(inputWidth, pythonRound(Double(h) * ratio.upperBound)))
        }
        return ((inputHeight - h) / 2, (inputWidth - w) / 2, h, w)
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, _) = imageDimensions(image, "RandomResizedCrop")
        let box = cropBox(inputHeight: h, inputWidth: w, generator: &generator)
        return resizeBilinear(image, top: box.top, left: box.left, height: box.height, width: box.width,
                              outHeight: height, outWidth: width)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { [height, width, inputShape[2]] }
}

// MARK: - Flip

/// Mirrors the image left–right with probability `probability` (`torchvision.transforms.RandomHorizontalFlip(p)`):
/// `out[y, x, c] = in[y, W − 1 − x, c]`. Draws exactly one number from the generator per image. Shape unchanged.
public struct RandomHorizontalFlip: ImageTransform {
    public let probability: Float

    /// Throws unless `0 ≤ probability ≤ 1`.
    public init(probability: Float = 0.5) throws {
        guard probability >= 0, probability <= 1 else {
            throw DataArgumentError(argument: "RandomHorizontalFlip probability", reason: "must be in [0, 1], got \(probability)")
        }
        self.probability = probability
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, c) = imageDimensions(image, "RandomHorizontalFlip")
        guard generator.nextUnit() < probability else { return image }
        return image.scalars.withUnsafeBufferPointer { source in
            Tensor(shape: [h, w, c], layout: .plain) { out in
                for y in 0..<h {
                    for x in 0..<w {
                        let o = (y * w + x) * c, s = (y * w + (w - 1 - x)) * c
                        for k in 0..<c { out[o + k] = source[s + k] }
                    }
                }
            }
        }
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { inputShape }
}

// MARK: - Normalize

/// Per-channel standardisation `out[y, x, c] = (in[y, x, c] − mean[c]) / std[c]`
/// (`torchvision.transforms.Normalize(mean, std)`). A single mean/std applies to every channel; otherwise their count
/// must equal the image's channels (checked by `validateTransforms`). Shape unchanged.
public struct Normalize: ImageTransform {
    public let mean: [Float]
    public let std: [Float]

    /// ImageNet statistics of RGB images in [0, 1] (what torchvision's pretrained models expect):
    /// mean (0.485, 0.456, 0.406), std (0.229, 0.224, 0.225).
    public static let imageNet = try! Normalize(mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225])

    /// The same statistics for grayscale: the ITU-R 601 weighted averages (0.299, 0.587, 0.114) of the RGB values,
    /// mean 0.459, std 0.226.
    public static let imageNetGray = try! Normalize(mean: [0.459], std: [0.226])

    /// `imageNet` for 3 channels, `imageNetGray` for 1.
    public static func imageNet(channels: Int) -> Normalize { channels == 1 ? imageNetGray : imageNet }

    /// Throws when the lists are empty, differ in length, or a std is not positive and finite (or a mean not finite).
    public init(mean: [Float], std: [Float]) throws {
        guard !mean.isEmpty, mean.count == std.count else {
            throw DataArgumentError(argument: "Normalize mean/std",
                                    reason: "need the same non-zero number of values, got \(mean.count) and \(std.count)")
        }
        guard std.allSatisfy({ $0 > 0 && $0.isFinite }), mean.allSatisfy(\.isFinite) else {
            throw DataArgumentError(argument: "Normalize mean/std", reason: "std must be positive and finite, got mean \(mean) std \(std)")
        }
        self.mean = mean
        self.std = std
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, c) = imageDimensions(image, "Normalize")
        precondition(mean.count == 1 || mean.count == c, "Normalize: \(mean.count) means for an image with \(c) channels")
        let means = mean.count == 1 ? [Float](repeating: mean[0], count: c) : mean
        let scales = (mean.count == 1 ? [Float](repeating: std[0], count: c) : std).map { 1 / $0 }
        return image.scalars.withUnsafeBufferPointer { source in
            Tensor(shape: [h, w, c], layout: .plain) { out in
                var i = 0
                for _ in 0..<(h * w) {
                    for k in 0..<c { out[i] = (source[i] - means[k]) * scales[k]; i += 1 }
                }
            }
        }
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { inputShape }
}

// MARK: - Channels

/// Converts between grayscale and RGB: 1 → 3 replicates the gray value (`Grayscale` inverse / PIL `convert("RGB")`),
/// 3 → 1 is ITU-R 601 luma `0.299 R + 0.587 G + 0.114 B` (PIL `convert("L")`, torchvision `Grayscale`). An image that
/// already has `channels` channels is returned unchanged. `[H, W, C] → [H, W, channels]`.
public struct ConvertChannels: ImageTransform {
    public let channels: Int

    /// Throws unless `channels` is 1 or 3.
    public init(to channels: Int) throws {
        guard channels == 1 || channels == 3 else {
            throw DataArgumentError(argument: "ConvertChannels channels", reason: "must be 1 or 3, got \(channels)")
        }
        self.channels = channels
    }

    public func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor {
        let (h, w, c) = imageDimensions(image, "ConvertChannels")
        if c == channels { return image }
        precondition(c == 1 || c == 3, "ConvertChannels: cannot convert \(c) channels")
        let pixels = h * w
        return image.scalars.withUnsafeBufferPointer { source in
            Tensor(shape: [h, w, channels], layout: .plain) { out in
                if channels == 3 {
                    for p in 0..<pixels { out[3 * p] = source[p]; out[3 * p + 1] = source[p]; out[3 * p + 2] = source[p] }
                } else {
                    for p in 0..<pixels {
                        out[p] = 0.299 * source[3 * p] + 0.587 * source[3 * p + 1] + 0.114 * source[3 * p + 2]
                    }
                }
            }
        }
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { [inputShape[0], inputShape[1], channels] }
}

// MARK: - Pipelines

/// Checks that `transforms` can run, in order, on images of `inputShape` (`[H, W, C]`; `H`/`W` may be `-1` when the
/// data set's sizes vary) and returns the final shape. Throws `DataArgumentError` when a `Normalize` has a different
/// number of values than the channels reaching it, or a `ConvertChannels` receives neither 1 nor 3 channels.
@discardableResult
public func validateTransforms(_ transforms: [any ImageTransform], inputShape: [Int]) throws -> [Int] {
    guard inputShape.count == 3, inputShape[2] >= 1 else {
        throw DataArgumentError(argument: "image shape", reason: "expected [H, W, C] with C ≥ 1, got \(inputShape)")
    }
    var shape = inputShape
    for (position, transform) in transforms.enumerated() {
        if let normalize = transform as? Normalize, normalize.mean.count != 1, normalize.mean.count != shape[2] {
            throw DataArgumentError(argument: "transform \(position) (Normalize)",
                                    reason: "has \(normalize.mean.count) mean/std values but the image has \(shape[2]) channels")
        }
        if let convert = transform as? ConvertChannels, shape[2] != convert.channels, shape[2] != 1, shape[2] != 3 {
            throw DataArgumentError(argument: "transform \(position) (ConvertChannels)",
                                    reason: "cannot convert \(shape[2]) channels to \(convert.channels)")
        }
        shape = transform.outputShape(for: shape)
    }
    return shape
}

/// Which augmentation recipe `StandardTransforms.training` uses (`litecnn train --augment`).
public enum Augmentation: String, CaseIterable, Sendable {
    /// Resize (shorter side) and centre crop only.
    case none
    /// The CIFAR recipe: random `res × res` crop after zero padding by `res / 8` (4 px at 32), then a horizontal
    /// flip with probability 0.5.
    case crop
    /// The ImageNet recipe: `RandomResizedCrop(res)` (scale 0.08…1, ratio 3/4…4/3), then a horizontal flip.
    case resizedCrop = "resized-crop"
}

/// The usual training and evaluation pipelines, ending in exactly `[resolution, resolution, channels]` whatever the
/// source images' size and channel count (1 or 3), including data sets whose `imageSize` is `nil`.
public enum StandardTransforms {
    /// `ConvertChannels(channels)`, then the `augmentation` recipe (see `Augmentation`; `none` and `crop` first bring
    /// the image to `resolution × resolution` with `Resize(shorterSide:)` + `CenterCrop`, which leave an image already
    /// of that size untouched), then `Normalize(mean, std)`.
    ///
    /// Preconditions: `resolution ≥ 1`, `channels` is 1 or 3, and `mean`/`std` are accepted by `Normalize(mean:std:)`
    /// with 1 or `channels` values. Check user input with `checkParameters` first (it throws instead).
    public static func training(resolution: Int, channels: Int, mean: [Float], std: [Float],
                                augmentation: Augmentation) -> [any ImageTransform] {
        do {
            try checkParameters(resolution: resolution, channels: channels, mean: mean, std: std)
            return try makeTraining(resolution: resolution, channels: channels, mean: mean, std: std, augmentation: augmentation)
        } catch {
            preconditionFailure("StandardTransforms.training: \(error)")
        }
    }

    /// Throws `DataArgumentError` naming `--resolution`, `--channels` or `--mean/--std` when `training` or
    /// `evaluation` would refuse these parameters.
    public static func checkParameters(resolution: Int, channels: Int, mean: [Float], std: [Float]) throws {
        guard resolution >= 1 else { throw DataArgumentError(argument: "--resolution", reason: "must be at least 1, got \(resolution)") }
        guard channels == 1 || channels == 3 else {
            throw DataArgumentError(argument: "--channels", reason: "must be 1 or 3, got \(channels)")
        }
        do { _ = try Normalize(mean: mean, std: std) } catch let error as DataArgumentError {
            throw DataArgumentError(argument: "--mean/--std", reason: error.reason)
        }
        guard mean.count == 1 || mean.count == channels else {
            throw DataArgumentError(argument: "--mean/--std", reason: "need 1 or \(channels) values, got \(mean.count)")
        }
    }

    private static func makeTraining(resolution: Int, channels: Int, mean: [Float], std: [Float],
                                     augmentation: Augmentation) throws -> [any ImageTransform] {
        var steps: [any ImageTransform] = [try ConvertChannels(to: channels)]
        switch augmentation {
        case .none:
            steps += [try Resize(shorterSide: resolution), try CenterCrop(size: resolution)]
        case .crop:
            steps += [try Resize(shorterSide: resolution), try CenterCrop(size: resolution),
                      try RandomCrop(size: resolution, padding: resolution / 8), try RandomHorizontalFlip()]
        case .resizedCrop:
            steps += [try RandomResizedCrop(size: resolution), try RandomHorizontalFlip()]
        }
        steps.append(try Normalize(mean: mean, std: std))
        return steps
    }

    /// `ConvertChannels(channels)`, `Resize(shorterSide: round(resolution / cropFraction))`, `CenterCrop(resolution)`,
    /// `Normalize(mean, std)`. `cropFraction` 1 (default) resizes the shorter side to `resolution` and crops only the
    /// excess of the longer side; 0.875 is the ImageNet convention (resize to 256, crop 224).
    ///
    /// Preconditions: those of `training`, and `0 < cropFraction ≤ 1`.
    public static func evaluation(resolution: Int, channels: Int, mean: [Float], std: [Float],
                                  cropFraction: Double = 1) -> [any ImageTransform] {
        precondition(cropFraction > 0 && cropFraction <= 1, "StandardTransforms.evaluation: cropFraction \(cropFraction) not in (0, 1]")
        do {
            try checkParameters(resolution: resolution, channels: channels, mean: mean, std: std)
            let resized = max(resolution, pythonRound(Double(resolution) / cropFraction))
            return [try ConvertChannels(to: channels), try Resize(shorterSide: resized),
                    try CenterCrop(size: resolution), try Normalize(mean: mean, std: std)]
        } catch {
            preconditionFailure("StandardTransforms.evaluation: \(error)")
        }
    }
}
