import Foundation
import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// Forward and backward values of every layer type against PyTorch.
///
/// The fixture is written by `scripts/make_layer_goldens.py` (PyTorch 2.x, run by hand). For each case the layer is
/// built from the case's config, given PyTorch's parameters, and run on the same input; the output, ∂L/∂input and
/// ∂L/∂θ for `L = Σ y ⊙ R` must match PyTorch's autograd.
///
/// Tolerances: |a − b| ≤ 1e-4 + 1e-4·|b| for forward values, 2e-4 + 1e-3·|b| for gradients (float32 sums of up to a few
/// hundred terms in a different order than PyTorch's).
final class GoldenTests: XCTestCase {
    struct Case {
        var name: String
        var config: [String: Any]
        var train: Bool
        var input: Tensor
        var params: [String: Tensor]
        var output: Tensor
        var probe: Tensor
        var gradInput: Tensor
        var gradParams: [String: Tensor]
        var after: [String: Tensor]
        var labels: [Int]
        var loss: Float?
    }

    nonisolated(unsafe) static let cases: [Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .appendingPathComponent("Fixtures/layer_goldens.json")
        guard let data = try? Data(contentsOf: url),
              let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let list = root["cases"] as? [[String: Any]] else { return [] }
        func tensor(_ any: Any?) -> Tensor {
            let d = any as! [String: Any]
            let shape = (d["shape"] as! [NSNumber]).map(\.intValue)
            let values = (d["data"] as! [NSNumber]).map(\.floatValue)
            return Tensor(shape: shape, scalars: values, layout: shape.count == 4 ? .nchw : .plain)
        }
        func tensors(_ any: Any?) -> [String: Tensor] {
            (any as? [String: Any] ?? [:]).mapValues { tensor($0) }
        }
        return list.map { c in
            Case(name: c["name"] as! String, config: c["config"] as! [String: Any], train: c["train"] as? Bool ?? false,
                 input: tensor(c["input"]), params: tensors(c["params"]), output: tensor(c["output"]),
                 probe: tensor(c["probe"]), gradInput: tensor(c["grad_input"]), gradParams: tensors(c["grad_params"]),
                 after: tensors(c["after"]), labels: (c["labels"] as? [NSNumber])?.map(\.intValue) ?? [],
                 loss: (c["loss"] as? NSNumber)?.floatValue)
        }
    }()

    /// NCHW fixtures become NHWC for LiteCNN; other ranks pass through.
    static func toLiteCNN(_ t: Tensor) -> Tensor { t.rank == 4 ? t.nchwToNHWC() : t }

    static func makeLayer(_ config: [String: Any]) -> any Layer {
        func ints(_ key: String) -> [Int] { (config[key] as! [NSNumber]).map(\.intValue) }
        func int(_ key: String) -> Int { (config[key] as! NSNumber).intValue }
        func bool(_ key: String) -> Bool { config[key] as? Bool ?? false }
        func activation(_ name: String) -> any Layer {
            switch name {
            case "relu": return ReLU()
            case "relu6": return ReLU6()
            case "sigmoid": return Sigmoid()
            case "hardsigmoid": return HardSigmoid()
            case "hardswish": return HardSwish()
            case "silu": return SiLU()
            default: fatalError("unknown activation \(name)")
            }
        }
        let type = config["type"] as! String
        switch type {
        case "conv":
            let p = ints("padding")
            return Conv2D(inputChannels: int("inputChannels"), outputChannels: int("outputChannels"),
                          kernelSize: (ints("kernel")[0], ints("kernel")[1]), stride: (ints("stride")[0], ints("stride")[1]),
                          padding: Padding2D(top: p[0], left: p[1], bottom: p[2], right: p[3]),
                          dilation: (ints("dilation")[0], ints("dilation")[1]), groups: int("groups"), bias: bool("bias"))
        case "batchnorm": return BatchNorm2D(int("channels"))
        case "linear": return Linear(int("inFeatures"), int("outFeatures"), bias: bool("bias"))
        case "maxpool":
            return MaxPool2D(kernelSize: int("kernel"), stride: int("stride"), padding: int("padding"), ceilMode: bool("ceil"))
        case "avgpool":
            return AvgPool2D(kernelSize: int("kernel"), stride: int("stride"), padding: int("padding"), ceilMode: bool("ceil"),
                             countIncludePad: bool("countIncludePad"))
        case "adaptiveavg": return AdaptiveAvgPool2D(outputSize: (ints("output")[0], ints("output")[1]))
        case "globalavg": return GlobalAvgPool()
        case "flatten": return Flatten()
        case "shuffle": return ChannelShuffle(groups: int("groups"))
        case "softmax": return Softmax()
        case "se":
            return SqueezeExcitation(inputChannels: int("inputChannels"), squeezeChannels: int("squeezeChannels"),
                                     activation: activation(config["activation"] as! String),
                                     gate: activation(config["gate"] as! String))
        default: return activation(type)
        }
    }

