// Very Deep Convolutional Networks for Large-Scale Image Recognition
// Karen Simonyan, Andrew Zisserman — 2014 (ICLR 2015)
// https://arxiv.org/abs/1409.1556
//
// Variants computed here: configurations A, B, D and E of the paper's Table 1 (`vgg11`, `vgg13`, `vgg16`, `vgg19`),
// each optionally with a BatchNorm after every convolution (`vgg11_bn` …, torchvision's addition; the convolutions
// keep their bias, as in torchvision). All convolutions are 3×3 with padding 1; 2×2/2 max pools end each block; an
// adaptive average pool to 7×7 makes the classifier independent of the input size (torchvision's choice).
//
// Parameter names follow torchvision (`features.28.weight`, `classifier.6.bias`). Initialization follows
// torchvision: Kaiming-normal convolutions (fan-out, gain √2), zero biases, linear weights N(0, 0.01).
import LiteCNNLayers
import LiteCNNTensor

/// VGG (Simonyan & Zisserman 2014): stacks of 3×3 convolutions + ReLU separated by 2×2 max pools, then three fully
/// connected layers (4096, 4096, `classCount`) with dropout.
///
/// - Input: NHWC `[N, H, W, inputChannels]` with `H, W ≥ 32` (five 2× poolings); 224 is native.
/// - Output: logits `[N, classCount]`.
public final class VGG: ChainLayer {
    /// The configurations of the paper's Table 1 (without the LRN and 1×1-conv variants A-LRN and C).
    public enum Kind: String, Sendable, CaseIterable {
        case vgg11, vgg13, vgg16, vgg19

        /// Convolutions per block (five blocks of 64, 128, 256, 512, 512 channels).
        public var convolutionsPerBlock: [Int] {
            switch self {
            case .vgg11: [1, 1, 2, 2, 2]
            case .vgg13: [2, 2, 2, 2, 2]
            case .vgg16: [2, 2, 3, 3, 3]
            case .vgg19: [2, 2, 4, 4, 4]
            }
        }

        /// The paper's column letter.
        public var paperConfiguration: String {
            switch self {
            case .vgg11: "A"
            case .vgg13: "B"
            case .vgg16: "D"
            case .vgg19: "E"
            }
        }
    }

    public static let blockChannels = [64, 128, 256, 512, 512]

    public let kind: Kind
    public let batchNorm: Bool
    public let classCount: Int
    public let features: Sequential
    public let avgpool = AdaptiveAvgPool2D(outputSize: (7, 7))
    public let flatten = Flatten()
    /// Linear(512·7·7, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU → Dropout → Linear(4096, classCount).
    public let classifier: Sequential
    public var isTraining = false

    /// - Parameters:
    ///   - kind: depth configuration.
    ///   - batchNorm: a BatchNorm after every convolution (`vgg16_bn`).
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image (the first convolution takes them).
    ///   - dropout: dropout probability of the classifier (0.5 as in the paper).
    public init(_ kind: Kind = .vgg16, batchNorm: Bool = false, classCount: Int = 1000, inputChannels: Int = 3,
                dropout: Float = 0.5) {
        precondition(classCount >= 1 && inputChannels >= 1, "VGG: class and input channel counts must be positive")
        self.kind = kind
        self.batchNorm = batchNorm
        self.classCount = classCount
        var layers: [any Layer] = []
        var channels = inputChannels
        for (convolutions, output) in zip(kind.convolutionsPerBlock, Self.blockChannels) {
            for _ in 0..<convolutions {
                layers.append(Conv2D(channels, output, kernelSize: 3, padding: 1))
                if batchNorm { layers.append(BatchNorm2D(output)) }
                layers.append(ReLU())
                channels = output
            }
            layers.append(MaxPool2D(kernelSize: 2, stride: 2))
        }
        features = Sequential(layers)
        classifier = Sequential(Linear(channels * 7 * 7, 4096), ReLU(), Dropout(probability: dropout),
                                Linear(4096, 4096), ReLU(), Dropout(probability: dropout),
                                Linear(4096, classCount))
        for (_, layer) in namedLayers() {
            if let conv = layer as? Conv2D { TorchvisionInitialization.kaimingNormalFanOut(conv) }
            if let linear = layer as? Linear { TorchvisionInitialization.normal(linear, std: 0.01) }
        }
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("flatten", flatten), ("classifier", classifier)]
    }
}

extension VGG {
    /// `vgg11` … `vgg19` and their `_bn` variants.
    public static var zooEntries: [ModelZooEntry] {
        Kind.allCases.flatMap { kind in
            [false, true].map { batchNorm in
                ModelZooEntry(name: kind.rawValue + (batchNorm ? "_bn" : ""),
                              summary: "VGG configuration \(kind.paperConfiguration) (Simonyan & Zisserman 2014)"
                                  + (batchNorm ? " with BatchNorm" : "")) { options in
                    VGG(kind, batchNorm: batchNorm, classCount: options.classCount, inputChannels: options.inputChannels)
                }
            }
        }
    }
}
