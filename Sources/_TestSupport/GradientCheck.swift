import LiteCNN
import XCTest

/// Random tensors for tests, reproducible by seed.
public func randomTensor(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> Tensor {
    var g = SeededGenerator(seed: seed)
    return Tensor(shape: shape, unsafeUninitialized: { out in
        for i in 0..<out.count { out[i] = range.lowerBound + (range.upperBound - range.lowerBound) * g.nextUnit() }
    })
}

/// The worst disagreement found by `checkGradients`.
public struct GradientCheckReport: CustomStringConvertible {
    public var worstRelativeError: Float = 0
    public var worstPlace = ""
    public var checked = 0
    public var description: String { "checked \(checked) derivatives, worst relative error \(worstRelativeError) at \(worstPlace)" }
}

/// Compares `layer.backward` with central finite differences of `L = Σ output ⊙ R` (R fixed, random).
///
/// Checks up to `samples` elements of the input and of every trainable parameter. The error for one element is
/// `|analytic − numeric| / max(1, |analytic|, |numeric|)` (absolute below 1, relative above).
/// The layer runs in training mode; stochastic layers must be made deterministic by the caller.
@discardableResult
public func checkGradients(_ layer: any Layer, input: Tensor, epsilon: Float = 1e-2, tolerance: Float = 2e-2,
                           samples: Int = 48, seed: UInt64 = 7,
                           file: StaticString = #filePath, line: UInt = #line) -> GradientCheckReport {
    layer.train()
    let probeOutput = layer.forward(input)
    let weights = randomTensor(probeOutput.shape, seed: seed ^ 0xABCD)
    func loss(_ x: Tensor) -> Double {
        let y = layer.forward(x)
        var s = 0.0
        for i in 0..<y.count { s += Double(y.scalars[i]) * Double(weights.scalars[i]) }
        return s
    }
    layer.zeroGradients()
    _ = layer.forward(input)
    let dx = layer.backward(weights)
    XCTAssertEqual(dx.shape, input.shape, "input gradient shape", file: file, line: line)
    var report = GradientCheckReport()
    var rng = SeededGenerator(seed: seed)
    func indices(_ n: Int) -> [Int] {
        n <= samples ? Array(0..<n) : (0..<samples).map { _ in Int(rng.next() % UInt64(n)) }
    }
    func record(_ analytic: Float, _ numeric: Float, _ place: String) {
        let err = abs(analytic - numeric) / max(1, abs(analytic), abs(numeric))
        report.checked += 1
        if err > report.worstRelativeError { report.worstRelativeError = err; report.worstPlace = "\(place) analytic \(analytic) numeric \(numeric)" }
    }
    for i in indices(input.count) {
        var plus = input, minus = input
        plus.scalars[i] += epsilon
        minus.scalars[i] -= epsilon
        let numeric = Float((loss(plus) - loss(minus)) / Double(2 * epsilon))
        record(dx.scalars[i], numeric, "input[\(i)]")
    }
    for (name, p) in layer.namedParameters() where p.isTrainable {
        let analytic = p.gradient
        for i in indices(p.count) {
            let original = p.value.scalars[i]
            p.value.scalars[i] = original + epsilon
            let lp = loss(input)
            p.value.scalars[i] = original - epsilon
            let lm = loss(input)
            p.value.scalars[i] = original
            record(analytic.scalars[i], Float((lp - lm) / Double(2 * epsilon)), "\(name)[\(i)]")
        }
    }
    XCTAssertLessThanOrEqual(report.worstRelativeError, tolerance, "gradient check: \(report)", file: file, line: line)
    XCTAssertGreaterThan(report.checked, 0, "gradient check compared nothing", file: file, line: line)
    return report
}

/// Asserts two tensors agree elementwise within `|a − b| ≤ absolute + relative·|b|`.
public func assertClose(_ a: Tensor, _ b: Tensor, absolute: Float = 1e-4, relative: Float = 1e-4, _ message: String = "",
                        file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.shape, b.shape, "shape \(message)", file: file, line: line)
    guard a.shape == b.shape else { return }
    var worst: Float = 0, at = 0
    for i in 0..<a.count {
        let excess = abs(a.scalars[i] - b.scalars[i]) - (absolute + relative * abs(b.scalars[i]))
        if excess > worst || a.scalars[i].isNaN != b.scalars[i].isNaN { worst = max(excess, worst); at = i }
    }
    XCTAssertLessThanOrEqual(worst, 0, "\(message): element \(at) is \(a.scalars[at]), expected \(b.scalars[at])", file: file, line: line)
}