    func testFixtureIsPresentAndComplete() {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 39, "layer_goldens.json missing or truncated")
        let types = Set(Self.cases.map { $0.config["type"] as! String })
        for required in ["conv", "batchnorm", "linear", "relu", "relu6", "sigmoid", "hardsigmoid", "hardswish", "silu",
                         "maxpool", "avgpool", "adaptiveavg", "globalavg", "flatten", "shuffle", "softmax", "se",
                         "cross_entropy"] {
            XCTAssertTrue(types.contains(required), "no golden case for \(required)")
        }
    }

    func testLayersMatchPyTorch() {
        for c in Self.cases where (c.config["type"] as! String) != "cross_entropy" {
            let layer = Self.makeLayer(c.config)
            let prefix = c.config["prefix"] as? String ?? ""
            let named = Dictionary(uniqueKeysWithValues: layer.namedParameters().map { ($0.name, $0.parameter) })
            XCTAssertEqual(Set(named.keys), Set(c.params.keys.map { String($0.dropFirst(prefix.count)) }),
                           "\(c.name): parameter names differ from PyTorch's")
            for (name, value) in c.params {
                guard let p = named[String(name.dropFirst(prefix.count))] else { continue }
                XCTAssertEqual(p.value.shape, value.shape, "\(c.name): shape of \(name)")
                p.value = Tensor(shape: value.shape, scalars: value.scalars)
            }
            // Every case is differentiated, so state is saved (training mode), except inference-mode BatchNorm,
            // whose running statistics are the point of the case.
            let inferenceBatchNorm = !c.train && layer is BatchNorm2D
            if inferenceBatchNorm { layer.eval() } else { layer.train() }
            layer.zeroGradients()
            let y = layer.forward(Self.toLiteCNN(c.input))
            assertClose(y, Self.toLiteCNN(c.output), absolute: 1e-4, relative: 1e-4, "\(c.name) forward")
            if inferenceBatchNorm { continue }
            let dx = layer.backward(Self.toLiteCNN(c.probe))
            assertClose(dx, Self.toLiteCNN(c.gradInput), absolute: 2e-4, relative: 1e-3, "\(c.name) ∂L/∂input")
            for (name, g) in c.gradParams {
                guard let p = named[String(name.dropFirst(prefix.count))] else { continue }
                assertClose(p.gradient, g, absolute: 2e-4, relative: 1e-3, "\(c.name) ∂L/∂\(name)")
            }
            for (name, v) in c.after {
                guard let p = named[String(name.dropFirst(prefix.count))] else { continue }
                assertClose(p.value, v, absolute: 1e-5, relative: 1e-5, "\(c.name) \(name) after forward")
            }
        }
    }

    func testCrossEntropyMatchesPyTorch() throws {
        for c in Self.cases where (c.config["type"] as! String) == "cross_entropy" {
            let smoothing = (c.config["smoothing"] as! NSNumber).floatValue
            let loss = SoftmaxCrossEntropy(labelSmoothing: smoothing)
            let value = loss.loss(logits: c.input, labels: c.labels)
            let expected = try XCTUnwrap(c.loss)
            XCTAssertEqual(value, expected, accuracy: 1e-5, c.name)
            assertClose(loss.gradient(), c.gradInput, absolute: 1e-6, relative: 1e-4, "\(c.name) ∂L/∂logits")
        }
    }
}
