import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Reference numbers: torchvision 0.29.2, computed as described on `TorchReference` (MobileNetV2Tests.swift).
final class MobileNetV3Tests: XCTestCase {
    func testParameterCountsMatchTorchvision() {
        XCTAssertEqual(MobileNetV3(.large).parameterCount, 5_483_032)
        XCTAssertEqual(MobileNetV3(.small).parameterCount, 2_542_856)
        // torchvision.models.mobilenet_v3_{large,small}(width_mult=…)
        XCTAssertEqual(MobileNetV3(.large, width: 0.5).parameterCount, 1_734_576)
        XCTAssertEqual(MobileNetV3(.large, width: 0.75).parameterCount, 3_377_576)
        XCTAssertEqual(MobileNetV3(.small, width: 0.75).parameterCount, 1_653_920)
        XCTAssertEqual(MobileNetV3(.small, width: 1.4).parameterCount, 4_373_824)
    }

    func testStateDictNamesAndShapesMatchTorchvision() {
        let large = TorchReference.stateDictDigest(MobileNetV3(.large))
        XCTAssertEqual(large.entries, 266)
        XCTAssertEqual(large.digest, 0x31db_cefe_6f35_f2b6)
        let smallModel = MobileNetV3(.small)
        let small = TorchReference.stateDictDigest(smallModel)
        XCTAssertEqual(small.entries, 210)
        XCTAssertEqual(small.digest, 0x228a_9246_3fc6_1fd5)
        XCTAssertEqual(TorchReference.shapes(smallModel, ["features.1.block.1.fc1.weight", "features.4.block.1.0.weight",
                                                          "features.8.block.2.fc2.bias", "features.12.0.weight", "classifier.3.weight"]),
                       ["features.1.block.1.fc1.weight": [8, 16, 1, 1], "features.4.block.1.0.weight": [96, 1, 5, 5],
                        "features.8.block.2.fc2.bias": [144], "features.12.0.weight": [576, 96, 1, 1],
                        "classifier.3.weight": [1000, 1024]])
    }

    func testMultiplyAdds() {
        let large = MobileNetV3(.large).multiplyAdds(for: [1, 224, 224, 3])
        XCTAssertEqual(large, 216_589_760)
        TorchReference.assertWithin(large, 216.6e6, fraction: 0.01, "MobileNetV3-Large MACs")
        let small = MobileNetV3(.small).multiplyAdds(for: [1, 224, 224, 3])
        XCTAssertEqual(small, 56_510_400)
        TorchReference.assertWithin(small, 56.5e6, fraction: 0.01, "MobileNetV3-Small MACs")
    }

    func testOutputShapes() {
        for variant in MobileNetV3.Variant.allCases {
            let model = MobileNetV3(variant)
            let lastChannels = variant == .large ? 960 : 576
            XCTAssertEqual(model.outputShape(for: [1, 224, 224, 3]), [1, 1000])
            XCTAssertEqual(model.features.outputShape(for: [1, 224, 224, 3]), [1, 7, 7, lastChannels])
            XCTAssertEqual(model.outputShape(for: [3, 129, 200, 3]), [3, 1000])
            XCTAssertEqual(model.features.outputShape(for: [3, 129, 200, 3]), [3, 5, 7, lastChannels])
        }
    }

    func testTraceListsSqueezeExcitationConvolutions() {
        var paths: [String] = []
        _ = MobileNetV3(.small).trace([1, 224, 224, 3], path: "") { paths.append($0.path) }
        XCTAssertTrue(paths.contains("features.1.block.1.fc1"))
        XCTAssertTrue(paths.contains("features.11.block.2.fc2"))
        XCTAssertEqual(paths.last, "classifier.3")
    }

    func testForwardAtSmallResolution() {
        for variant in MobileNetV3.Variant.allCases {
            let output = MobileNetV3(variant).forward(randomTensor([1, 64, 64, 3], seed: 1))
            XCTAssertEqual(output.shape, [1, 1000])
            XCTAssertTrue(output.scalars.allSatisfy(\.isFinite))
        }
    }

    func testClassCountAndInputChannelsFromZooEntries() throws {
        XCTAssertEqual(MobileNetV3.zooEntries.map(\.name), ["mobilenet_v3_large", "mobilenet_v3_small"])
        for entry in MobileNetV3.zooEntries {
            XCTAssertTrue(entry.acceptsWidth)
            let model = try entry.build(ModelOptions(classCount: 5, inputChannels: 1, width: 0.75))
            XCTAssertEqual(model.outputShape(for: [2, 96, 64, 1]), [2, 5])
            XCTAssertEqual(TorchReference.shapes(model, ["features.0.0.weight"]), ["features.0.0.weight": [16, 1, 3, 3]])
            XCTAssertEqual(model.forward(randomTensor([1, 32, 32, 1], seed: 2)).shape, [1, 5])
        }
    }

    func testTrainingStep() {
        TorchReference.assertTrainingStepReachesEveryParameter(MobileNetV3(.small, width: 0.5, classCount: 4),
                                                               input: randomTensor([2, 64, 64, 3], seed: 3), classCount: 4)
    }

    func testInvertedResidualGradients() {
        WeightInitialization.seed(102)
        let withSE = MobileNetV3.BlockConfig(6, kernel: 3, expanded: 12, output: 6, squeezeExcite: true, .hardSwish, stride: 1)
        checkGradients(atSmoothOperatingPoint(MobileNetV3.InvertedResidual(withSE)), input: randomTensor([2, 5, 5, 6], seed: 4), epsilon: 1e-3)
        let strided = MobileNetV3.BlockConfig(6, kernel: 5, expanded: 6, output: 8, squeezeExcite: false, .relu, stride: 2)
        checkGradients(atSmoothOperatingPoint(MobileNetV3.InvertedResidual(strided)), input: randomTensor([2, 6, 6, 6], seed: 5), epsilon: 1e-3)
    }
}
