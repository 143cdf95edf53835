import Foundation
import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// Activations: values at chosen points (including PyTorch's kink conventions) and gradient checks away from kinks.
final class ActivationTests: XCTestCase {
    /// Values spread over ±8 on a grid that stays ≥ 0.05 from every kink (0, ±3, 6), NHWC.
    let spread = spacedTensor([2, 4, 4, 5], seed: 21, spacing: 0.1)

    func testGradientsAwayFromKinks() {
        let layers: [any Layer] = [ReLU(), ReLU6(), Sigmoid(), HardSigmoid(), HardSwish(), SiLU(), Identity()]
        for layer in layers {
            let report = checkGradients(layer, input: spread, epsilon: 1e-2, tolerance: 2e-3, samples: 160)
            XCTAssertGreaterThanOrEqual(report.checked, 160, "\(layer.typeName)")
        }
    }

    func testValues() {
        let x = Tensor(shape: [1, 9], scalars: [-4, -3, -1, 0, 0.5, 3, 4, 6, 7])
        assertClose(ReLU().forward(x), Tensor(shape: [1, 9], scalars: [0, 0, 0, 0, 0.5, 3, 4, 6, 7]))
        assertClose(ReLU6().forward(x), Tensor(shape: [1, 9], scalars: [0, 0, 0, 0, 0.5, 3, 4, 6, 6]))
        assertClose(HardSigmoid().forward(x),
                    Tensor(shape: [1, 9], scalars: [0, 0, 2 / 6, 0.5, 3.5 / 6, 1, 1, 1, 1]))
        assertClose(HardSwish().forward(x),
                    Tensor(shape: [1, 9], scalars: [0, 0, -2 / 6, 0, 0.5 * 3.5 / 6, 3, 4, 6, 7]))
        let sigmoid = x.scalars.map { 1 / (1 + exp(-$0)) }
        assertClose(Sigmoid().forward(x), Tensor(shape: [1, 9], scalars: sigmoid))
        assertClose(SiLU().forward(x), Tensor(shape: [1, 9], scalars: zip(x.scalars, sigmoid).map { $0 * $1 }))
        XCTAssertTrue(Swish.self == SiLU.self)
    }

    /// PyTorch's derivatives at the kinks: relu'(0) = 0, relu6' = 0 at 0 and 6, hardsigmoid' = 0 at ±3,
    /// hardswish'(−3) = −1/2 and hardswish'(3) = 3/2.
    func testDerivativesAtKinksFollowPyTorch() {
        func derivative(_ layer: any Layer, _ values: [Float]) -> [Float] {
            layer.train()
            let x = Tensor(shape: [values.count], scalars: values)
            _ = layer.forward(x)
            return layer.backward(Tensor(shape: [values.count], repeating: 1)).scalars
        }
        XCTAssertEqual(derivative(ReLU(), [0, 1, -1]), [0, 1, 0])
        XCTAssertEqual(derivative(ReLU6(), [0, 6, 3, 7]), [0, 0, 1, 0])
        XCTAssertEqual(derivative(HardSigmoid(), [-3, 3, 0, 4]), [0, 0, 1 / 6, 0])
        let hardSwish = derivative(HardSwish(), [-3, 3, -4, 4, 0])
        XCTAssertEqual(hardSwish[0], -0.5, accuracy: 1e-6)
        XCTAssertEqual(hardSwish[1], 1.5, accuracy: 1e-6)
        XCTAssertEqual(hardSwish[2], 0)
        XCTAssertEqual(hardSwish[3], 1)
        XCTAssertEqual(hardSwish[4], 0.5, accuracy: 1e-6)
    }

    func testLargeTensorsSplitAcrossThreadsGiveTheSameResult() {
        let x = randomTensor([4, 32, 32, 24], seed: 22, range: -5...5)
        let layer = HardSwish()
        let y = layer.forward(x)
        for i in stride(from: 0, to: x.count, by: 997) {
            let v = x.scalars[i]
            XCTAssertEqual(y.scalars[i], v * min(max(v + 3, 0), 6) / 6, accuracy: 1e-6)
        }
    }

    /// Sigmoid and SiLU use a polynomial exp: compare with the library's over a dense sweep, including saturation.
    func testSigmoidAndSiLUMatchLibraryExp() {
        let values = stride(from: Float(-110), through: 110, by: 0.0137).map { $0 }
        let x = Tensor(shape: [values.count], scalars: values)
        let sigmoid = Sigmoid().forward(x), silu = SiLU().forward(x)
        for (i, v) in values.enumerated() {
            let reference = Float(1 / (1 + Foundation.exp(-Double(v))))
            XCTAssertEqual(sigmoid.scalars[i], reference, accuracy: 1e-6 + 2e-6 * reference, "sigmoid(\(v))")
            XCTAssertEqual(silu.scalars[i], v * reference, accuracy: 1e-6 + 2e-6 * abs(v * reference), "silu(\(v))")
        }
        XCTAssertEqual(Softmax().forward(Tensor(shape: [1, 2], scalars: [0, -200])).scalars, [1, 0])
    }

    func testShapeAndInferenceForward() {
        let relu = ReLU()
        XCTAssertEqual(relu.outputShape(for: [2, 3, 4, 5]), [2, 3, 4, 5])
        XCTAssertEqual(relu.forward(Tensor(shape: [3], scalars: [-1, 0, 2])).scalars, [0, 0, 2])
    }
}
