import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

final class SqueezeNetTests: XCTestCase {
    // torchvision numbers computed once with torch 2.15 + torchvision 0.29 (/root/.cache/litecnn-bench/venv):
    // `sum(p.numel() for p in m.parameters())` and /work/shared/bench/macs.py's forward hook on 1×3×224×224.
    // The bypass and BatchNorm variants were checked against a PyTorch replica of the same construction rules
    // (simple bypass where Fire input = output channels; 1×1 conv bypass elsewhere for complex; BN after every stem/Fire
    // conv, those convs bias-free): params 1,248,424 / 1,589,672 / 1,251,400 / 1,238,440 / 1,593,928 and MACs
    // 818,924,576 / 1,165,298,720.

    func testZooNames() {
        XCTAssertEqual(SqueezeNet.zooEntries.map(\.name),
                       ["squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass", "squeezenet1_0_complex_bypass",
                        "squeezenet1_0_bn", "squeezenet1_1_bn"])
    }

    func testParameterCounts() throws {
        let expected = [("squeezenet1_0", 1_248_424), ("squeezenet1_1", 1_235_496),
                        ("squeezenet1_0_bypass", 1_248_424),  // identity bypasses add no parameters
                        ("squeezenet1_0_complex_bypass", 1_589_672),  // + 12,416 + 33,024 + 98,688 + 197,120
                        ("squeezenet1_0_bn", 1_251_400), ("squeezenet1_1_bn", 1_238_440)]
        for (name, count) in expected {
            XCTAssertEqual(try ArchitectureChecks.build(SqueezeNet.zooEntries, name).parameterCount, count, name)
        }
        XCTAssertEqual(SqueezeNet(bypass: .complex, batchNorm: true).parameterCount, 1_593_928)
    }

    func testMultiplyAdds() {
        let image = [1, 224, 224, 3]
        XCTAssertEqual(SqueezeNet(version: .v1_0).multiplyAdds(for: image), 818_924_576)  // 818.9 M
        XCTAssertEqual(SqueezeNet(version: .v1_1).multiplyAdds(for: image), 349_151_936)  // 349.2 M
        XCTAssertEqual(SqueezeNet(version: .v1_0).multiplyAdds(for: [1, 160, 160, 3]), 404_268_064)
        XCTAssertEqual(SqueezeNet(version: .v1_1).multiplyAdds(for: [1, 160, 160, 3]), 170_693_312)
        XCTAssertEqual(SqueezeNet(bypass: .simple).multiplyAdds(for: image), 818_924_576)
        XCTAssertEqual(SqueezeNet(bypass: .complex).multiplyAdds(for: image), 1_165_298_720)
        XCTAssertEqual(SqueezeNet(batchNorm: true).multiplyAdds(for: image), 818_924_576)
    }

    func testParameterNamesAndShapesMatchTorchvision() {
        ArchitectureChecks.assertStateDict(SqueezeNet(version: .v1_0), equals: "squeezenet1_0")
        ArchitectureChecks.assertStateDict(SqueezeNet(version: .v1_1), equals: "squeezenet1_1")
        let bn = Set(SqueezeNet(version: .v1_1, bypass: .complex, batchNorm: true).namedParameters().map(\.name))
        for name in ["features.0.weight", "features.1.running_var", "features.4.squeeze_bn.weight",
                     "features.4.expand3x3_bn.running_mean", "features.4.bypass.weight", "features.4.bypass_bn.bias",
                     "classifier.1.bias"] {
            XCTAssertTrue(bn.contains(name), name)
        }
        XCTAssertFalse(bn.contains("features.0.bias"), "convolutions followed by BatchNorm have no bias")
    }

    func testShapesAtTwoResolutions() {
        // torchvision features output: 1×512×13×13 at 224, 1×512×9×9 at 160, and 1×512×1×1 at 29 (v1.0) / 25 (v1.1),
        // the smallest inputs for which every 3×3 pool window fits in its input.
        for version in SqueezeNet.Version.allCases {
            let model = SqueezeNet(version: version)
            let last = "features.12.expand3x3_activation"  // fire9 in both versions
            for (side, spatial) in [(224, 13), (160, 9), (version == .v1_0 ? 29 : 25, 1)] {
                let shapes = ArchitectureChecks.tracedShapes(model, input: [2, side, side, 3])
                XCTAssertEqual(shapes[last], [2, spatial, spatial, 256], "\(version) at \(side)")
                XCTAssertEqual(shapes["classifier.3"], [2, 1, 1, 1000])
                XCTAssertEqual(shapes["flatten"], [2, 1000])
            }
        }
        let complex = ArchitectureChecks.tracedShapes(SqueezeNet(bypass: .complex, batchNorm: true), input: [1, 224, 224, 3])
        XCTAssertEqual(complex["features.4.bypass"], [1, 54, 54, 128])  // fire2 (torchvision: 54×54 at 224)
        XCTAssertEqual(complex["features.13.expand1x1_bn"], [1, 13, 13, 256])
    }

