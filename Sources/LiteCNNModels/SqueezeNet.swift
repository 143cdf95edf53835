// SqueezeNet: AlexNet-level accuracy with 50x fewer parameters and <0.5MB model size
// Forrest N. Iandola, Song Han, Matthew W. Moskewicz, Khalid Ashraf, William J. Dally, Kurt Keutzer — 2016
// https://arxiv.org/abs/1602.07360
//
// Variants computed here:
// - `squeezenet1_0`: the paper's Table 1 network exactly as torchvision builds it (7×7/2 stem with 96 filters,
//   max pools after conv1, fire4 and fire8, ceil-mode pooling, conv10 classifier).
// - `squeezenet1_1`: SqueezeNet v1.1 from the authors' repository (github.com/DeepScale/SqueezeNet): 3×3/2 stem with
//   64 filters and the pools moved earlier (after conv1, fire3, fire5); 2.4× fewer MACs at the same accuracy.
// - Bypass variants, §6 and Figure 2 of the paper: a *simple bypass* (identity, `fire(x) + x`) around every Fire
//   module whose input and output channel counts match — fire3, fire5, fire7 and fire9 of v1.0 (128, 256, 384 and
//   512 channels); a *complex bypass* additionally puts a 1×1 convolution (with bias, as many filters as the module's
//   outputs) on the bypass of the modules whose channel counts differ — fire2 (96→128), fire4 (128→256),
//   fire6 (256→384) and fire8 (384→512). The sum is taken after the concatenated expand activations, with no ReLU
//   after it. Parameter counts obtained here: simple bypass 1,248,424 (identity bypasses add nothing), complex bypass
//   1,589,672 (+341,248 = 12,416 + 33,024 + 98,688 + 197,120). The paper's Table 3 lists 4.8 MB and 7.7 MB; the
//   1×1 bypasses alone give 6.1 MiB at 32 bits, so the paper's complex-bypass model carried something more that the
//   text does not describe.
// - BatchNorm variants (`_bn`, not in the paper nor torchvision): a BatchNorm after every convolution of the stem and
//   of the Fire modules (squeeze, both expands and a complex bypass), those convolutions then without bias; the
//   conv10 classifier keeps its bias and has no BatchNorm. The stem becomes `features.0` conv, `features.1` BN,
//   `features.2` ReLU, so later `features` indices shift by one (as torchvision's `vgg16_bn` does).
//
// Parameter names follow torchvision's `squeezenet1_0`/`squeezenet1_1` (`features.3.expand3x3.weight`,
// `classifier.1.bias`); the added layers are named `bypass`, `bypass_bn`, `squeeze_bn`, `expand1x1_bn`, `expand3x3_bn`.
// Initialization follows torchvision: Kaiming-uniform convolutions (gain √2, fan-in), the final conv N(0, 0.01),
// zero biases.
import LiteCNNLayers
import LiteCNNTensor

/// SqueezeNet (Iandola et al. 2016): a stem convolution, eight Fire modules with max pools between them and a 1×1
/// convolution classifier followed by global average pooling.
///
/// - Input: NHWC `[N, H, W, inputChannels]`. v1.0 needs `H, W ≥ 29` (stem 7×7/2 and three ceil-mode 3×3/2 pools,
///   each pool window within its input), v1.1 needs `H, W ≥ 25`; 224 is native. (PyTorch's ceil-mode rule also
///   accepts a 3×3 window over a 2-pixel input, which lowers its limits to 21 and 17.)
/// - Output: logits `[N, classCount]` (after the classifier's ReLU, as in torchvision).
public final class SqueezeNet: ChainLayer {
    /// The two published macro-architectures.
    public enum Version: String, Sendable, CaseIterable {
        /// Table 1 of the paper.
        case v1_0
        /// The authors' v1.1: smaller stem, earlier pooling.
        case v1_1
    }

