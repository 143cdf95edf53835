import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Reference numbers: `ShuffleNetV1(g)` of /work/shared/bench/models.py (the paper's Table 1 at 1×), computed as
/// described on `TorchReference` (MobileNetV2Tests.swift). The scaled rows build the same module with the channel
/// counts of `ShuffleNetV1.channels(groups:scale:)` (stem and stage widths passed to models.py's `ShuffleUnitV1`).
final class ShuffleNetV1Tests: XCTestCase {
    /// (groups, parameters, multiply-adds at 224, state_dict digest) at scale 1.
    static let reference: [(Int, Int, Int, UInt64)] = [
        (1, 1_531_936, 143_078_976, 0xf89e_3bf4_5f34_ed3c),
        (2, 1_733_848, 140_836_512, 0x1c38_8530_2cfc_46af),
        (3, 1_865_728, 137_460_672, 0x0ac0_20f3_767f_85b1),
        (4, 1_968_344, 134_339_776, 0x5a3b_b3d0_9d74_c4f8),
        (8, 2_434_768, 138_365_952, 0xc4c8_2ad5_d255_5232),
    ]

    func testParametersMultiplyAddsAndNamesMatchReference() {
        for (groups, parameters, macs, digest) in Self.reference {
            let model = ShuffleNetV1(groups: groups)
            XCTAssertEqual(model.parameterCount, parameters, "g=\(groups)")
            XCTAssertEqual(model.multiplyAdds(for: [1, 224, 224, 3]), macs, "g=\(groups)")
            let names = TorchReference.stateDictDigest(model)
            XCTAssertEqual(names.entries, 247, "g=\(groups)")
            XCTAssertEqual(names.digest, digest, "g=\(groups)")
        }
        TorchReference.assertWithin(ShuffleNetV1(groups: 3).multiplyAdds(for: [1, 224, 224, 3]), 137.5e6, fraction: 0.01,
                                    "ShuffleNet V1 g=3 1× MACs")
    }

    func testParameterNames() {
        XCTAssertEqual(TorchReference.shapes(ShuffleNetV1(groups: 3), ["stem.0.weight", "stages.0.gconv1.0.weight",
                                                                       "stages.0.gconv2.0.weight", "stages.1.gconv1.0.weight",
                                                                       "stages.4.dw.0.weight", "stages.15.gconv2.1.running_mean",
                                                                       "fc.weight"]),
                       ["stem.0.weight": [24, 3, 3, 3], "stages.0.gconv1.0.weight": [60, 24, 1, 1],
                        "stages.0.gconv2.0.weight": [216, 20, 1, 1], "stages.1.gconv1.0.weight": [60, 80, 1, 1],
                        "stages.4.dw.0.weight": [120, 1, 3, 3], "stages.15.gconv2.1.running_mean": [960],
                        "fc.weight": [1000, 960]])
    }

    /// Every (g, s) of the paper builds with valid group convolutions; 1× is Table 1.
    func testChannelsForEveryGroupAndScale() {
        for groups in ShuffleNetV1.allowedGroups {
            for scale in ShuffleNetV1.paperScales {
                let (stem, stages) = ShuffleNetV1.channels(groups: groups, scale: scale)
                XCTAssertEqual(stem % groups, 0, "g=\(groups) s=\(scale)")
                XCTAssertEqual(stages[0] % (4 * groups), 0, "g=\(groups) s=\(scale)")
                XCTAssertEqual(stages, [stages[0], 2 * stages[0], 4 * stages[0]])
                XCTAssertGreaterThan(stages[0], stem)
            }
            let oneX = ShuffleNetV1.channels(groups: groups, scale: 1)
            XCTAssertEqual(oneX.stem, 24)
            XCTAssertEqual(oneX.stages[0], ShuffleNetV1.stageTwoWidths[groups])
        }
        // Spot checks against models.py's ShuffleUnitV1 with the same channel counts.
        for (groups, scale, parameters, macs) in [(3, 0.5, 718_324, 37_589_856), (2, 0.25, 253_534, 10_409_088),
                                                  (8, 1.5, 4_272_400, 302_607_360)] {
            let model = ShuffleNetV1(groups: groups, scale: scale)
            XCTAssertEqual(model.parameterCount, parameters, "g=\(groups) s=\(scale)")
            XCTAssertEqual(model.multiplyAdds(for: [1, 224, 224, 3]), macs, "g=\(groups) s=\(scale)")
            XCTAssertEqual(model.outputShape(for: [1, 224, 224, 3]), [1, 1000])
        }
    }

    /// The paper's Table 2 complexities for g = 3 (MFLOPs = million multiply-adds): 0.5× 38, 1× 140, 1.5× 292, 2× 524.
    /// (0.25× is listed as 13; the unstated rounding of a 6-channel stem makes ours 11.0.)
    func testScaledComplexityMatchesPaper() {
        for (scale, paperMACs) in [(0.5, 38e6), (1, 140e6), (1.5, 292e6), (2, 524e6)] {
            TorchReference.assertWithin(ShuffleNetV1(groups: 3, scale: scale).multiplyAdds(for: [1, 224, 224, 3]), paperMACs,
                                        fraction: 0.03, "g=3 \(scale)×")
        }
    }

    func testOutputShapes() {
        let model = ShuffleNetV1(groups: 3)
        XCTAssertEqual(model.outputShape(for: [1, 224, 224, 3]), [1, 1000])
        XCTAssertEqual(model.stages.outputShape(for: [1, 56, 56, 24]), [1, 7, 7, 960])
        XCTAssertEqual(model.outputShape(for: [2, 100, 131, 3]), [2, 1000])
        XCTAssertEqual(model.stages.outputShape(for: [2, 25, 33, 24]), [2, 4, 5, 960])
    }

    func testForwardAtSmallResolution() {
        let output = ShuffleNetV1(groups: 3).forward(randomTensor([1, 64, 64, 3], seed: 1))
        XCTAssertEqual(output.shape, [1, 1000])
        XCTAssertTrue(output.scalars.allSatisfy(\.isFinite))
    }

    func testZooEntries() throws {
        XCTAssertEqual(ShuffleNetV1.zooEntries.map(\.name), ["shufflenet_v1", "shufflenet_v1_g1", "shufflenet_v1_g2",
                                                             "shufflenet_v1_g3", "shufflenet_v1_g4", "shufflenet_v1_g8"])
        let general = try XCTUnwrap(ShuffleNetV1.zooEntries.first)
        XCTAssertTrue(general.acceptsGroups && general.acceptsWidth)
        XCTAssertEqual(try general.build(ModelOptions()).parameterCount, 1_865_728)
        XCTAssertEqual(try general.build(ModelOptions(groups: 8)).parameterCount, 2_434_768)
        XCTAssertThrowsError(try general.build(ModelOptions(groups: 5))) { error in
            guard case let ModelZooError.invalidOption(message)? = error as? ModelZooError else {
                return XCTFail("expected invalidOption, got \(error)")
            }
            XCTAssertTrue(message.contains("1, 2, 3, 4, 8") && message.contains("5"), message)
        }
        let model = try general.build(ModelOptions(classCount: 12, inputChannels: 1, width: 0.5, groups: 2))
        XCTAssertEqual(model.outputShape(for: [2, 64, 64, 1]), [2, 12])
        XCTAssertEqual(TorchReference.shapes(model, ["stem.0.weight", "fc.weight"]),
                       ["stem.0.weight": [12, 1, 3, 3], "fc.weight": [12, 416]])
        XCTAssertEqual(model.forward(randomTensor([1, 32, 32, 1], seed: 2)).shape, [1, 12])
    }

    func testTrainingStep() {
        TorchReference.assertTrainingStepReachesEveryParameter(ShuffleNetV1(groups: 4, scale: 0.25, classCount: 5),
                                                               input: randomTensor([2, 64, 64, 3], seed: 3), classCount: 5)
    }

    /// Positive inputs keep the unit's closing ReLU (after `x + branch` or the concatenation) away from its kink.
    func testUnitGradients() {
        WeightInitialization.seed(103)
        let strided = ShuffleNetV1.ShuffleUnit(inputChannels: 6, outputChannels: 24, stride: 2, groups: 3, groupFirstConv: false)
        checkGradients(atSmoothOperatingPoint(strided), input: randomTensor([2, 5, 6, 6], seed: 4, range: 0.2...1), epsilon: 1e-3)
        let unit = ShuffleNetV1.ShuffleUnit(inputChannels: 24, outputChannels: 24, stride: 1, groups: 3)
        checkGradients(atSmoothOperatingPoint(unit), input: randomTensor([2, 4, 4, 24], seed: 5, range: 0.2...1), epsilon: 1e-3)
    }
}
