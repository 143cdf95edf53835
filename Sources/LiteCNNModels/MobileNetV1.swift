// MobileNets: Efficient Convolutional Neural Networks for Mobile Vision Applications
// Andrew G. Howard, Menglong Zhu, Bo Chen, Dmitry Kalenichenko, Weijun Wang, Tobias Weyand, Marco Andreetto,
// Hartwig Adam — 2017
// https://arxiv.org/abs/1704.04861
//
// Variant rules computed here:
// - Table 1 of the paper: a 3×3/2 conv to 32 channels, then 13 depthwise-separable layers (3×3 depthwise conv + BN +
//   ReLU, 1×1 pointwise conv + BN + ReLU), global average pooling, a fully connected layer. Table 1 prints "s2" on the
//   last depthwise layer although its output stays 7×7; as every implementation does, that layer has stride 1.
// - Width multiplier α (§3.3): every channel count c becomes ⌊c·α⌋ (`int(c * alpha)` of Keras' MobileNet and of
//   /work/shared/bench/models.py), at least 1. TF-Slim's reference additionally never goes below 8 channels
//   (`min_depth = 8`); for the paper's α ∈ {1, 0.75, 0.5, 0.25} the rules agree.
// - Resolution multiplier ρ (§3.4): not a property of the network (no layer depends on it) but of its input, which is
//   224·ρ pixels square: ρ = 1, 6/7, 5/7, 4/7 give the paper's 224, 192, 160, 128 (`inputResolution(multiplier:)`).
//   The zoo's default resolution is 224; run other ρ by feeding other sizes.
// 1.0-MobileNet-224 has 4,231,976 parameters and 568.7 M multiply-adds (the paper's 4.2 M and 569 M).
//
// Parameter names follow models.py's reference: `features.N.0` (conv), `features.N.1` (BN) for N = 0 … 26, and `fc`.
// The convolutions have no bias; initialization is PyTorch's layer default (as in models.py).
import LiteCNNLayers
import LiteCNNTensor

/// MobileNet V1 (Howard et al. 2017).
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (any `H, W ≥ 1` works; 224·ρ is native).
/// - Output: logits `[N, classCount]`.
public final class MobileNetV1: ChainLayer {
    /// One depthwise-separable layer of Table 1: its pointwise output channels (at α = 1) and its depthwise stride.
    public struct SeparableLayer: Sendable, Equatable {
        public var outputChannels: Int
        public var stride: Int
    }

    public static let stemChannels = 32

    /// Table 1 of the paper, after the stem.
    public static let separableLayers: [SeparableLayer] = [
        (64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
        (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1),
    ].map { SeparableLayer(outputChannels: $0.0, stride: $0.1) }

    /// ⌊c·α⌋, at least 1: the channel rule of the width multiplier.
    public static func channels(_ base: Int, width: Double) -> Int { max(1, Int(Double(base) * width)) }

    /// The input side length for resolution multiplier ρ: `round(224·ρ)`.
    public static func inputResolution(multiplier: Double) -> Int { Int((224 * multiplier).rounded()) }

    public let width: Double
    public let classCount: Int
    /// `features.0` is the stem; `features.(2k+1)` and `features.(2k+2)` are the depthwise and pointwise parts of
    /// separable layer k, each a Sequential of conv (`0`), BatchNorm (`1`) and ReLU (`2`).
    public let features: Sequential
    public let avgpool = GlobalAvgPool()
    public let fc: Linear
    public var isTraining = false

    /// - Parameters:
    ///   - width: width multiplier α (> 0).
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image (the stem convolution takes them).
    public init(width: Double = 1, classCount: Int = 1000, inputChannels: Int = 3) {
        precondition(width > 0, "MobileNetV1: width multiplier must be positive, got \(width)")
        precondition(classCount >= 1 && inputChannels >= 1, "MobileNetV1: class and input channel counts must be positive")
        self.width = width
        self.classCount = classCount
        var channels = Self.channels(Self.stemChannels, width: width)
        var layers: [any Layer] = [conv2dNormActivation(inputChannels, channels, kernelSize: 3, stride: 2, activation: ReLU())]
        for layer in Self.separableLayers {
            let output = Self.channels(layer.outputChannels, width: width)
            layers.append(conv2dNormActivation(channels, channels, kernelSize: 3, stride: layer.stride, groups: channels,
                                               activation: ReLU()))
            layers.append(conv2dNormActivation(channels, output, kernelSize: 1, activation: ReLU()))
            channels = output
        }
        features = Sequential(layers)
        fc = Linear(channels, classCount)
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("fc", fc)]
    }
}

extension MobileNetV1 {
    /// `mobilenet_v1`; `ModelOptions.width` is the width multiplier α (default 1).
    public static var zooEntries: [ModelZooEntry] {
        [ModelZooEntry(name: "mobilenet_v1", summary: "MobileNet V1 (Howard et al. 2017), width multiplier α",
                       acceptsWidth: true) { options in
            MobileNetV1(width: options.width ?? 1, classCount: options.classCount, inputChannels: options.inputChannels)
        }]
    }
}