    func testBypassPlacementFollowsThePaper() {
        // fire2 … fire9: simple bypass on fire3, 5, 7, 9; complex adds 1×1 conv bypasses on fire2, 4, 6, 8.
        XCTAssertEqual(SqueezeNet(bypass: .simple).fireModules.map(\.bypass),
                       [.none, .identity, .none, .identity, .none, .identity, .none, .identity])
        XCTAssertEqual(SqueezeNet(bypass: .complex).fireModules.map(\.bypass),
                       [.projection, .identity, .projection, .identity, .projection, .identity, .projection, .identity])
        XCTAssertEqual(SqueezeNet().fireModules.map(\.bypass), Array(repeating: .none, count: 8))
    }

    func testFireBypassesAddTheInput() {
        // With every Fire weight and bias zero, the module outputs 0, so the output is exactly its bypass.
        let input = randomTensor([1, 3, 3, 8], seed: 11)
        func zeroed(_ fire: SqueezeNet.Fire) -> SqueezeNet.Fire {
            for (name, p) in fire.namedParameters() where !name.hasPrefix("bypass") { p.value = Tensor(shape: p.shape) }
            return fire
        }
        let plain = zeroed(SqueezeNet.Fire(inputChannels: 8, squeezeChannels: 2, expand1x1Channels: 4, expand3x3Channels: 4))
        XCTAssertEqual(plain.forward(input), Tensor(shape: [1, 3, 3, 8]))
        let simple = zeroed(SqueezeNet.Fire(inputChannels: 8, squeezeChannels: 2, expand1x1Channels: 4, expand3x3Channels: 4,
                                            bypass: .identity))
        XCTAssertEqual(simple.forward(input), input)
        let complex = zeroed(SqueezeNet.Fire(inputChannels: 8, squeezeChannels: 2, expand1x1Channels: 3, expand3x3Channels: 3,
                                             bypass: .projection))
        let projection = Conv2D(8, 6, kernelSize: 1)
        let bypassWeight = complex.namedParameters().first { $0.name == "bypass.weight" }!.parameter
        let bypassBias = complex.namedParameters().first { $0.name == "bypass.bias" }!.parameter
        projection.weight.value = bypassWeight.value
        projection.bias!.value = bypassBias.value
        assertClose(complex.forward(input), projection.forward(input), "complex bypass = 1×1 conv of the input")
    }

    func testFireGradients() {
        for bypass in [SqueezeNet.Fire.Bypass.none, .identity, .projection] {
            for batchNorm in [false, true] {
                let fire = SqueezeNet.Fire(inputChannels: 6, squeezeChannels: 3, expand1x1Channels: 2, expand3x3Channels: 4,
                                           bypass: bypass, batchNorm: batchNorm)
                ArchitectureChecks.keepActivationsPositive(fire)
                checkGradients(fire, input: randomTensor([2, 4, 4, 6], seed: 21, range: 0.1...1))
            }
        }
    }

    func testForwardOnSmallImage() throws {
        for name in ["squeezenet1_0", "squeezenet1_1", "squeezenet1_0_complex_bypass", "squeezenet1_1_bn"] {
            let model = try ArchitectureChecks.build(SqueezeNet.zooEntries, name, ModelOptions(classCount: 10))
            ArchitectureChecks.assertForward(model, input: [1, 48, 48, 3], expected: [1, 10])
        }
    }

    func testTrainingBackwardThroughBatchNormVariant() {
        let model = SqueezeNet(version: .v1_1, bypass: .complex, batchNorm: true, classCount: 5)
        model.train()
        model.zeroGradients()
        let input = randomTensor([2, 40, 40, 3], seed: 3)
        XCTAssertEqual(model.forward(input).shape, [2, 5])
        XCTAssertEqual(model.backward(randomTensor([2, 5], seed: 4)).shape, input.shape)
        let stem = model.namedParameters().first { $0.name == "features.0.weight" }!.parameter
        XCTAssertGreaterThan(stem.gradient.scalars.map(abs).max() ?? 0, 0)
    }

    func testClassCountAndGrayscaleInput() throws {
        // torchvision squeezenet1_0(num_classes=10) / squeezenet1_1(num_classes=10) with a 1-channel first conv.
        let options = ModelOptions(classCount: 10, inputChannels: 1)
        let v10 = try ArchitectureChecks.build(SqueezeNet.zooEntries, "squeezenet1_0", options)
        XCTAssertEqual(v10.parameterCount, 731_146)
        XCTAssertEqual(v10.outputShape(for: [4, 224, 224, 1]), [4, 10])
        XCTAssertEqual(v10.namedParameters().first { $0.name == "classifier.1.weight" }?.parameter.shape, [10, 512, 1, 1])
        let v11 = try ArchitectureChecks.build(SqueezeNet.zooEntries, "squeezenet1_1", options)
        XCTAssertEqual(v11.parameterCount, 726_474)
        XCTAssertEqual(v11.namedParameters().first { $0.name == "features.0.weight" }?.parameter.shape, [64, 1, 3, 3])
    }

}