    /// Which bypass connections (paper §6) the network uses.
    public enum BypassKind: String, Sendable, CaseIterable {
        /// Vanilla SqueezeNet.
        case none
        /// Identity bypass around the Fire modules whose input and output channel counts match.
        case simple
        /// `simple`, plus a 1×1 convolution bypass around the other Fire modules.
        case complex
    }

    /// One step of `features` after the stem.
    enum Stage {
        case pool
        case fire(squeeze: Int, expand: Int)
    }

    /// The Fire module: a 1×1 *squeeze* convolution to `squeezeChannels`, then two parallel *expand* convolutions —
    /// 1×1 and 3×3 (padding 1) with `expand1x1Channels` and `expand3x3Channels` filters — each followed by a ReLU, and
    /// their outputs concatenated on channels (1×1 first).
    ///
    /// - Input: `[N, H, W, inputChannels]`; output: `[N, H, W, expand1x1Channels + expand3x3Channels]`.
    /// - Bypass: `.identity` adds the input to the output (channel counts must match); `.projection` adds a 1×1
    ///   convolution of the input (child `bypass`).
    /// - `batchNorm`: a BatchNorm (children `squeeze_bn`, `expand1x1_bn`, `expand3x3_bn`, `bypass_bn`) after each
    ///   convolution, which then has no bias.
    public final class Fire: Layer {
        public enum Bypass: String, Sendable {
            case none, identity, projection
        }

        public let inputChannels: Int
        public let squeezeChannels: Int
        public let expand1x1Channels: Int
        public let expand3x3Channels: Int
        public let bypass: Bypass
        public var isTraining = false

        /// squeeze → [squeeze_bn] → squeeze_activation.
        private let squeezeStage: [(name: String, layer: any Layer)]
        /// expand1x1 → [expand1x1_bn] → expand1x1_activation.
        private let expand1x1Stage: [(name: String, layer: any Layer)]
        /// expand3x3 → [expand3x3_bn] → expand3x3_activation.
        private let expand3x3Stage: [(name: String, layer: any Layer)]
        /// bypass → [bypass_bn] for a projection bypass; empty otherwise.
        private let bypassStage: [(name: String, layer: any Layer)]

        public init(inputChannels: Int, squeezeChannels: Int, expand1x1Channels: Int, expand3x3Channels: Int,
                    bypass: Bypass = .none, batchNorm: Bool = false) {
            let outputChannels = expand1x1Channels + expand3x3Channels
            precondition(bypass != .identity || inputChannels == outputChannels,
                         "SqueezeNet.Fire: identity bypass needs input channels (\(inputChannels)) = output channels (\(outputChannels))")
            self.inputChannels = inputChannels
            self.squeezeChannels = squeezeChannels
            self.expand1x1Channels = expand1x1Channels
            self.expand3x3Channels = expand3x3Channels
            self.bypass = bypass

            func convStage(_ name: String, _ conv: Conv2D, activation: Bool) -> [(name: String, layer: any Layer)] {
                var stage: [(name: String, layer: any Layer)] = [(name, conv)]
                if batchNorm { stage.append((name + "_bn", BatchNorm2D(conv.outputChannels))) }
                if activation { stage.append((name + "_activation", ReLU())) }
                return stage
            }
            squeezeStage = convStage("squeeze", Conv2D(inputChannels, squeezeChannels, kernelSize: 1, bias: !batchNorm),
                                     activation: true)
            expand1x1Stage = convStage("expand1x1", Conv2D(squeezeChannels, expand1x1Channels, kernelSize: 1, bias: !batchNorm),
                                       activation: true)
            expand3x3Stage = convStage("expand3x3", Conv2D(squeezeChannels, expand3x3Channels, kernelSize: 3, padding: 1,
                                                           bias: !batchNorm), activation: true)
            bypassStage = bypass == .projection
                ? convStage("bypass", Conv2D(inputChannels, outputChannels, kernelSize: 1, bias: !batchNorm), activation: false)
                : []
        }

        public var outputChannels: Int { expand1x1Channels + expand3x3Channels }

        public var children: [(name: String, layer: any Layer)] {
            squeezeStage + expand1x1Stage + expand3x3Stage + bypassStage
        }

