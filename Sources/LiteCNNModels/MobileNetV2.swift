// MobileNetV2: Inverted Residuals and Linear Bottlenecks
// Mark Sandler, Andrew Howard, Menglong Zhu, Andrey Zhmoginov, Liang-Chieh Chen — CVPR 2018
// https://arxiv.org/abs/1801.04381
//
// Structure and parameter names follow torchvision's `mobilenet_v2` (`features.2.conv.0.0.weight`, `classifier.1.bias`).
import LiteCNNLayers
import LiteCNNTensor

/// MobileNetV2 (Sandler et al. 2018): a 3×3 stem, 17 inverted-residual blocks from the paper's Table 2, a 1×1
/// conv to 1280 channels, global average pooling and a linear classifier.
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (any `H, W ≥ 1` works; 224 is native).
/// - Output: logits `[N, classCount]`.
/// - Width multiplier α scales every channel count through `makeDivisible(c · α, 8)`; the last conv keeps at least
///   1280 channels (`makeDivisible(1280 · max(1, α), 8)`), as torchvision does.
public final class MobileNetV2: ChainLayer {
    /// One row of the paper's Table 2: a stage of `repeats` blocks with expansion factor `t`, `c` output channels,
    /// the first block strided by `s`.
    public struct StageConfig: Sendable, Equatable {
        public var expansion: Int
        public var outputChannels: Int
        public var repeats: Int
        public var stride: Int
    }

    /// Table 2 of the paper (t, c, n, s).
    public static let stages: [StageConfig] = [
        StageConfig(expansion: 1, outputChannels: 16, repeats: 1, stride: 1),
        StageConfig(expansion: 6, outputChannels: 24, repeats: 2, stride: 2),
        StageConfig(expansion: 6, outputChannels: 32, repeats: 3, stride: 2),
        StageConfig(expansion: 6, outputChannels: 64, repeats: 4, stride: 2),
        StageConfig(expansion: 6, outputChannels: 96, repeats: 3, stride: 1),
        StageConfig(expansion: 6, outputChannels: 160, repeats: 3, stride: 2),
        StageConfig(expansion: 6, outputChannels: 320, repeats: 1, stride: 1),
    ]
    public static let stemChannels = 32
    public static let lastChannels = 1280

    /// The inverted-residual block (torchvision's `InvertedResidual`): child `conv` =
    /// [1×1 expand conv-BN-ReLU6 (omitted when t = 1)] → 3×3 depthwise conv-BN-ReLU6 → 1×1 linear projection → BN.
    /// The input is added back when the stride is 1 and the channel count is unchanged.
    public final class InvertedResidual: SkipConnectedBlock {
        public let conv: Sequential
        public let usesResidual: Bool
        public var isTraining = false

        public init(inputChannels: Int, outputChannels: Int, stride: Int, expansion: Int) {
            precondition(stride == 1 || stride == 2, "MobileNetV2.InvertedResidual: stride must be 1 or 2, got \(stride)")
            let hidden = inputChannels * expansion
            var layers: [any Layer] = []
            if expansion != 1 { layers.append(conv2dNormActivation(inputChannels, hidden, kernelSize: 1, activation: ReLU6())) }
            layers.append(conv2dNormActivation(hidden, hidden, kernelSize: 3, stride: stride, groups: hidden, activation: ReLU6()))
            layers.append(Conv2D(hidden, outputChannels, kernelSize: 1, bias: false))
            layers.append(BatchNorm2D(outputChannels))
            conv = Sequential(layers)
            usesResidual = stride == 1 && inputChannels == outputChannels
        }

        var body: Sequential { conv }
        var bodyName: String { "conv" }
    }

    public let width: Double
    public let classCount: Int
    public let features: Sequential
    public let avgpool = GlobalAvgPool()
    public let classifier: Sequential
    public var isTraining = false

    /// - Parameters:
    ///   - width: width multiplier α (> 0); 1 is the paper's 224×224 model.
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image.
    ///   - dropout: dropout probability before the classifier (0.2 as in torchvision).
    public init(width: Double = 1, classCount: Int = 1000, inputChannels: Int = 3, dropout: Float = 0.2) {
        precondition(width > 0, "MobileNetV2: width multiplier must be positive, got \(width)")
        precondition(classCount >= 1 && inputChannels >= 1, "MobileNetV2: class and input channel counts must be positive")
        self.width = width
        self.classCount = classCount
        var channels = makeDivisible(Double(Self.stemChannels) * width)
        var layers: [any Layer] = [conv2dNormActivation(inputChannels, channels, kernelSize: 3, stride: 2, activation: ReLU6())]
        for stage in Self.stages {
            let output = makeDivisible(Double(stage.outputChannels) * width)
            for index in 0..<stage.repeats {
                layers.append(InvertedResidual(inputChannels: channels, outputChannels: output,
                                               stride: index == 0 ? stage.stride : 1, expansion: stage.expansion))
                channels = output
            }
        }
        let last = makeDivisible(Double(Self.lastChannels) * max(1, width))
        layers.append(conv2dNormActivation(channels, last, kernelSize: 1, activation: ReLU6()))
        features = Sequential(layers)
        classifier = Sequential(Dropout(probability: dropout), Linear(last, classCount))
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("classifier", classifier)]
    }
}

extension MobileNetV2 {
    /// `mobilenet_v2`; `ModelOptions.width` is the width multiplier α (default 1).
    public static var zooEntries: [ModelZooEntry] {
        [ModelZooEntry(name: "mobilenet_v2", summary: "MobileNetV2 (Sandler et al. 2018), width multiplier α",
                       acceptsWidth: true) { options in
            MobileNetV2(width: options.width ?? 1, classCount: options.classCount, inputChannels: options.inputChannels)
        }]
    }
}
