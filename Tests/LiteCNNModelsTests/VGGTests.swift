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
        ArchitectureChecks.assertStateDict(Self.vgg16, equals: Self.vgg16StateDict)
        let vgg16BatchNorm = try ArchitectureChecks.build(VGG.zooEntries, "vgg16_bn")
        XCTAssertEqual(vgg16BatchNorm.parameterCount, 138_365_992)
        ArchitectureChecks.assertStateDict(vgg16BatchNorm, equals: Self.vgg16BatchNormStateDict)
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

// State_dict names and shapes, without num_batches_tracked, printed by
// `[f"{k} {','.join(map(str, v.shape))}" for k, v in m.state_dict().items() if not k.endswith('num_batches_tracked')]`
// for m = torchvision.models.vgg16() / vgg16_bn().
extension VGGTests {
    static let vgg16StateDict = """
        features.0.weight 64,3,3,3
        features.0.bias 64
        features.2.weight 64,64,3,3
        features.2.bias 64
        features.5.weight 128,64,3,3
        features.5.bias 128
        features.7.weight 128,128,3,3
        features.7.bias 128
        features.10.weight 256,128,3,3
        features.10.bias 256
        features.12.weight 256,256,3,3
        features.12.bias 256
        features.14.weight 256,256,3,3
        features.14.bias 256
        features.17.weight 512,256,3,3
        features.17.bias 512
        features.19.weight 512,512,3,3
        features.19.bias 512
        features.21.weight 512,512,3,3
        features.21.bias 512
        features.24.weight 512,512,3,3
        features.24.bias 512
        features.26.weight 512,512,3,3
        features.26.bias 512
        features.28.weight 512,512,3,3
        features.28.bias 512
        classifier.0.weight 4096,25088
        classifier.0.bias 4096
        classifier.3.weight 4096,4096
        classifier.3.bias 4096
        classifier.6.weight 1000,4096
        classifier.6.bias 1000
        """

    static let vgg16BatchNormStateDict = """
        features.0.weight 64,3,3,3
        features.0.bias 64
        features.1.weight 64
        features.1.bias 64
        features.1.running_mean 64
        features.1.running_var 64
        features.3.weight 64,64,3,3
        features.3.bias 64
        features.4.weight 64
        features.4.bias 64
        features.4.running_mean 64
        features.4.running_var 64
        features.7.weight 128,64,3,3
        features.7.bias 128
        features.8.weight 128
        features.8.bias 128
        features.8.running_mean 128
        features.8.running_var 128
        features.10.weight 128,128,3,3
        features.10.bias 128
        features.11.weight 128
        features.11.bias 128
        features.11.running_mean 128
        features.11.running_var 128
        features.14.weight 256,128,3,3
        features.14.bias 256
        features.15.weight 256
        features.15.bias 256
        features.15.running_mean 256
        features.15.running_var 256
        features.17.weight 256,256,3,3
        features.17.bias 256
        features.18.weight 256
        features.18.bias 256
        features.18.running_mean 256
        features.18.running_var 256
        features.20.weight 256,256,3,3
        features.20.bias 256
        features.21.weight 256
        features.21.bias 256
        features.21.running_mean 256
        features.21.running_var 256
        features.24.weight 512,256,3,3
        features.24.bias 512
        features.25.weight 512
        features.25.bias 512
        features.25.running_mean 512
        features.25.running_var 512
        features.27.weight 512,512,3,3
        features.27.bias 512
        features.28.weight 512
        features.28.bias 512
        features.28.running_mean 512
        features.28.running_var 512
        features.30.weight 512,512,3,3
        features.30.bias 512
        features.31.weight 512
        features.31.bias 512
        features.31.running_mean 512
        features.31.running_var 512
        features.34.weight 512,512,3,3
        features.34.bias 512
        features.35.weight 512
        features.35.bias 512
        features.35.running_mean 512
        features.35.running_var 512
        features.37.weight 512,512,3,3
        features.37.bias 512
        features.38.weight 512
        features.38.bias 512
        features.38.running_mean 512
        features.38.running_var 512
        features.40.weight 512,512,3,3
        features.40.bias 512
        features.41.weight 512
        features.41.bias 512
        features.41.running_mean 512
        features.41.running_var 512
        classifier.0.weight 4096,25088
        classifier.0.bias 4096
        classifier.3.weight 4096,4096
        classifier.3.bias 4096
        classifier.6.weight 1000,4096
        classifier.6.bias 1000
        """
}
