import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Reference numbers: torchvision 0.29.2 `efficientnet_b0` … `efficientnet_b7`, computed as described on
/// `TorchReference` (MobileNetV2Tests.swift).
final class EfficientNetTests: XCTestCase {
    /// (variant, parameters, state_dict entries, state_dict digest, last conv channels).
    static let reference: [(EfficientNet.Variant, Int, Int, UInt64, Int)] = [
        (.b0, 5_288_548, 311, 0xd91e_388b_4a4e_0f88, 1280),
        (.b1, 7_794_184, 439, 0xa763_de2c_9e70_86ba, 1280),
        (.b2, 9_109_994, 439, 0x1cca_1275_d5f8_48d7, 1408),
        (.b3, 12_233_232, 496, 0xf570_00e0_270d_15dd, 1536),
        (.b4, 19_341_616, 610, 0xb9fa_a7f8_30f0_2841, 1792),
        (.b5, 30_389_784, 738, 0x57ca_db75_7c82_54b9, 2048),
        (.b6, 43_040_704, 852, 0x6b11_e0c9_2d5e_1689, 2304),
        (.b7, 66_347_960, 1037, 0xbfe3_2276_7994_06f1, 2560),
    ]

    /// One pass over every variant (B7 is the largest model of the zoo: build it once).
    func testEveryVariantMatchesTorchvision() {
        for (variant, parameters, entries, digest, lastChannels) in Self.reference {
            let model = EfficientNet(variant)
            XCTAssertEqual(model.parameterCount, parameters, "\(variant)")
            let names = TorchReference.stateDictDigest(model)
            XCTAssertEqual(names.entries, entries, "\(variant)")
            XCTAssertEqual(names.digest, digest, "\(variant)")
            let native = variant.resolution
            XCTAssertEqual(model.outputShape(for: [1, native, native, 3]), [1, 1000], "\(variant)")
            let side = (native + 31) / 32
            XCTAssertEqual(model.features.outputShape(for: [1, native, native, 3]), [1, side, side, lastChannels], "\(variant)")
            XCTAssertEqual(model.features.outputShape(for: [2, 224, 100, 3]), [2, 7, 4, lastChannels], "\(variant)")
        }
        XCTAssertEqual(EfficientNet.Variant.allCases.map(\.resolution), [224, 240, 260, 300, 380, 456, 528, 600])
    }

    func testMultiplyAdds() {
        let b0 = EfficientNet(.b0).multiplyAdds(for: [1, 224, 224, 3])
        XCTAssertEqual(b0, 385_814_752)
        TorchReference.assertWithin(b0, 385.8e6, fraction: 0.01, "EfficientNet-B0 MACs")
        let b1 = EfficientNet(.b1)
        XCTAssertEqual(b1.multiplyAdds(for: [1, 240, 240, 3]), 686_802_832)
        XCTAssertEqual(b1.multiplyAdds(for: [1, 224, 224, 3]), 569_651_680)
    }

    /// Compound scaling over the one B0 table: B7's stage depths are ⌈n · 3.1⌉ and widths `makeDivisible(c · 2, 8)`.
    func testCompoundScaling() {
        let b7 = EfficientNet.b0Stages.map { $0.scaled(width: 2.0, depth: 3.1) }
        XCTAssertEqual(b7.map(\.repeats), [4, 7, 7, 10, 10, 13, 4])
        XCTAssertEqual(b7.map(\.outputChannels), [32, 48, 80, 160, 224, 384, 640])
        let b2 = EfficientNet.b0Stages.map { $0.scaled(width: 1.1, depth: 1.2) }
        XCTAssertEqual(b2.map(\.outputChannels), [16, 24, 48, 88, 120, 208, 352])
    }

