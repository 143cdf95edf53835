import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Reference numbers of the MobileNet V2/V3, ShuffleNet V1/V2 and EfficientNet tests.
///
/// Computed once with torchvision 0.29.2 (`/root/.cache/litecnn-bench/venv`) and, for ShuffleNet V1, the paper model
/// of `/work/shared/bench/models.py`:
///
/// ```python
/// import torchvision; from macs import macs          # /work/shared/bench/macs.py: conv + linear multiply-adds
/// m = torchvision.models.mobilenet_v2().eval()
/// sum(p.numel() for p in m.parameters())             # parameters (buffers excluded)
/// macs(m, 224)                                       # multiply-adds for one 224×224 image
/// lines = sorted(f"{k} {'x'.join(map(str, v.shape))}" for k, v in m.state_dict().items()
///                if "num_batches" not in k)
/// h = 0xcbf29ce484222325                             # FNV-1a 64 of "\n".join(lines)
/// for b in "\n".join(lines).encode(): h = ((h ^ b) * 0x100000001b3) % 2**64
/// ```
enum TorchReference {
    /// The `state_dict` digest above for a LiteCNN model: every parameter and buffer name with its shape.
    /// Equal digests mean equal names and shapes, so torchvision checkpoints load one-to-one.
    static func stateDictDigest(_ model: any Layer) -> (entries: Int, digest: UInt64) {
        let lines = model.namedParameters().map { "\($0.name) \($0.parameter.shape.map(String.init).joined(separator: "x"))" }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in lines.sorted().joined(separator: "\n").utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x100_0000_01b3
        }
        return (lines.count, hash)
    }

    /// Shapes of a few named parameters, for readable failures.
    static func shapes(_ model: any Layer, _ names: [String]) -> [String: [Int]] {
        let all = Dictionary(model.namedParameters().map { ($0.name, $0.parameter.shape) }, uniquingKeysWith: { a, _ in a })
        return Dictionary(uniqueKeysWithValues: names.map { ($0, all[$0] ?? []) })
    }

    /// Asserts `actual` is within `fraction` of `expected`.
    static func assertWithin(_ actual: Int, _ expected: Double, fraction: Double, _ message: String,
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertLessThanOrEqual(abs(Double(actual) - expected) / expected, fraction,
                                 "\(message): \(actual) vs \(expected)", file: file, line: line)
    }

    /// A train-mode forward and backward: the input gradient has the input's shape and every trainable tensor
    /// received some gradient. Use inputs whose last feature map is at least 2×2: BatchNorm over the 2 values of a
    /// batch of 2 at 1×1 outputs ±1 whatever its input, so no gradient would pass it.
    static func assertTrainingStepReachesEveryParameter(_ model: any Layer, input: Tensor, classCount: Int,
                                                        file: StaticString = #filePath, line: UInt = #line) {
        model.train()
        model.zeroGradients()
        let output = model.forward(input)
        XCTAssertEqual(output.shape, [input.shape[0], classCount], file: file, line: line)
        let gradInput = model.backward(randomTensor(output.shape, seed: 11))
        XCTAssertEqual(gradInput.shape, input.shape, file: file, line: line)
        XCTAssertTrue(gradInput.scalars.allSatisfy(\.isFinite), "non-finite input gradient", file: file, line: line)
        let silent = model.namedParameters().filter { $0.parameter.isTrainable && !$0.parameter.gradient.scalars.contains { $0 != 0 } }
        XCTAssertEqual(silent.map(\.name), [], "parameters without gradient", file: file, line: line)
        model.eval()
    }
}

/// Puts a block where its activations are smooth, for `checkGradients`.
///
/// Behind BatchNorm in training mode, one perturbed weight moves a whole normalized channel, so some element crosses
/// the kink of ReLU/ReLU6/hard-swish and the central difference is off by O(1) — a failure of the probe, not of the
/// backward pass. Setting every BatchNorm to γ = 0.25, β = 1.5 keeps its outputs in about [0.75, 2.25] (inside the
/// smooth pieces of ReLU, ReLU6, hard-swish; SiLU is smooth anyway) and shrinking squeeze-excitation weights (fc1 bias
/// 1) keeps the squeeze ReLU and the hard-sigmoid gate away from their kinks. The check then tests what these files
/// add: residual sums, channel splits and concatenations, shuffles, branch wiring. The checks also use ε = 1e-3:
/// BatchNorm over a 2-input group (ShuffleNet's g = 3 bottleneck) curves enough that ε = 1e-2 is off by a few per cent
/// for some weight draws; at 1e-3 the worst error over 12 draws of every block was 0.6 %. Weights are seeded so the
/// draw does not depend on test order.
func atSmoothOperatingPoint<L: Layer>(_ block: L) -> L {
    for (_, layer) in block.namedLayers() {
        if let norm = layer as? BatchNorm2D {
            norm.weight.value = Tensor(shape: [norm.channels], repeating: 0.25)
            norm.bias.value = Tensor(shape: [norm.channels], repeating: 1.5)
        } else if let squeeze = layer as? SqueezeExcitation {
            squeeze.fc1.weight.value = squeeze.fc1.weight.value.scaled(by: 0.1)
            squeeze.fc1.bias?.value = Tensor(shape: [squeeze.squeezeChannels], repeating: 1)
            squeeze.fc2.weight.value = squeeze.fc2.weight.value.scaled(by: 0.1)
        }
    }
    return block
}

