import LiteCNN
import XCTest
import _TestSupport

final class LinearQuantizationTests: XCTestCase {
    /// OIHW-like weights with some exact zeros.
    private func weights(_ shape: [Int], seed: UInt64, range: ClosedRange<Float> = -1...1) -> Tensor {
        var t = randomTensor(shape, seed: seed, range: range)
        for i in stride(from: 0, to: t.count, by: 7) { t.scalars[i] = 0 }
        return t
    }

    /// Checks `|x − x̂| ≤ scale/2` (plus Float rounding), integers in range, zeros exact.
    private func checkBound(_ x: Tensor, _ q: LinearQuantizedTensor, _ context: String) {
        let d = q.decoded().scalars
        let stride = q.groupStride
        for i in 0..<x.count {
            let g = q.axis == nil ? 0 : i / stride
            let scale = q.scales[g]
            XCTAssertTrue(q.range.contains(q.values[i]), "\(context): q out of range")
            XCTAssertLessThanOrEqual(abs(d[i] - x.scalars[i]), scale / 2 * (1 + 1e-5) + 1e-7,
                                     "\(context): element \(i) value \(x.scalars[i]) decoded \(d[i]) scale \(scale)")
            if x.scalars[i] == 0 { XCTAssertEqual(d[i], 0, "\(context): zero must decode exactly to 0") }
        }
        if q.symmetric { XCTAssertTrue(q.zeroPoints.allSatisfy { $0 == 0 }) }
    }

    func testErrorBoundAndExactZeroForEveryScheme() {
        let x = weights([6, 3, 3, 3], seed: 1, range: -0.7...1.9)
        for bits in 2...8 {
            for symmetric in [false, true] {
                for perChannel in [false, true] {
                    let q = LinearQuantization.quantize(x, bits: bits, symmetric: symmetric, perChannel: perChannel)
                    XCTAssertEqual(q.shape, x.shape)
                    XCTAssertEqual(q.axis, perChannel ? 0 : nil)
                    XCTAssertEqual(q.scales.count, perChannel ? 6 : 1)
                    checkBound(x, q, "bits \(bits) symmetric \(symmetric) perChannel \(perChannel)")
                }
            }
        }
    }

    func testAsymmetricCoversOneSidedRangesAndUsesTheFullGrid() {
        // All positive: the range is extended to contain 0, which stays exact; the maximum is representable.
        let x = Tensor(shape: [5], scalars: [0.5, 1, 2, 3, 0])
        let q = LinearQuantization.quantize(x, bits: 4, symmetric: false, perChannel: false)
        XCTAssertEqual(q.zeroPoints, [0])
        XCTAssertEqual(q.values.max(), 15)
        checkBound(x, q, "positive")
        // All negative.
        let n = Tensor(shape: [4], scalars: [-0.5, -1, -3, -2.2])
        let qn = LinearQuantization.quantize(n, bits: 3, symmetric: false, perChannel: false)
        XCTAssertEqual(qn.zeroPoints, [7])
        checkBound(n, qn, "negative")
        // Mixed, with an awkward ratio so the zero point needs rounding and the scale is widened.
        let m = Tensor(shape: [3], scalars: [-0.1234, 0.98765, 0])
        for bits in 2...8 {
            let qm = LinearQuantization.quantize(m, bits: bits, symmetric: false, perChannel: false)
            checkBound(m, qm, "mixed \(bits)")
            let p = qm.decoded().scalars
            XCTAssertEqual(p[2], 0)
        }
    }

    func testSymmetricScaleIsMaxAbsOverLevels() {
        let x = Tensor(shape: [4], scalars: [0.2, -1.27, 0.5, 0])
        let q = LinearQuantization.quantize(x, bits: 8, symmetric: true, perChannel: false)
        XCTAssertEqual(q.scales[0], 1.27 / 127, accuracy: 1e-9)
        XCTAssertEqual(q.values, [20, -127, 50, 0])
        XCTAssertEqual(q.range, -127...127)
    }

    func testPerChannelBeatsPerTensorOnChannelsOfDifferentRanges() {
        // Channel c has range ±10^(c−2): per-tensor quantization wipes out the small channels.
        var x = randomTensor([5, 4, 3, 3], seed: 2)
        let per = 36
        for c in 0..<5 { for i in 0..<per { x.scalars[c * per + i] *= Float(pow(10, Double(c - 2))) } }
        for symmetric in [false, true] {
            let t = LinearQuantization.quantize(x, bits: 8, symmetric: symmetric, perChannel: false).decoded().scalars
            let c = LinearQuantization.quantize(x, bits: 8, symmetric: symmetric, perChannel: true).decoded().scalars
            for ch in 0..<5 {
                var et = 0.0, ec = 0.0
                for i in (ch * per)..<((ch + 1) * per) {
                    et += Double(t[i] - x.scalars[i]) * Double(t[i] - x.scalars[i])
                    ec += Double(c[i] - x.scalars[i]) * Double(c[i] - x.scalars[i])
                }
                if ch < 4 { XCTAssertLessThan(ec, et, "channel \(ch) symmetric \(symmetric)") }
                else { XCTAssertLessThanOrEqual(ec, et * 1.0001 + 1e-12, "largest channel: same scale either way") }
            }
        }
    }

    func testDegenerateInputsNeverTrap() {
        let zeros = LinearQuantization.quantize(Tensor(shape: [2, 3]), bits: 4, symmetric: false, perChannel: true)
        XCTAssertEqual(zeros.decoded().scalars, [Float](repeating: 0, count: 6))
        XCTAssertEqual(zeros.scales, [1, 1])
        let empty = LinearQuantization.quantize(Tensor(shape: [0, 3]), bits: 8, symmetric: true, perChannel: true)
        XCTAssertEqual(empty.values, [])
        let bad = LinearQuantization.quantize(Tensor(shape: [4], scalars: [.nan, .infinity, -.infinity, 1]), bits: 8,
                                              symmetric: false, perChannel: false)
        let d = bad.decoded().scalars
        XCTAssertEqual(d[0], 0)
        XCTAssertEqual(d[1], 1, accuracy: 1e-6)
        XCTAssertEqual(d[2], 0)
        XCTAssertEqual(d[3], 1, accuracy: 1e-6)
    }

    func testFakeQuantizeMatchesDecode() {
        let x = weights([3, 10], seed: 3, range: -2...5)
        let p = LinearQuantization.parameters(min: x.scalars.min()!, max: x.scalars.max()!, bits: 8, symmetric: false)
        let q = LinearQuantization.quantize(x, bits: 8, symmetric: false, perChannel: false)
        XCTAssertEqual(q.scales, [p.scale])
        XCTAssertEqual(q.zeroPoints, [p.zeroPoint])
        var y = x.scalars
        y.withUnsafeMutableBufferPointer { LinearQuantization.fakeQuantize($0, p) }
        XCTAssertEqual(y, q.decoded().scalars)
    }
}
