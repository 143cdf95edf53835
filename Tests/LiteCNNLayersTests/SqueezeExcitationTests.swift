import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class SqueezeExcitationTests: XCTestCase {
    func testNamesFollowTorchvision() {
        let se = SqueezeExcitation(inputChannels: 8, squeezeChannels: 2)
        XCTAssertEqual(se.namedParameters().map(\.name), ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"])
        XCTAssertEqual(se.fc1.weight.shape, [2, 8, 1, 1])
        XCTAssertEqual(se.fc2.weight.shape, [8, 2, 1, 1])
        XCTAssertEqual(se.parameterCount, 8 * 2 + 2 + 2 * 8 + 8)
        var traced: [String] = []
        XCTAssertEqual(se.trace([2, 5, 5, 8], path: "se") { traced.append("\($0.path) \($0.outputShape)") }, [2, 5, 5, 8])
        XCTAssertEqual(traced, ["se.fc1 [2, 1, 1, 2]", "se.activation [2, 1, 1, 2]", "se.fc2 [2, 1, 1, 8]",
                                "se.scale_activation [2, 1, 1, 8]"])
    }

    func testForwardScalesChannelsByTheGate() {
        let se = SqueezeExcitation(inputChannels: 3, squeezeChannels: 2, activation: ReLU(), gate: HardSigmoid())
        let x = randomTensor([2, 4, 3, 3], seed: 81)
        let y = se.forward(x)
        let pooled = GlobalAvgPool().forward(x).reshaped(to: [2, 1, 1, 3])
        let scale = HardSigmoid().forward(se.fc2.forward(ReLU().forward(se.fc1.forward(pooled))))
        for b in 0..<2 { for h in 0..<4 { for w in 0..<3 { for c in 0..<3 {
            XCTAssertEqual(y[b, h, w, c], x[b, h, w, c] * scale[b, 0, 0, c], accuracy: 1e-6)
        } } } }
    }

    func testGradients() {
        checkGradients(SqueezeExcitation(inputChannels: 4, squeezeChannels: 2), input: randomTensor([2, 3, 3, 4], seed: 82))
        checkGradients(SqueezeExcitation(inputChannels: 6, squeezeChannels: 3, activation: SiLU(), gate: Sigmoid()),
                       input: randomTensor([2, 4, 2, 6], seed: 83))
        checkGradients(SqueezeExcitation(inputChannels: 5, squeezeChannels: 8, activation: ReLU(), gate: HardSigmoid()),
                       input: randomTensor([2, 3, 3, 5], seed: 84))
    }
}