        /// The convolutions of the module, for initialization: squeeze, expand1x1, expand3x3 and a projection bypass.
        var convolutions: [Conv2D] { children.compactMap { $0.layer as? Conv2D } }

        private static func forward(_ stage: [(name: String, layer: any Layer)], _ input: Tensor) -> Tensor {
            stage.reduce(input) { $1.layer.forward($0) }
        }

        private static func backward(_ stage: [(name: String, layer: any Layer)], _ gradOutput: Tensor) -> Tensor {
            stage.reversed().reduce(gradOutput) { $1.layer.backward($0) }
        }

        public func forward(_ input: Tensor) -> Tensor {
            let squeezed = Self.forward(squeezeStage, input)
            var output = Tensor.concatenated([Self.forward(expand1x1Stage, squeezed), Self.forward(expand3x3Stage, squeezed)],
                                             axis: -1)
            switch bypass {
            case .none: break
            case .identity: output += input
            case .projection: output += Self.forward(bypassStage, input)
            }
            return output
        }

        public func backward(_ gradOutput: Tensor) -> Tensor {
            let parts = gradOutput.split(axis: -1, sizes: [expand1x1Channels, expand3x3Channels])
            var gradSqueezed = Self.backward(expand1x1Stage, parts[0])
            gradSqueezed += Self.backward(expand3x3Stage, parts[1])
            var gradInput = Self.backward(squeezeStage, gradSqueezed)
            switch bypass {
            case .none: break
            case .identity: gradInput += gradOutput
            case .projection: gradInput += Self.backward(bypassStage, gradOutput)
            }
            return gradInput
        }

        public func outputShape(for inputShape: [Int]) -> [Int] {
            precondition(inputShape.count == 4 && inputShape[3] == inputChannels,
                         "SqueezeNet.Fire: expected NHWC input with \(inputChannels) channels, got \(inputShape)")
            return [inputShape[0], inputShape[1], inputShape[2], outputChannels]
        }

