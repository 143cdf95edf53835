import LiteCNNTensor
import XCTest

/// Uniform random floats in `range`, reproducible by seed.
func randomFloats(_ count: Int, seed: UInt64, range: ClosedRange<Float> = -1...1) -> [Float] {
    var generator = SeededGenerator(seed: seed)
    return (0..<count).map { _ in range.lowerBound + (range.upperBound - range.lowerBound) * generator.nextUnit() }
}

/// Runs `body` once per instruction-set level this CPU supports (AVX-512, AVX2, portable), restoring afterwards.
func forEachInstructionSet(_ body: (_ level: Int) throws -> Void) rethrows {
    let detected = Kernels.limitInstructionSet(to: 99)
    defer { Kernels.limitInstructionSet(to: 99) }
    for level in stride(from: detected, through: 0, by: -1) {
        XCTAssertEqual(Kernels.limitInstructionSet(to: level), level)
        try body(level)
    }
}

/// Asserts `actual ≈ expected` elementwise: `|a − e| ≤ 1e-4·√depth·max(1, |e|)` where `depth` is the length of the
/// dot products that produced the values.
func assertClose(_ actual: [Float], _ expected: [Float], depth: Int, _ message: @autoclosure () -> String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.count, expected.count, "count: \(message())", file: file, line: line)
    let tolerance = 1e-4 * Float(max(1, depth)).squareRoot()
    var worst: Float = 0, worstIndex = -1
    for i in 0..<min(actual.count, expected.count) {
        let error = abs(actual[i] - expected[i]) / max(1, abs(expected[i]))
        if !(error <= worst) { worst = error; worstIndex = i }
    }
    if worstIndex >= 0 && !(worst <= tolerance) {
        XCTFail("\(message()): worst relative error \(worst) > \(tolerance) at \(worstIndex): "
                + "\(actual[worstIndex]) vs \(expected[worstIndex])", file: file, line: line)
    }
}
