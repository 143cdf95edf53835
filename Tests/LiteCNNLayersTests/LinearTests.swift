import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class LinearTests: XCTestCase {
    func testGradient() {
        checkGradients(Linear(7, 5), input: randomTensor([3, 7], seed: 41))
    }

    func testGradientWithoutBias() {
        let linear = Linear(4, 6, bias: false)
        XCTAssertEqual(linear.namedParameters().map(\.name), ["weight"])
        checkGradients(linear, input: randomTensor([2, 4], seed: 42))
    }

    func testForwardIsXTimesWeightTransposedPlusBias() {
        let linear = Linear(3, 2)
        linear.weight.value = Tensor(shape: [2, 3], scalars: [1, 2, 3, -1, 0, 1])
        linear.bias!.value = Tensor(shape: [2], scalars: [0.5, -0.5])
        let y = linear.forward(Tensor(shape: [2, 3], scalars: [1, 1, 1, 2, 0, -1]))
        XCTAssertEqual(y.shape, [2, 2])
        XCTAssertEqual(y.scalars, [6.5, -0.5, -0.5, -3.5])
        XCTAssertEqual(linear.weight.shape, [2, 3])
        XCTAssertEqual(linear.localMultiplyAdds(for: [2, 3]), 12)
        XCTAssertEqual(linear.parameterCount, 8)
    }

    func testDefaultInitializationBound() {
        let linear = Linear(16, 8)
        let bound: Float = 1 / 4
        XCTAssertTrue(linear.weight.value.scalars.allSatisfy { abs($0) <= bound })
        XCTAssertTrue(linear.bias!.value.scalars.allSatisfy { abs($0) <= bound })
        XCTAssertGreaterThan(linear.weight.value.scalars.map { abs($0) }.max()!, bound / 2)
    }
}