final class MobileNetV2Tests: XCTestCase {
    func testParameterCountsMatchTorchvision() {
        XCTAssertEqual(MobileNetV2().parameterCount, 3_504_872)
        // torchvision.models.mobilenet_v2(width_mult=…) / (num_classes=10)
        XCTAssertEqual(MobileNetV2(width: 0.5).parameterCount, 1_968_680)
        XCTAssertEqual(MobileNetV2(width: 0.75).parameterCount, 2_636_424)
        XCTAssertEqual(MobileNetV2(width: 1.4).parameterCount, 6_108_776)
        XCTAssertEqual(MobileNetV2(classCount: 10).parameterCount, 2_236_682)
    }

    func testStateDictNamesAndShapesMatchTorchvision() {
        let model = MobileNetV2()
        let digest = TorchReference.stateDictDigest(model)
        XCTAssertEqual(digest.entries, 262)
        XCTAssertEqual(digest.digest, 0x6301_da06_36be_f20f)
        XCTAssertEqual(TorchReference.shapes(model, ["features.0.0.weight", "features.1.conv.1.weight", "features.2.conv.0.1.running_var",
                                                     "features.12.conv.1.0.weight", "features.18.0.weight", "classifier.1.weight"]),
                       ["features.0.0.weight": [32, 3, 3, 3], "features.1.conv.1.weight": [16, 32, 1, 1],
                        "features.2.conv.0.1.running_var": [96], "features.12.conv.1.0.weight": [576, 1, 3, 3],
                        "features.18.0.weight": [1280, 320, 1, 1], "classifier.1.weight": [1000, 1280]])
    }

    func testMultiplyAdds() {
        let macs = MobileNetV2().multiplyAdds(for: [1, 224, 224, 3])
        XCTAssertEqual(macs, 300_774_272)
        TorchReference.assertWithin(macs, 300.8e6, fraction: 0.01, "MobileNetV2 MACs")
    }

    func testOutputShapes() {
        let model = MobileNetV2()
        XCTAssertEqual(model.outputShape(for: [1, 224, 224, 3]), [1, 1000])
        XCTAssertEqual(model.outputShape(for: [2, 160, 97, 3]), [2, 1000])
        XCTAssertEqual(model.features.outputShape(for: [1, 224, 224, 3]), [1, 7, 7, 1280])
        XCTAssertEqual(model.features.outputShape(for: [2, 160, 97, 3]), [2, 5, 4, 1280])
        var leaves = 0
        _ = model.trace([1, 224, 224, 3], path: "") { _ in leaves += 1 }
        // 52 conv + 52 BN + 35 ReLU6 + avgpool + dropout + linear
        XCTAssertEqual(leaves, 52 + 52 + 35 + 3)
    }

    func testForwardAtSmallResolution() {
        let model = MobileNetV2()
        let output = model.forward(randomTensor([1, 64, 64, 3], seed: 1))
        XCTAssertEqual(output.shape, [1, 1000])
        XCTAssertTrue(output.scalars.allSatisfy(\.isFinite))
        XCTAssertGreaterThan(output.scalars.map(abs).max() ?? 0, 0)
    }

    func testClassCountAndInputChannelsFromZooEntry() throws {
        let entry = try XCTUnwrap(MobileNetV2.zooEntries.first { $0.name == "mobilenet_v2" })
        XCTAssertTrue(entry.acceptsWidth)
        let model = try entry.build(ModelOptions(classCount: 10, inputChannels: 1, width: 0.5))
        XCTAssertEqual(model.outputShape(for: [2, 96, 96, 1]), [2, 10])
        XCTAssertEqual(TorchReference.shapes(model, ["features.0.0.weight", "classifier.1.weight"]),
                       ["features.0.0.weight": [16, 1, 3, 3], "classifier.1.weight": [10, 1280]])
        XCTAssertEqual(model.forward(randomTensor([1, 32, 32, 1], seed: 2)).shape, [1, 10])
    }

    func testTrainingStep() {
        TorchReference.assertTrainingStepReachesEveryParameter(MobileNetV2(width: 0.35, classCount: 7),
                                                               input: randomTensor([2, 64, 64, 3], seed: 3), classCount: 7)
    }

    func testInvertedResidualGradients() {
        WeightInitialization.seed(101)
        checkGradients(atSmoothOperatingPoint(MobileNetV2.InvertedResidual(inputChannels: 4, outputChannels: 4, stride: 1, expansion: 3)),
                       input: randomTensor([2, 5, 5, 4], seed: 4), epsilon: 1e-3)
        checkGradients(atSmoothOperatingPoint(MobileNetV2.InvertedResidual(inputChannels: 4, outputChannels: 6, stride: 2, expansion: 1)),
                       input: randomTensor([2, 5, 5, 4], seed: 5), epsilon: 1e-3)
    }
}