        public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
            let squeezed = traceChain(squeezeStage, inputShape, path: path, visit)
            let a = traceChain(expand1x1Stage, squeezed, path: path, visit)
            let b = traceChain(expand3x3Stage, squeezed, path: path, visit)
            if !bypassStage.isEmpty { _ = traceChain(bypassStage, inputShape, path: path, visit) }
            return [a[0], a[1], a[2], a[3] + b[3]]
        }
    }

    public let version: Version
    public let bypassKind: BypassKind
    public let batchNorm: Bool
    public let classCount: Int
    public let features: Sequential
    /// Dropout(0.5) → 1×1 conv to `classCount` → ReLU → adaptive average pool to 1×1 (torchvision's `classifier`).
    public let classifier: Sequential
    public let flatten = Flatten()
    public var isTraining = false

    /// - Parameters:
    ///   - version: v1.0 (paper) or v1.1.
    ///   - bypass: bypass connections of the paper's §6.
    ///   - batchNorm: a BatchNorm after every stem and Fire convolution.
    ///   - classCount: number of classes (filters of the final conv).
    ///   - inputChannels: channels of the input image (the stem convolution takes them).
    ///   - dropout: dropout probability before the final conv (0.5 as in the paper).
    public init(version: Version = .v1_0, bypass: BypassKind = .none, batchNorm: Bool = false, classCount: Int = 1000,
                inputChannels: Int = 3, dropout: Float = 0.5) {
        precondition(classCount >= 1 && inputChannels >= 1, "SqueezeNet: class and input channel counts must be positive")
        self.version = version
        self.bypassKind = bypass
        self.batchNorm = batchNorm
        self.classCount = classCount

        let stemChannels: Int, stemKernel: Int, stages: [Stage]
        switch version {
        case .v1_0:
            (stemChannels, stemKernel) = (96, 7)
            stages = [.pool, .fire(squeeze: 16, expand: 64), .fire(squeeze: 16, expand: 64), .fire(squeeze: 32, expand: 128),
                      .pool, .fire(squeeze: 32, expand: 128), .fire(squeeze: 48, expand: 192), .fire(squeeze: 48, expand: 192),
                      .fire(squeeze: 64, expand: 256), .pool, .fire(squeeze: 64, expand: 256)]
        case .v1_1:
            (stemChannels, stemKernel) = (64, 3)
            stages = [.pool, .fire(squeeze: 16, expand: 64), .fire(squeeze: 16, expand: 64), .pool,
                      .fire(squeeze: 32, expand: 128), .fire(squeeze: 32, expand: 128), .pool,
                      .fire(squeeze: 48, expand: 192), .fire(squeeze: 48, expand: 192),
                      .fire(squeeze: 64, expand: 256), .fire(squeeze: 64, expand: 256)]
        }

        let stem = Conv2D(inputChannels, stemChannels, kernelSize: stemKernel, stride: 2, bias: !batchNorm)
        var layers: [any Layer] = [stem]
        if batchNorm { layers.append(BatchNorm2D(stemChannels)) }
        layers.append(ReLU())
        var channels = stemChannels
        for stage in stages {
            switch stage {
            case .pool:
                layers.append(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true))
            case let .fire(squeeze, expand):
                let output = 2 * expand
                let fireBypass: Fire.Bypass = switch bypass {
                case .none: .none
                case .simple: channels == output ? .identity : .none
                case .complex: channels == output ? .identity : .projection
                }
                layers.append(Fire(inputChannels: channels, squeezeChannels: squeeze, expand1x1Channels: expand,
                                   expand3x3Channels: expand, bypass: fireBypass, batchNorm: batchNorm))
                channels = output
            }
        }
        features = Sequential(layers)
        let finalConv = Conv2D(channels, classCount, kernelSize: 1)
        classifier = Sequential(Dropout(probability: dropout), finalConv, ReLU(), AdaptiveAvgPool2D(outputSize: (1, 1)))

        // torchvision: kaiming_uniform_ on every conv but the last, normal(0, 0.01) on the last, zero biases.
        var convolutions: [Conv2D] = [stem]
        for case let fire as Fire in layers { convolutions += fire.convolutions }
        for conv in convolutions { TorchvisionInitialization.kaimingUniform(conv) }
        TorchvisionInitialization.normal(finalConv, std: 0.01)
    }

    /// The Fire modules in order (the paper's fire2 … fire9).
    public var fireModules: [Fire] { features.layers.compactMap { $0.layer as? Fire } }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("classifier", classifier), ("flatten", flatten)]
    }
}

extension SqueezeNet {
    /// `squeezenet1_0`, `squeezenet1_1`, the v1.0 bypass variants and the BatchNorm variants.
    public static var zooEntries: [ModelZooEntry] {
        func entry(_ name: String, _ summary: String, _ version: Version, _ bypass: BypassKind = .none,
                   batchNorm: Bool = false) -> ModelZooEntry {
            ModelZooEntry(name: name, summary: summary) { options in
                SqueezeNet(version: version, bypass: bypass, batchNorm: batchNorm, classCount: options.classCount,
                           inputChannels: options.inputChannels)
            }
        }
        return [
            entry("squeezenet1_0", "SqueezeNet 1.0 (Iandola et al. 2016)", .v1_0),
            entry("squeezenet1_1", "SqueezeNet 1.1 (2.4× fewer MACs than 1.0)", .v1_1),
            entry("squeezenet1_0_bypass", "SqueezeNet 1.0 + simple bypass around fire3/5/7/9 (paper §6)", .v1_0, .simple),
            entry("squeezenet1_0_complex_bypass", "SqueezeNet 1.0 + simple and 1×1-conv bypasses (paper §6)", .v1_0, .complex),
            entry("squeezenet1_0_bn", "SqueezeNet 1.0 with BatchNorm after every stem and Fire conv", .v1_0, batchNorm: true),
            entry("squeezenet1_1_bn", "SqueezeNet 1.1 with BatchNorm after every stem and Fire conv", .v1_1, batchNorm: true),
        ]
    }
}
