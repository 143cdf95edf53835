import Foundation
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Checks shared by the SqueezeNet, MobileNet V1, AlexNet, VGG and ResNet tests.
enum ArchitectureChecks {
    /// torchvision's `state_dict()` listings (`name d0,d1,…` in order, without `num_batches_tracked`), written by
    /// scripts/make_state_dict_fixture.py.
    static let torchStateDicts: [String: [String]] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/state_dicts.json")
        guard let data = try? Data(contentsOf: url),
              let listings = try? JSONDecoder().decode([String: [String]].self, from: data) else { return [:] }
        return listings
    }()

    /// Asserts that `model.namedParameters()` lists exactly torchvision's `state_dict()` entries for `reference`.
    static func assertStateDict(_ model: any Layer, equals reference: String,
                                file: StaticString = #filePath, line: UInt = #line) {
        let actual = model.namedParameters().map { "\($0.name) " + $0.parameter.shape.map(String.init).joined(separator: ",") }
        guard let expected = torchStateDicts[reference] else {
            return XCTFail("no state_dict listing for \(reference) in Fixtures/state_dicts.json", file: file, line: line)
        }
        XCTAssertEqual(actual.count, expected.count, "number of state_dict entries", file: file, line: line)
        if let index = zip(actual, expected).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            XCTFail("state_dict entry \(index): got '\(actual[index])', torchvision has '\(expected[index])'", file: file, line: line)
        }
    }

    /// The output shape of every traced leaf by path, after checking that the trace visits every leaf layer exactly once
    /// and ends on `outputShape(for:)`.
    static func tracedShapes(_ model: any Layer, input: [Int], file: StaticString = #filePath, line: UInt = #line) -> [String: [Int]] {
        var shapes: [String: [Int]] = [:]
        var visits = 0
        let output = model.trace(input, path: "") { shapes[$0.path] = $0.outputShape; visits += 1 }
        let leaves = model.namedLayers().filter { $0.layer.children.isEmpty }
        XCTAssertEqual(visits, leaves.count, "trace visits every leaf once", file: file, line: line)
        XCTAssertEqual(Set(shapes.keys), Set(leaves.map(\.name)), "trace paths are the layer paths", file: file, line: line)
        XCTAssertEqual(output, model.outputShape(for: input), "trace and outputShape agree", file: file, line: line)
        return shapes
    }

    /// Runs one inference forward pass on a random image and checks the shape and that every logit is finite.
    static func assertForward(_ model: any Layer, input: [Int], expected: [Int], file: StaticString = #filePath, line: UInt = #line) {
        model.eval()
        let y = model.forward(randomTensor(input, seed: 42))
        XCTAssertEqual(y.shape, expected, "forward output shape", file: file, line: line)
        XCTAssertEqual(y.shape, model.outputShape(for: input), "forward agrees with outputShape", file: file, line: line)
        XCTAssertTrue(y.scalars.allSatisfy(\.isFinite), "finite logits", file: file, line: line)
        XCTAssertGreaterThan(y.scalars.map(abs).max() ?? 0, 0, "logits not all zero", file: file, line: line)
    }

    /// Sets parameters so that, for inputs in [0.1, 1], every pre-activation stays well above 0: convolution and linear
    /// weights in [0.05, 0.5], biases (conv and BatchNorm β) 3, BatchNorm γ 0.5 (so γ·x̂ + β > 0 for |x̂| < 6).
    /// Finite differences then never straddle a ReLU kink, and a gradient check tests the block's wiring exactly.
    static func keepActivationsPositive(_ layer: any Layer) {
        for (index, (_, layer)) in layer.namedLayers().enumerated() {
            for (local, p) in layer.localParameters where p.isTrainable {
                if local == "bias" {
                    p.value = Tensor(shape: p.shape, repeating: 3)
                } else if layer is BatchNorm2D {
                    p.value = Tensor(shape: p.shape, repeating: 0.5)
                } else {
                    p.value = randomTensor(p.shape, seed: UInt64(index + 1), range: 0.05...0.5)
                }
            }
        }
    }

    /// Builds the named entry of `entries`.
    static func build(_ entries: [ModelZooEntry], _ name: String, _ options: ModelOptions = ModelOptions()) throws -> any Layer {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw ModelZooError.unknownModel(name, known: entries.map(\.name))
        }
        return try entry.build(options)
    }
}

final class ResNetTests: XCTestCase {
    // Parameter counts and MACs below were computed once with torch 2.15 + torchvision 0.29 in /root/.cache/litecnn-bench/venv:
    // `sum(p.numel() for p in m.parameters())` and /work/shared/bench/macs.py's forward hook
    // (conv: out.numel · in/groups · kh · kw; linear: in · out) on a 1×3×224×224 (or 100×100) input.

    func testParameterCountsMatchTorchvision() throws {
        let expected = [("resnet18", 11_689_512), ("resnet34", 21_797_672), ("resnet50", 25_557_032),
                        ("resnet101", 44_549_160), ("resnet152", 60_192_808), ("resnext50_32x4d", 25_028_904),
                        ("wide_resnet50_2", 68_883_240)]
        XCTAssertEqual(ResNet.zooEntries.map(\.name), expected.map(\.0))
        for (name, count) in expected {
            XCTAssertEqual(try ArchitectureChecks.build(ResNet.zooEntries, name).parameterCount, count, name)
        }
    }

