import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class ContainerTests: XCTestCase {
    func testSequentialGradientAndOrder() {
        let net = Sequential(Conv2D(3, 4, kernelSize: 3, padding: 1), BatchNorm2D(4), SiLU(), Conv2D(4, 2, kernelSize: 1))
        checkGradients(net, input: randomTensor([2, 4, 4, 3], seed: 91), tolerance: 1e-2)
    }

    func testNestedParameterNames() {
        let inner = Sequential(named: [("conv", Conv2D(4, 4, kernelSize: 1, bias: false)), ("bn", BatchNorm2D(4))])
        let net = Sequential(named: [
            ("features", Sequential(Conv2D(3, 4, kernelSize: 3, bias: false), BatchNorm2D(4), ReLU(),
                                    Residual(inner, bodyName: "block"))),
            ("classifier", Sequential(Dropout(probability: 0.2), Linear(4, 10))),
        ])
        XCTAssertEqual(net.namedParameters().map(\.name), [
            "features.0.weight",
            "features.1.weight", "features.1.bias", "features.1.running_mean", "features.1.running_var",
            "features.3.block.conv.weight",
            "features.3.block.bn.weight", "features.3.block.bn.bias", "features.3.block.bn.running_mean",
            "features.3.block.bn.running_var",
            "classifier.1.weight", "classifier.1.bias",
        ])
        let plain = Sequential(Conv2D(3, 4, kernelSize: 3), BatchNorm2D(4))
        let names = plain.namedParameters().map(\.name)
        XCTAssertTrue(names.contains("0.weight") && names.contains("1.running_mean"), "\(names)")
    }

    func testResidualWithIdentityShortcut() {
        let body = Sequential(Conv2D(3, 3, kernelSize: 3, padding: 1), BatchNorm2D(3), SiLU())
        let block = Residual(body)
        XCTAssertEqual(block.children.map(\.name), ["body"])
        checkGradients(block, input: randomTensor([2, 5, 5, 3], seed: 92))
        block.eval()
        let x = randomTensor([1, 5, 5, 3], seed: 93)
        assertClose(block.forward(x), body.forward(x) + x, absolute: 1e-6)
    }

    func testResidualWithProjectionShortcut() {
        let block = Residual(Sequential(Conv2D(2, 4, kernelSize: 3, stride: 2, padding: 1), BatchNorm2D(4)),
                             shortcut: Sequential(Conv2D(2, 4, kernelSize: 1, stride: 2), BatchNorm2D(4)),
                             bodyName: "conv", shortcutName: "downsample")
        XCTAssertEqual(block.outputShape(for: [2, 7, 7, 2]), [2, 4, 4, 4])
        XCTAssertEqual(block.children.map(\.name), ["conv", "downsample"])
        XCTAssertTrue(block.namedParameters().map(\.name).contains("downsample.1.running_var"))
        checkGradients(block, input: randomTensor([2, 7, 7, 2], seed: 94))
    }

    func testConcatJoinsBranchesOnChannels() {
        let concat = Concat([("expand1x1", Conv2D(4, 3, kernelSize: 1)), ("expand3x3", Conv2D(4, 5, kernelSize: 3, padding: 1)),
                             ("identity", Identity())])
        let x = randomTensor([2, 3, 3, 4], seed: 95)
        let y = concat.forward(x)
        XCTAssertEqual(y.shape, [2, 3, 3, 12])
        XCTAssertEqual(concat.outputShape(for: x.shape), [2, 3, 3, 12])
        let parts = y.split(axis: 3, sizes: [3, 5, 4])
        XCTAssertEqual(parts[2], x)
        XCTAssertEqual(parts[0], concat.branches[0].layer.forward(x))
        checkGradients(concat, input: x)
        // A SqueezeNet fire module: squeeze, then two expand branches.
        let fire = Sequential(named: [("squeeze", Conv2D(4, 2, kernelSize: 1)), ("squeeze_activation", SiLU()),
                                      ("expand", Concat([("expand1x1", Conv2D(2, 3, kernelSize: 1)),
                                                         ("expand3x3", Conv2D(2, 3, kernelSize: 3, padding: 1))]))])
        XCTAssertEqual(fire.outputShape(for: x.shape), [2, 3, 3, 6])
        checkGradients(fire, input: x)
    }

    func testTraceListsEveryLeaf() {
        let block = Residual(Sequential(Conv2D(3, 3, kernelSize: 3, padding: 1, groups: 3), BatchNorm2D(3)),
                             shortcut: Identity(), bodyName: "block", shortcutName: "skip")
        var paths: [String] = []
        _ = block.trace([1, 4, 4, 3], path: "layer1.0") { paths.append($0.path) }
        XCTAssertEqual(paths, ["layer1.0.block.0", "layer1.0.block.1", "layer1.0.skip"])
        XCTAssertEqual(block.multiplyAdds(for: [1, 4, 4, 3]), 4 * 4 * 3 * 9)
    }
}
