import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Reference numbers: torchvision 0.29.2, computed as described on `TorchReference` (MobileNetV2Tests.swift).
final class ShuffleNetV2Tests: XCTestCase {
    /// (variant, parameters, multiply-adds at 224, state_dict digest) of `torchvision.models.shufflenet_v2_*`.
    static let reference: [(ShuffleNetV2.Variant, Int, Int, UInt64)] = [
        (.x0_5, 1_366_792, 40_476_448, 0xe1a9_69ce_6950_8c19),
        (.x1_0, 2_278_604, 144_907_992, 0xbaf0_0df6_534f_feb5),
        (.x1_5, 3_503_624, 295_759_392, 0x86b0_8d44_cf0a_1eb3),
        (.x2_0, 7_393_996, 583_253_464, 0xde62_a6e4_bbbb_4f78),
    ]

    func testParametersMultiplyAddsAndNamesMatchTorchvision() {
        for (variant, parameters, macs, digest) in Self.reference {
            let model = ShuffleNetV2(variant)
            XCTAssertEqual(model.parameterCount, parameters, "\(variant)")
            XCTAssertEqual(model.multiplyAdds(for: [1, 224, 224, 3]), macs, "\(variant)")
            let names = TorchReference.stateDictDigest(model)
            XCTAssertEqual(names.entries, 282, "\(variant)")
            XCTAssertEqual(names.digest, digest, "\(variant)")
        }
        TorchReference.assertWithin(ShuffleNetV2(.x1_0).multiplyAdds(for: [1, 224, 224, 3]), 144.9e6, fraction: 0.01,
                                    "ShuffleNet V2 1.0× MACs")
    }

    func testParameterNames() {
        XCTAssertEqual(TorchReference.shapes(ShuffleNetV2(.x1_0), ["conv1.0.weight", "stage2.0.branch1.0.weight",
                                                                   "stage2.0.branch1.2.weight", "stage2.0.branch2.0.weight",
                                                                   "stage2.1.branch2.3.weight", "conv5.1.running_var", "fc.weight"]),
                       ["conv1.0.weight": [24, 3, 3, 3], "stage2.0.branch1.0.weight": [24, 1, 3, 3],
                        "stage2.0.branch1.2.weight": [58, 24, 1, 1], "stage2.0.branch2.0.weight": [58, 24, 1, 1],
                        "stage2.1.branch2.3.weight": [58, 1, 3, 3], "conv5.1.running_var": [1024], "fc.weight": [1000, 1024]])
    }

    func testOutputShapes() {
        let model = ShuffleNetV2(.x1_0)
        XCTAssertEqual(model.outputShape(for: [1, 224, 224, 3]), [1, 1000])
        XCTAssertEqual(model.stage4.outputShape(for: [1, 14, 14, 232]), [1, 7, 7, 464])
        XCTAssertEqual(model.outputShape(for: [2, 96, 150, 3]), [2, 1000])
        var shapes: [String: [Int]] = [:]
        _ = model.trace([2, 96, 150, 3], path: "") { shapes[$0.path] = $0.outputShape }
        XCTAssertEqual(shapes["maxpool"], [2, 24, 38, 24])
        XCTAssertEqual(shapes["stage2.0.shuffle"], [2, 12, 19, 116])
        XCTAssertEqual(shapes["stage3.7.branch2.7"], [2, 6, 10, 116])
        XCTAssertEqual(shapes["conv5.2"], [2, 3, 5, 1024])
    }

    func testForwardAtSmallResolution() {
        let output = ShuffleNetV2(.x1_0).forward(randomTensor([1, 64, 64, 3], seed: 1))
        XCTAssertEqual(output.shape, [1, 1000])
        XCTAssertTrue(output.scalars.allSatisfy(\.isFinite))
    }

    func testClassCountAndInputChannelsFromZooEntries() throws {
        XCTAssertEqual(ShuffleNetV2.zooEntries.map(\.name),
                       ["shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0"])
        let entry = try XCTUnwrap(ShuffleNetV2.zooEntries.first { $0.name == "shufflenet_v2_x0_5" })
        let model = try entry.build(ModelOptions(classCount: 3, inputChannels: 1))
        XCTAssertEqual(model.outputShape(for: [2, 64, 64, 1]), [2, 3])
        XCTAssertEqual(TorchReference.shapes(model, ["conv1.0.weight", "fc.weight"]),
                       ["conv1.0.weight": [24, 1, 3, 3], "fc.weight": [3, 1024]])
        XCTAssertEqual(model.forward(randomTensor([1, 32, 32, 1], seed: 2)).shape, [1, 3])
    }

    func testTrainingStep() {
        TorchReference.assertTrainingStepReachesEveryParameter(ShuffleNetV2(.x0_5, classCount: 6),
                                                               input: randomTensor([2, 64, 64, 3], seed: 3), classCount: 6)
    }

    func testUnitGradients() {
        WeightInitialization.seed(104)
        checkGradients(atSmoothOperatingPoint(ShuffleNetV2.InvertedResidual(inputChannels: 6, outputChannels: 8, stride: 2)),
                       input: randomTensor([2, 6, 5, 6], seed: 4), epsilon: 1e-3)
        checkGradients(atSmoothOperatingPoint(ShuffleNetV2.InvertedResidual(inputChannels: 8, outputChannels: 8, stride: 1)),
                       input: randomTensor([2, 4, 5, 8], seed: 5), epsilon: 1e-3)
    }
}
