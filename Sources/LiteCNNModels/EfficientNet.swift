// EfficientNet: Rethinking Model Scaling for Convolutional Neural Networks
// Mingxing Tan, Quoc V. Le — ICML 2019
// https://arxiv.org/abs/1905.11946
//
// Structure and parameter names follow torchvision's `efficientnet_b0` … `efficientnet_b7`
// (`features.2.1.block.2.fc1.weight`, `classifier.1.bias`).
import LiteCNNLayers
import LiteCNNTensor

/// EfficientNet-B0 … B7 (Tan & Le 2019): a 3×3 SiLU stem, seven stages of MBConv blocks from the B0 table (the paper's
/// Table 1), a 1×1 conv to 4× the last stage's channels, global average pooling, dropout and a linear classifier.
///
/// B1–B7 are not separate tables: compound scaling applies a width multiplier to every channel count
/// (`round_filters` = `makeDivisible(c · width, 8)`) and a depth multiplier to every stage's block count
/// (`round_repeats` = `⌈n · depth⌉`) of the one B0 table.
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (native resolution per variant:
///   224, 240, 260, 300, 380, 456, 528, 600).
/// - Output: logits `[N, classCount]`.
/// - Stochastic depth: block `i` of `n` (counted over the whole network) drops its residual branch with probability
///   `0.2 · i / n`, as torchvision does.
public final class EfficientNet: ChainLayer {
    public enum Variant: Int, CaseIterable, Sendable {
        case b0, b1, b2, b3, b4, b5, b6, b7

        /// (width, depth, resolution, dropout) of the paper's compound scaling, as torchvision uses them.
        public var widthMultiplier: Double { [1.0, 1.0, 1.1, 1.2, 1.4, 1.6, 1.8, 2.0][rawValue] }
        public var depthMultiplier: Double { [1.0, 1.1, 1.2, 1.4, 1.8, 2.2, 2.6, 3.1][rawValue] }
        public var resolution: Int { [224, 240, 260, 300, 380, 456, 528, 600][rawValue] }
        public var dropout: Float { [0.2, 0.2, 0.3, 0.3, 0.4, 0.4, 0.5, 0.5][rawValue] }
        /// torchvision's B5–B7 use the TensorFlow BatchNorm settings (ε = 0.001, momentum 0.01); B0–B4 PyTorch's.
        public var batchNorm: (epsilon: Float, momentum: Float) { rawValue >= 5 ? (1e-3, 0.01) : (1e-5, 0.1) }

        public var name: String { "efficientnet_b\(rawValue)" }
    }

    /// One stage of the B0 table (torchvision's `MBConvConfig`): expansion ratio, kernel, first stride, input and
    /// output channels, number of blocks.
    public struct StageConfig: Sendable, Equatable {
        public var expansion: Int
        public var kernel: Int
        public var stride: Int
        public var inputChannels: Int
        public var outputChannels: Int
        public var repeats: Int

        public init(expansion: Int, kernel: Int, stride: Int, input: Int, output: Int, repeats: Int) {
            self.expansion = expansion
            self.kernel = kernel
            self.stride = stride
            self.inputChannels = input
            self.outputChannels = output
            self.repeats = repeats
        }

        /// Compound scaling of one row: `round_filters` on channels, `round_repeats` on depth.
        public func scaled(width: Double, depth: Double) -> StageConfig {
            var row = self
            row.inputChannels = makeDivisible(Double(inputChannels) * width)
            row.outputChannels = makeDivisible(Double(outputChannels) * width)
            row.repeats = Int((Double(repeats) * depth).rounded(.up))
            return row
        }
    }

    /// EfficientNet-B0, the paper's Table 1 (stages 2–8).
    public static let b0Stages: [StageConfig] = [
        StageConfig(expansion: 1, kernel: 3, stride: 1, input: 32, output: 16, repeats: 1),
        StageConfig(expansion: 6, kernel: 3, stride: 2, input: 16, output: 24, repeats: 2),
        StageConfig(expansion: 6, kernel: 5, stride: 2, input: 24, output: 40, repeats: 2),
        StageConfig(expansion: 6, kernel: 3, stride: 2, input: 40, output: 80, repeats: 3),
        StageConfig(expansion: 6, kernel: 5, stride: 1, input: 80, output: 112, repeats: 3),
        StageConfig(expansion: 6, kernel: 5, stride: 2, input: 112, output: 192, repeats: 4),
        StageConfig(expansion: 6, kernel: 3, stride: 1, input: 192, output: 320, repeats: 1),
    ]
    public static let stochasticDepthProbability: Float = 0.2

    /// The mobile inverted bottleneck with squeeze-excitation (torchvision's `MBConv`): child `block` =
    /// [1×1 expand conv-BN-SiLU (omitted when the ratio is 1)] → k×k depthwise conv-BN-SiLU →
    /// squeeze-excitation (`max(1, input / 4)` channels, SiLU, sigmoid gate) → 1×1 conv-BN.
    /// With stride 1 and unchanged channels, `stochastic_depth(block(x)) + x` (each block seeds its own drop mask).
    public final class MBConv: Layer {
        public let block: Sequential
        public let stochasticDepth: DropPath
        public let usesResidual: Bool
        public var isTraining = false

        public init(inputChannels: Int, outputChannels: Int, kernel: Int, stride: Int, expansion: Int,
                    stochasticDepthProbability: Float, epsilon: Float = 1e-5, momentum: Float = 0.1,
                    stochasticDepthSeed: UInt64 = 0xE_FF1C) {
            precondition(stride == 1 || stride == 2, "EfficientNet.MBConv: stride must be 1 or 2, got \(stride)")
            let expanded = makeDivisible(Double(inputChannels * expansion))
            var layers: [any Layer] = []
            if expanded != inputChannels {
                layers.append(conv2dNormActivation(inputChannels, expanded, kernelSize: 1, epsilon: epsilon,
                                                   momentum: momentum, activation: SiLU()))
            }
            layers.append(conv2dNormActivation(expanded, expanded, kernelSize: kernel, stride: stride, groups: expanded,
                                               epsilon: epsilon, momentum: momentum, activation: SiLU()))
            layers.append(SqueezeExcitation(inputChannels: expanded, squeezeChannels: max(1, inputChannels / 4),
                                            activation: SiLU(), gate: Sigmoid()))
            layers.append(conv2dNormActivation(expanded, outputChannels, kernelSize: 1, epsilon: epsilon,
                                               momentum: momentum, activation: nil))
            block = Sequential(layers)
            stochasticDepth = DropPath(probability: stochasticDepthProbability, seed: stochasticDepthSeed)
            usesResidual = stride == 1 && inputChannels == outputChannels
        }

        public var children: [(name: String, layer: any Layer)] {
            [("block", block), ("stochastic_depth", stochasticDepth)]
        }

        public func forward(_ input: Tensor) -> Tensor {
            let output = block.forward(input)
            return usesResidual ? stochasticDepth.forward(output) + input : output
        }

        public func backward(_ gradOutput: Tensor) -> Tensor {
            guard usesResidual else { return block.backward(gradOutput) }
            return block.backward(stochasticDepth.backward(gradOutput)) + gradOutput
        }

        public func outputShape(for inputShape: [Int]) -> [Int] { block.outputShape(for: inputShape) }

        public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
            traceChain(usesResidual ? children : [("block", block)], inputShape, path: path, visit)
        }
    }

    public let variant: Variant
    public let classCount: Int
    public let features: Sequential
    public let avgpool = GlobalAvgPool()
    public let classifier: Sequential
    public var isTraining = false

    /// - Parameters:
    ///   - variant: `.b0` … `.b7`.
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image.
    ///   - stochasticDepthProbability: the drop probability the last block approaches (0.2 in torchvision; 0 disables).
    public init(_ variant: Variant, classCount: Int = 1000, inputChannels: Int = 3,
                stochasticDepthProbability: Float = EfficientNet.stochasticDepthProbability) {
        precondition(classCount >= 1 && inputChannels >= 1, "EfficientNet: class and input channel counts must be positive")
        self.variant = variant
        self.classCount = classCount
        let (epsilon, momentum) = variant.batchNorm
        let stages = Self.b0Stages.map { $0.scaled(width: variant.widthMultiplier, depth: variant.depthMultiplier) }
        var layers: [any Layer] = [
            conv2dNormActivation(inputChannels, stages[0].inputChannels, kernelSize: 3, stride: 2,
                                 epsilon: epsilon, momentum: momentum, activation: SiLU()),
        ]
        let totalBlocks = stages.reduce(0) { $0 + $1.repeats }
        var blockIndex = 0
        for stage in stages {
            var blocks: [any Layer] = []
            for index in 0..<stage.repeats {
                blocks.append(MBConv(inputChannels: index == 0 ? stage.inputChannels : stage.outputChannels,
                                     outputChannels: stage.outputChannels, kernel: stage.kernel,
                                     stride: index == 0 ? stage.stride : 1, expansion: stage.expansion,
                                     stochasticDepthProbability: stochasticDepthProbability * Float(blockIndex) / Float(totalBlocks),
                                     epsilon: epsilon, momentum: momentum,
                                     stochasticDepthSeed: 0xE_FF1C &+ UInt64(blockIndex)))
                blockIndex += 1
            }
            layers.append(Sequential(blocks))
        }
        let lastConvInput = stages[stages.count - 1].outputChannels
        let lastConvOutput = 4 * lastConvInput
        layers.append(conv2dNormActivation(lastConvInput, lastConvOutput, kernelSize: 1,
                                           epsilon: epsilon, momentum: momentum, activation: SiLU()))
        features = Sequential(layers)
        classifier = Sequential(Dropout(probability: variant.dropout), Linear(lastConvOutput, classCount))
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("classifier", classifier)]
    }
}

extension EfficientNet {
    /// `efficientnet_b0` … `efficientnet_b7`, each with its native resolution.
    public static var zooEntries: [ModelZooEntry] {
        Variant.allCases.map { variant in
            ModelZooEntry(name: variant.name,
                          summary: "EfficientNet-B\(variant.rawValue) (Tan & Le 2019), width ×\(variant.widthMultiplier), depth ×\(variant.depthMultiplier)",
                          defaultResolution: variant.resolution) { options in
                EfficientNet(variant, classCount: options.classCount, inputChannels: options.inputChannels)
            }
        }
    }
}
