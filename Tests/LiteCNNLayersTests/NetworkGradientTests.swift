import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// A whole tiny network trained through the cross-entropy loss: every derivative of the loss with respect to the
/// input and to every parameter, by backward, against central finite differences of the loss itself.
final class NetworkGradientTests: XCTestCase {
    func makeTinyNetwork() -> Sequential {
        WeightInitialization.seed(2024)
        let block = Sequential(named: [
            ("dw", Conv2D(4, 4, kernelSize: 3, padding: 1, groups: 4, bias: false)),
            ("bn", BatchNorm2D(4)),
            ("act", HardSwish()),
            ("se", SqueezeExcitation(inputChannels: 4, squeezeChannels: 2)),
        ])
        return Sequential(named: [
            ("conv", Conv2D(3, 4, kernelSize: 3, padding: 1)),
            ("bn", BatchNorm2D(4)),
            ("relu", ReLU()),
            ("pool", MaxPool2D(kernelSize: 3, stride: 2, padding: 1)),
            ("block", Residual(block)),
            ("gap", GlobalAvgPool()),
            ("fc", Linear(4, 3)),
        ])
    }

    func testWholeNetworkGradientThroughLoss() {
        let net = makeTinyNetwork()
        let input = randomTensor([2, 7, 7, 3], seed: 111)
        let labels = [2, 0]
        let criterion = SoftmaxCrossEntropy(labelSmoothing: 0.1)
        net.train()
        func loss(_ x: Tensor) -> Double { Double(criterion.loss(logits: net.forward(x), labels: labels)) }

        net.zeroGradients()
        let logits = net.forward(input)
        XCTAssertEqual(logits.shape, [2, 3])
        _ = criterion.loss(logits: logits, labels: labels)
        let gradInput = net.backward(criterion.gradient())

        let h: Float = 1e-3
        var worst: Float = 0, worstPlace = "", checked = 0
        func compare(_ analytic: Float, _ numeric: Float, _ place: String) {
            let error = abs(analytic - numeric) / max(abs(analytic), abs(numeric), 1e-2)
            checked += 1
            if error > worst { worst = error; worstPlace = "\(place): analytic \(analytic), numeric \(numeric)" }
        }
        for i in 0..<input.count {
            var plus = input, minus = input
            plus.scalars[i] += h
            minus.scalars[i] -= h
            compare(gradInput.scalars[i], Float((loss(plus) - loss(minus)) / Double(2 * h)), "input[\(i)]")
        }
        let parameters = net.namedParameters().filter { $0.parameter.isTrainable }
        XCTAssertEqual(parameters.count, 13)
        for (name, p) in parameters {
            let analytic = p.gradient
            for i in 0..<p.count {
                let original = p.value.scalars[i]
                p.value.scalars[i] = original + h
                let lp = loss(input)
                p.value.scalars[i] = original - h
                let lm = loss(input)
                p.value.scalars[i] = original
                compare(analytic.scalars[i], Float((lp - lm) / Double(2 * h)), "\(name)[\(i)]")
            }
        }
        XCTAssertGreaterThan(checked, 450)
        XCTAssertLessThan(worst, 3e-2, "worst of \(checked) derivatives at \(worstPlace)")
    }
}