    func testParameterNamesAndStochasticDepth() throws {
        let model = EfficientNet(.b0)
        XCTAssertEqual(TorchReference.shapes(model, ["features.0.0.weight", "features.1.0.block.1.fc1.weight",
                                                     "features.2.0.block.2.fc1.weight", "features.3.1.block.1.0.weight",
                                                     "features.8.0.weight", "classifier.1.weight"]),
                       ["features.0.0.weight": [32, 3, 3, 3], "features.1.0.block.1.fc1.weight": [8, 32, 1, 1],
                        "features.2.0.block.2.fc1.weight": [4, 96, 1, 1], "features.3.1.block.1.0.weight": [240, 1, 5, 5],
                        "features.8.0.weight": [1280, 320, 1, 1], "classifier.1.weight": [1000, 1280]])
        // torchvision: p = 0.2 · (block index) / (16 blocks in B0).
        var probabilities: [Float] = []
        for (_, layer) in model.namedLayers() {
            if let block = layer as? EfficientNet.MBConv { probabilities.append(block.stochasticDepth.probability) }
        }
        XCTAssertEqual(probabilities.count, 16)
        for (index, p) in probabilities.enumerated() { XCTAssertEqual(p, 0.2 * Float(index) / 16, accuracy: 1e-7) }
        let last = try XCTUnwrap(model.namedLayers().first { $0.name == "features.7.0" }?.layer as? EfficientNet.MBConv)
        XCTAssertFalse(last.usesResidual)
        var paths: [String] = []
        _ = model.trace([1, 224, 224, 3], path: "") { paths.append($0.path) }
        XCTAssertTrue(paths.contains("features.6.3.stochastic_depth"))
        XCTAssertFalse(paths.contains("features.6.0.stochastic_depth"), "a block without residual has no stochastic depth")
    }

    func testForwardAtSmallResolution() {
        let output = EfficientNet(.b0).forward(randomTensor([1, 64, 64, 3], seed: 1))
        XCTAssertEqual(output.shape, [1, 1000])
        XCTAssertTrue(output.scalars.allSatisfy(\.isFinite))
    }

    func testClassCountAndInputChannelsFromZooEntries() throws {
        XCTAssertEqual(EfficientNet.zooEntries.map(\.name), (0...7).map { "efficientnet_b\($0)" })
        XCTAssertEqual(EfficientNet.zooEntries.map(\.defaultResolution), [224, 240, 260, 300, 380, 456, 528, 600])
        let entry = try XCTUnwrap(EfficientNet.zooEntries.first)
        XCTAssertFalse(entry.acceptsWidth)
        let model = try entry.build(ModelOptions(classCount: 2, inputChannels: 1))
        XCTAssertEqual(model.outputShape(for: [2, 64, 96, 1]), [2, 2])
        XCTAssertEqual(TorchReference.shapes(model, ["features.0.0.weight", "classifier.1.weight"]),
                       ["features.0.0.weight": [32, 1, 3, 3], "classifier.1.weight": [2, 1280]])
        XCTAssertEqual(model.forward(randomTensor([1, 32, 32, 1], seed: 2)).shape, [1, 2])
    }

    func testTrainingStep() {
        TorchReference.assertTrainingStepReachesEveryParameter(EfficientNet(.b0, classCount: 3, stochasticDepthProbability: 0),
                                                               input: randomTensor([2, 64, 64, 3], seed: 3), classCount: 3)
    }

    func testMBConvGradients() {
        WeightInitialization.seed(105)
        checkGradients(atSmoothOperatingPoint(EfficientNet.MBConv(inputChannels: 8, outputChannels: 8, kernel: 3, stride: 1,
                                                                  expansion: 2, stochasticDepthProbability: 0)),
                       input: randomTensor([2, 4, 5, 8], seed: 4), epsilon: 1e-3)
        checkGradients(atSmoothOperatingPoint(EfficientNet.MBConv(inputChannels: 8, outputChannels: 6, kernel: 5, stride: 2,
                                                                  expansion: 1, stochasticDepthProbability: 0)),
                       input: randomTensor([2, 6, 6, 8], seed: 5), epsilon: 1e-3)
    }
}
