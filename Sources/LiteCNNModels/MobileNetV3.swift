// Searching for MobileNetV3
// Andrew Howard, Mark Sandler, Grace Chu, Liang-Chieh Chen, Bo Chen, Mingxing Tan, Weijun Wang, Yukun Zhu,
// Ruoming Pang, Vijay Vasudevan, Quoc V. Le, Hartwig Adam — ICCV 2019
// https://arxiv.org/abs/1905.02244
//
// Structure and parameter names follow torchvision's `mobilenet_v3_large` / `mobilenet_v3_small`
// (`features.4.block.2.fc1.weight`, `classifier.3.bias`).
import LiteCNNLayers
import LiteCNNTensor

/// MobileNetV3 Large or Small (Howard et al. 2019): a 3×3 hard-swish stem, the bottleneck blocks of the paper's
/// Table 1 (Large) or Table 2 (Small), a 1×1 conv to 6× the last block's channels, global average pooling, and a
/// two-layer classifier (Linear → hard-swish → dropout → Linear).
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (224 is native).
/// - Output: logits `[N, classCount]`.
/// - Width multiplier α scales every channel count of the table (and the classifier's hidden width) through
///   `makeDivisible(c · α, 8)`; squeeze-excitation uses `makeDivisible(expanded / 4, 8)` channels.
/// - BatchNorm uses ε = 0.001 and momentum 0.01 (torchvision).
public final class MobileNetV3: ChainLayer {
    public enum Variant: String, CaseIterable, Sendable {
        case large, small

        /// The bottleneck rows of the paper (Table 1 for Large, Table 2 for Small), before width scaling.
        public var blocks: [BlockConfig] {
            typealias B = BlockConfig
            switch self {
            case .large:
                return [
                    B(16, kernel: 3, expanded: 16, output: 16, squeezeExcite: false, .relu, stride: 1),
                    B(16, kernel: 3, expanded: 64, output: 24, squeezeExcite: false, .relu, stride: 2),
                    B(24, kernel: 3, expanded: 72, output: 24, squeezeExcite: false, .relu, stride: 1),
                    B(24, kernel: 5, expanded: 72, output: 40, squeezeExcite: true, .relu, stride: 2),
                    B(40, kernel: 5, expanded: 120, output: 40, squeezeExcite: true, .relu, stride: 1),
                    B(40, kernel: 5, expanded: 120, output: 40, squeezeExcite: true, .relu, stride: 1),
                    B(40, kernel: 3, expanded: 240, output: 80, squeezeExcite: false, .hardSwish, stride: 2),
                    B(80, kernel: 3, expanded: 200, output: 80, squeezeExcite: false, .hardSwish, stride: 1),
                    B(80, kernel: 3, expanded: 184, output: 80, squeezeExcite: false, .hardSwish, stride: 1),
                    B(80, kernel: 3, expanded: 184, output: 80, squeezeExcite: false, .hardSwish, stride: 1),
                    B(80, kernel: 3, expanded: 480, output: 112, squeezeExcite: true, .hardSwish, stride: 1),
                    B(112, kernel: 3, expanded: 672, output: 112, squeezeExcite: true, .hardSwish, stride: 1),
                    B(112, kernel: 5, expanded: 672, output: 160, squeezeExcite: true, .hardSwish, stride: 2),
                    B(160, kernel: 5, expanded: 960, output: 160, squeezeExcite: true, .hardSwish, stride: 1),
                    B(160, kernel: 5, expanded: 960, output: 160, squeezeExcite: true, .hardSwish, stride: 1),
                ]
            case .small:
                return [
                    B(16, kernel: 3, expanded: 16, output: 16, squeezeExcite: true, .relu, stride: 2),
                    B(16, kernel: 3, expanded: 72, output: 24, squeezeExcite: false, .relu, stride: 2),
                    B(24, kernel: 3, expanded: 88, output: 24, squeezeExcite: false, .relu, stride: 1),
                    B(24, kernel: 5, expanded: 96, output: 40, squeezeExcite: true, .hardSwish, stride: 2),
                    B(40, kernel: 5, expanded: 240, output: 40, squeezeExcite: true, .hardSwish, stride: 1),
                    B(40, kernel: 5, expanded: 240, output: 40, squeezeExcite: true, .hardSwish, stride: 1),
                    B(40, kernel: 5, expanded: 120, output: 48, squeezeExcite: true, .hardSwish, stride: 1),
                    B(48, kernel: 5, expanded: 144, output: 48, squeezeExcite: true, .hardSwish, stride: 1),
                    B(48, kernel: 5, expanded: 288, output: 96, squeezeExcite: true, .hardSwish, stride: 2),
                    B(96, kernel: 5, expanded: 576, output: 96, squeezeExcite: true, .hardSwish, stride: 1),
                    B(96, kernel: 5, expanded: 576, output: 96, squeezeExcite: true, .hardSwish, stride: 1),
                ]
            }
        }

        /// Hidden width of the classifier before width scaling (1280 Large, 1024 Small).
        public var classifierChannels: Int { self == .large ? 1280 : 1024 }
    }

    public enum Activation: String, Sendable {
        /// "RE" in the paper.
        case relu
        /// "HS" in the paper.
        case hardSwish

        func makeLayer() -> any Layer { self == .relu ? ReLU() : HardSwish() }
    }

    /// One bottleneck row (torchvision's `InvertedResidualConfig`): input, kernel, expanded ("exp size") and output
    /// channels, squeeze-excitation, nonlinearity and stride.
    public struct BlockConfig: Sendable, Equatable {
        public var inputChannels: Int
        public var kernel: Int
        public var expandedChannels: Int
        public var outputChannels: Int
        public var squeezeExcite: Bool
        public var activation: Activation
        public var stride: Int

