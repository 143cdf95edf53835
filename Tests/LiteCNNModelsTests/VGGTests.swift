import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

final class VGGTests: XCTestCase {
    /// Built once: VGG-16 has 138 M parameters, and drawing them takes seconds.
    nonisolated(unsafe) static let vgg16 = VGG(.vgg16)

    // torchvision numbers computed once with torch 2.15 + torchvision 0.29: `sum(p.numel() for p in m.parameters())` and
    // /work/shared/bench/macs.py's forward hook (conv: out.numel · in/groups · kh · kw; linear: in · out).

    func testZooNames() {
        XCTAssertEqual(VGG.zooEntries.map(\.name), ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"])
    }

    func testParameterCountsAndMultiplyAdds() throws {
        XCTAssertEqual(Self.vgg16.parameterCount, 138_357_544)
        XCTAssertEqual(Self.vgg16.multiplyAdds(for: [1, 224, 224, 3]), 15_470_264_320)
        XCTAssertEqual(Self.vgg16.multiplyAdds(for: [1, 100, 100, 3]), 3_088_264_192)
        let vgg11 = try ArchitectureChecks.build(VGG.zooEntries, "vgg11")
        XCTAssertEqual(vgg11.parameterCount, 132_863_336)
        XCTAssertEqual(vgg11.multiplyAdds(for: [1, 224, 224, 3]), 7_609_090_048)
        let vgg19BatchNorm = try ArchitectureChecks.build(VGG.zooEntries, "vgg19_bn")
        XCTAssertEqual(vgg19BatchNorm.parameterCount, 143_678_248)
        XCTAssertEqual(vgg19BatchNorm.multiplyAdds(for: [1, 224, 224, 3]), 19_632_062_464)
    }

    func testParameterNamesAndShapesMatchTorchvision() throws {
        ArchitectureChecks.assertStateDict(Self.vgg16, equals: "vgg16")
        let vgg16BatchNorm = try ArchitectureChecks.build(VGG.zooEntries, "vgg16_bn")
        XCTAssertEqual(vgg16BatchNorm.parameterCount, 138_365_992)
        ArchitectureChecks.assertStateDict(vgg16BatchNorm, equals: "vgg16_bn")
    }

    func testShapesAtTwoResolutions() {
        // torchvision features output: 1×512×7×7 at 224, 1×512×3×3 at 100.
        let model = Self.vgg16
        for (side, spatial) in [(224, 7), (100, 3)] {
            let shapes = ArchitectureChecks.tracedShapes(model, input: [1, side, side, 3])
            XCTAssertEqual(shapes["features.30"], [1, spatial, spatial, 512], "at \(side)")
            XCTAssertEqual(shapes["avgpool"], [1, 7, 7, 512])
            XCTAssertEqual(shapes["flatten"], [1, 25088])
            XCTAssertEqual(shapes["classifier.6"], [1, 1000])
        }
    }

    func testForwardOnSmallImage() {
        ArchitectureChecks.assertForward(Self.vgg16, input: [1, 32, 32, 3], expected: [1, 1000])
    }

    func testClassCountAndGrayscaleInput() throws {
        // torchvision vgg16(num_classes=10) with a 1-channel first conv.
        let options = ModelOptions(classCount: 10, inputChannels: 1)
        let model = try ArchitectureChecks.build(VGG.zooEntries, "vgg16", options)
        XCTAssertEqual(model.parameterCount, 134_300_362)
        XCTAssertEqual(model.outputShape(for: [2, 64, 64, 1]), [2, 10])
        XCTAssertEqual(model.namedParameters().first { $0.name == "features.0.weight" }?.parameter.shape, [64, 1, 3, 3])
    }
}
