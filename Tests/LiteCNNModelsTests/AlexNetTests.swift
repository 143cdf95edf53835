import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

final class AlexNetTests: XCTestCase {
    // torchvision numbers computed once with torch 2.15 + torchvision 0.29: `sum(p.numel() for p in m.parameters())` and
    // /work/shared/bench/macs.py's forward hook (conv: out.numel · in/groups · kh · kw; linear: in · out).

    func testParameterCountAndMultiplyAdds() {
        let model = AlexNet()
        XCTAssertEqual(model.parameterCount, 61_100_840)
        XCTAssertEqual(model.multiplyAdds(for: [1, 224, 224, 3]), 714_188_480)
        XCTAssertEqual(model.multiplyAdds(for: [1, 127, 127, 3]), 254_835_392)
    }

    func testParameterNamesAndShapesMatchTorchvision() {
        ArchitectureChecks.assertStateDict(AlexNet(), equals: "alexnet")
    }

    func testShapesAtTwoResolutions() {
        // torchvision features output: 1×256×6×6 at 224, 1×256×3×3 at 127, 1×256×1×1 at 63 (the smallest that works).
        let model = AlexNet()
        for (side, spatial) in [(224, 6), (127, 3), (63, 1)] {
            let shapes = ArchitectureChecks.tracedShapes(model, input: [1, side, side, 3])
            XCTAssertEqual(shapes["features.12"], [1, spatial, spatial, 256], "at \(side)")
            XCTAssertEqual(shapes["avgpool"], [1, 6, 6, 256])
            XCTAssertEqual(shapes["flatten"], [1, 9216])
            XCTAssertEqual(shapes["classifier.6"], [1, 1000])
        }
    }

    func testForwardOnSmallImage() {
        ArchitectureChecks.assertForward(AlexNet(classCount: 10), input: [1, 64, 64, 3], expected: [1, 10])
    }

    func testClassCountAndGrayscaleInput() throws {
        // torchvision alexnet(num_classes=10) with a 1-channel first conv.
        let model = try ArchitectureChecks.build(AlexNet.zooEntries, "alexnet", ModelOptions(classCount: 10, inputChannels: 1))
        XCTAssertEqual(model.parameterCount, 57_029_322)
        XCTAssertEqual(model.outputShape(for: [2, 224, 224, 1]), [2, 10])
        XCTAssertEqual(model.namedParameters().first { $0.name == "features.0.weight" }?.parameter.shape, [64, 1, 11, 11])
    }
}