        public init(_ inputChannels: Int, kernel: Int, expanded: Int, output: Int, squeezeExcite: Bool,
                    _ activation: Activation, stride: Int) {
            self.inputChannels = inputChannels
            self.kernel = kernel
            self.expandedChannels = expanded
            self.outputChannels = output
            self.squeezeExcite = squeezeExcite
            self.activation = activation
            self.stride = stride
        }

        /// The row with every channel count scaled by `width` (`makeDivisible(c · width, 8)`).
        public func scaled(by width: Double) -> BlockConfig {
            var row = self
            row.inputChannels = makeDivisible(Double(inputChannels) * width)
            row.expandedChannels = makeDivisible(Double(expandedChannels) * width)
            row.outputChannels = makeDivisible(Double(outputChannels) * width)
            return row
        }
    }

    /// The bottleneck block (torchvision's `InvertedResidual`): child `block` = [1×1 expand conv-BN-act (omitted when
    /// expanded = input)] → k×k depthwise conv-BN-act → [squeeze-excitation, hard-sigmoid gate] → 1×1 conv-BN.
    /// The input is added back when the stride is 1 and the channel count is unchanged.
    public final class InvertedResidual: SkipConnectedBlock {
        public let block: Sequential
        public let usesResidual: Bool
        public var isTraining = false

        public init(_ config: BlockConfig, epsilon: Float = 1e-3, momentum: Float = 0.01) {
            precondition(config.stride == 1 || config.stride == 2, "MobileNetV3.InvertedResidual: stride must be 1 or 2")
            let c = config
            var layers: [any Layer] = []
            if c.expandedChannels != c.inputChannels {
                layers.append(conv2dNormActivation(c.inputChannels, c.expandedChannels, kernelSize: 1,
                                                   epsilon: epsilon, momentum: momentum, activation: c.activation.makeLayer()))
            }
            layers.append(conv2dNormActivation(c.expandedChannels, c.expandedChannels, kernelSize: c.kernel, stride: c.stride,
                                               groups: c.expandedChannels, epsilon: epsilon, momentum: momentum,
                                               activation: c.activation.makeLayer()))
            if c.squeezeExcite {
                layers.append(SqueezeExcitation(inputChannels: c.expandedChannels,
                                                squeezeChannels: makeDivisible(Double(c.expandedChannels / 4)),
                                                activation: ReLU(), gate: HardSigmoid()))
            }
            layers.append(conv2dNormActivation(c.expandedChannels, c.outputChannels, kernelSize: 1,
                                               epsilon: epsilon, momentum: momentum, activation: nil))
            block = Sequential(layers)
            usesResidual = c.stride == 1 && c.inputChannels == c.outputChannels
        }

        var body: Sequential { block }
        var bodyName: String { "block" }
    }

    public let variant: Variant
    public let width: Double
    public let classCount: Int
    public let features: Sequential
    public let avgpool = GlobalAvgPool()
    public let classifier: Sequential
    public var isTraining = false

    /// - Parameters:
    ///   - variant: `.large` or `.small`.
    ///   - width: width multiplier α (> 0).
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image.
    ///   - dropout: dropout probability inside the classifier (0.2 as in torchvision).
    public init(_ variant: Variant, width: Double = 1, classCount: Int = 1000, inputChannels: Int = 3, dropout: Float = 0.2) {
        precondition(width > 0, "MobileNetV3: width multiplier must be positive, got \(width)")
        precondition(classCount >= 1 && inputChannels >= 1, "MobileNetV3: class and input channel counts must be positive")
        self.variant = variant
        self.width = width
        self.classCount = classCount
        let rows = variant.blocks.map { $0.scaled(by: width) }
        let (epsilon, momentum): (Float, Float) = (1e-3, 0.01)
        var layers: [any Layer] = [
            conv2dNormActivation(inputChannels, rows[0].inputChannels, kernelSize: 3, stride: 2,
                                 epsilon: epsilon, momentum: momentum, activation: HardSwish()),
        ]
        for row in rows { layers.append(InvertedResidual(row, epsilon: epsilon, momentum: momentum)) }
        let lastConvInput = rows[rows.count - 1].outputChannels
        let lastConvOutput = 6 * lastConvInput
        layers.append(conv2dNormActivation(lastConvInput, lastConvOutput, kernelSize: 1,
                                           epsilon: epsilon, momentum: momentum, activation: HardSwish()))
        features = Sequential(layers)
        let hidden = makeDivisible(Double(variant.classifierChannels) * width)
        classifier = Sequential(Linear(lastConvOutput, hidden), HardSwish(), Dropout(probability: dropout),
                                Linear(hidden, classCount))
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("classifier", classifier)]
    }
}

extension MobileNetV3 {
    /// `mobilenet_v3_large` and `mobilenet_v3_small`; `ModelOptions.width` is the width multiplier α (default 1).
    public static var zooEntries: [ModelZooEntry] {
        Variant.allCases.map { variant in
            ModelZooEntry(name: "mobilenet_v3_\(variant.rawValue)",
                          summary: "MobileNetV3-\(variant == .large ? "Large" : "Small") (Howard et al. 2019), width multiplier α",
                          acceptsWidth: true) { options in
                MobileNetV3(variant, width: options.width ?? 1, classCount: options.classCount,
                            inputChannels: options.inputChannels)
            }
        }
    }
}
