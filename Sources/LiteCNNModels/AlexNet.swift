// ImageNet Classification with Deep Convolutional Neural Networks
// Alex Krizhevsky, Ilya Sutskever, Geoffrey E. Hinton — NeurIPS 2012 (no arXiv version)
// One weird trick for parallelizing convolutional neural networks
// Alex Krizhevsky — 2014
// https://arxiv.org/abs/1404.5997
//
// Variant computed here: torchvision's `alexnet`, the one-GPU network of the 2014 paper (64, 192, 384, 256, 256
// filters; no local response normalization; no grouped convolutions), with an adaptive average pool to 6×6 before
// the classifier so other input sizes work.
//
// Parameter names follow torchvision (`features.0.weight`, `classifier.6.bias`). Initialization is PyTorch's layer
// default, as in torchvision.
import LiteCNNLayers
import LiteCNNTensor

/// AlexNet: five convolutions (11×11/4, 5×5, 3×3 ×3) with ReLUs and three 3×3/2 max pools, then three fully connected
/// layers (4096, 4096, `classCount`) with dropout before the first two.
///
/// - Input: NHWC `[N, H, W, inputChannels]` with `H, W ≥ 63`; 224 is native.
/// - Output: logits `[N, classCount]`.
public final class AlexNet: ChainLayer {
    public let classCount: Int
    public let features: Sequential
    public let avgpool = AdaptiveAvgPool2D(outputSize: (6, 6))
    public let flatten = Flatten()
    /// Dropout → Linear(256·6·6, 4096) → ReLU → Dropout → Linear(4096, 4096) → ReLU → Linear(4096, classCount).
    public let classifier: Sequential
    public var isTraining = false

    /// - Parameters:
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image (the first convolution takes them).
    ///   - dropout: dropout probability of the classifier (0.5 as in the paper).
    public init(classCount: Int = 1000, inputChannels: Int = 3, dropout: Float = 0.5) {
        precondition(classCount >= 1 && inputChannels >= 1, "AlexNet: class and input channel counts must be positive")
        self.classCount = classCount
        features = Sequential(
            Conv2D(inputChannels, 64, kernelSize: 11, stride: 4, padding: 2), ReLU(), MaxPool2D(kernelSize: 3, stride: 2),
            Conv2D(64, 192, kernelSize: 5, padding: 2), ReLU(), MaxPool2D(kernelSize: 3, stride: 2),
            Conv2D(192, 384, kernelSize: 3, padding: 1), ReLU(),
            Conv2D(384, 256, kernelSize: 3, padding: 1), ReLU(),
            Conv2D(256, 256, kernelSize: 3, padding: 1), ReLU(), MaxPool2D(kernelSize: 3, stride: 2))
        classifier = Sequential(
            Dropout(probability: dropout), Linear(256 * 6 * 6, 4096), ReLU(),
            Dropout(probability: dropout), Linear(4096, 4096), ReLU(),
            Linear(4096, classCount))
    }

    public var children: [(name: String, layer: any Layer)] {
        [("features", features), ("avgpool", avgpool), ("flatten", flatten), ("classifier", classifier)]
    }
}

extension AlexNet {
    /// `alexnet`.
    public static var zooEntries: [ModelZooEntry] {
        [ModelZooEntry(name: "alexnet", summary: "AlexNet (Krizhevsky 2012/2014), torchvision's one-GPU variant") { options in
            AlexNet(classCount: options.classCount, inputChannels: options.inputChannels)
        }]
    }
}