    func testMultiplyAddsMatchTorchHook() {
        XCTAssertEqual(ResNet(.resnet18).multiplyAdds(for: [1, 224, 224, 3]), 1_814_073_344)
        XCTAssertEqual(ResNet(.resnet18).multiplyAdds(for: [1, 100, 100, 3]), 441_774_848)
        XCTAssertEqual(ResNet(.resnet50).multiplyAdds(for: [1, 224, 224, 3]), 4_089_184_256)
        XCTAssertEqual(ResNet(.resnext50_32x4d).multiplyAdds(for: [1, 224, 224, 3]), 4_230_479_872)
    }

    func testParameterNamesAndShapesMatchTorchvision() {
        ArchitectureChecks.assertStateDict(ResNet(.resnet18), equals: "resnet18")
        ArchitectureChecks.assertStateDict(ResNet(.resnet50), equals: "resnet50")
    }

    func testShapesAtTwoResolutions() {
        let model = ResNet(.resnet18)
        // torchvision's layer4 output: 1×512×7×7 at 224, 1×512×4×4 at 100.
        for (side, last) in [(224, 7), (100, 4)] {
            let shapes = ArchitectureChecks.tracedShapes(model, input: [1, side, side, 3])
            XCTAssertEqual(shapes["maxpool"], [1, (side + 3) / 4, (side + 3) / 4, 64])
            XCTAssertEqual(shapes["layer4.1.relu_1"], [1, last, last, 512])
            XCTAssertEqual(shapes["layer2.0.downsample.1"], [1, (side + 7) / 8, (side + 7) / 8, 128])
            XCTAssertEqual(shapes["fc"], [1, 1000])
        }
        let bottleneck = ArchitectureChecks.tracedShapes(ResNet(.resnet50), input: [2, 224, 224, 3])
        XCTAssertEqual(bottleneck["layer1.0.downsample.0"], [2, 56, 56, 256])
        XCTAssertEqual(bottleneck["layer4.2.relu_2"], [2, 7, 7, 2048])
    }

    func testForwardOnSmallImage() {
        ArchitectureChecks.assertForward(ResNet(.resnet18, classCount: 10), input: [1, 64, 64, 3], expected: [1, 10])
    }

    func testClassCountAndGrayscaleInput() throws {
        // torchvision resnet18(num_classes=10) / resnet50(num_classes=10) with conv1 taking 1 channel.
        let options = ModelOptions(classCount: 10, inputChannels: 1)
        let small = try ArchitectureChecks.build(ResNet.zooEntries, "resnet18", options)
        XCTAssertEqual(small.parameterCount, 11_175_370)
        XCTAssertEqual(small.outputShape(for: [3, 96, 96, 1]), [3, 10])
        XCTAssertEqual(small.namedParameters().first { $0.name == "conv1.weight" }?.parameter.shape, [64, 1, 7, 7])
        XCTAssertEqual(try ArchitectureChecks.build(ResNet.zooEntries, "resnet50", options).parameterCount, 23_522_250)
    }

    func testBlockGradients() {
        let basic = ResNet.Block(kind: .basic, inputChannels: 3, planes: 4, stride: 2)
        XCTAssertNotNil(basic.downsample)
        ArchitectureChecks.keepActivationsPositive(basic)
        checkGradients(basic, input: randomTensor([2, 5, 5, 3], seed: 1, range: 0.1...1))
        let identity = ResNet.Block(kind: .basic, inputChannels: 4, planes: 4, stride: 1)
        XCTAssertNil(identity.downsample)
        ArchitectureChecks.keepActivationsPositive(identity)
        checkGradients(identity, input: randomTensor([2, 4, 4, 4], seed: 2, range: 0.1...1))
        // width = 4 · 32 / 64 · 2 = 4, grouped 3×3 conv, 16 outputs.
        let bottleneck = ResNet.Block(kind: .bottleneck, inputChannels: 6, planes: 4, stride: 2, groups: 2, widthPerGroup: 32)
        XCTAssertEqual(bottleneck.outputChannels, 16)
        ArchitectureChecks.keepActivationsPositive(bottleneck)
        checkGradients(bottleneck, input: randomTensor([2, 5, 5, 6], seed: 3, range: 0.1...1))
    }

    func testTrainingBackwardReachesTheStem() {
        let model = ResNet(.resnet18, classCount: 10)
        model.train()
        model.zeroGradients()
        let input = randomTensor([2, 32, 32, 3], seed: 5)
        let logits = model.forward(input)
        XCTAssertEqual(logits.shape, [2, 10])
        let gradInput = model.backward(randomTensor([2, 10], seed: 6))
        XCTAssertEqual(gradInput.shape, input.shape)
        XCTAssertGreaterThan(model.conv1.weight.gradient.scalars.map(abs).max() ?? 0, 0)
        XCTAssertGreaterThan(model.fc.weight.gradient.scalars.map(abs).max() ?? 0, 0)
    }
}
