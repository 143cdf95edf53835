import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class RegularizationTests: XCTestCase {
    func testDropoutIsIdentityInInference() {
        let dropout = Dropout(probability: 0.5)
        dropout.eval()
        let x = randomTensor([4, 10], seed: 71)
        XCTAssertEqual(dropout.forward(x), x)
    }

    func testDropoutKeepsAboutOneMinusPWithInvertedScaling() {
        let p: Float = 0.3
        let dropout = Dropout(probability: p, seed: 5)
        dropout.train()
        let x = Tensor(shape: [100, 200], repeating: 2)
        let y = dropout.forward(x)
        let kept = y.scalars.filter { $0 != 0 }
        XCTAssertTrue(kept.allSatisfy { abs($0 - 2 / (1 - p)) < 1e-5 }, "kept units must be scaled by 1/(1 − p)")
        let fraction = Double(kept.count) / Double(x.count)
        // 20 000 Bernoulli(0.7) draws: standard deviation ≈ 0.0032.
        XCTAssertEqual(fraction, 0.7, accuracy: 0.015)
        // The mean is preserved in expectation.
        XCTAssertEqual(Double(y.mean()), 2, accuracy: 0.05)
        // Backward applies the same mask.
        let dx = dropout.backward(Tensor(shape: [100, 200], repeating: 1))
        XCTAssertEqual(dx.scalars.map { $0 != 0 }, y.scalars.map { $0 != 0 })
    }

    func testDropoutMasksAreReproducibleBySeed() {
        let a = Dropout(probability: 0.5, seed: 9), b = Dropout(probability: 0.5, seed: 9)
        a.train(); b.train()
        let x = randomTensor([8, 8], seed: 72)
        XCTAssertEqual(a.forward(x), b.forward(x))
        let first = a.forward(x)
        a.reseed(9)
        _ = a.forward(x)
        XCTAssertEqual(a.forward(x), first)
        XCTAssertNotEqual(a.forward(x), first, "a new training forward draws a new mask")
    }

    func testDropoutGradientWithMaskHeldFixed() {
        let dropout = Dropout(probability: 0.4, seed: 3)
        dropout.holdsMask = true
        checkGradients(dropout, input: randomTensor([3, 12], seed: 73))
        XCTAssertTrue(dropout.mask.contains(0) && dropout.mask.contains { $0 > 1 }, "mask should drop some and keep some")
    }

    func testDropPathDropsWholeSamples() {
        let p: Float = 0.5
        let drop = DropPath(probability: p, seed: 11)
        drop.train()
        let x = Tensor(shape: [64, 2, 2, 3], repeating: 1)
        let y = drop.forward(x)
        var keptSamples = 0
        for b in 0..<64 {
            let sample = y.scalars[(b * 12)..<((b + 1) * 12)]
            XCTAssertTrue(sample.allSatisfy { $0 == 0 } || sample.allSatisfy { $0 == 2 }, "sample \(b) partly dropped")
            if sample.first == 2 { keptSamples += 1 }
        }
        XCTAssertGreaterThan(keptSamples, 16)
        XCTAssertLessThan(keptSamples, 48)
        drop.eval()
        XCTAssertEqual(drop.forward(x), x)
    }

    func testDropPathGradientWithMaskHeldFixed() {
        let drop = DropPath(probability: 0.5, seed: 4)
        drop.holdsMask = true
        checkGradients(drop, input: randomTensor([6, 2, 3, 2], seed: 74))
        XCTAssertTrue(drop.mask.contains(0) && drop.mask.contains(2), "mask \(drop.mask) should drop some and keep some")
    }
}
