import LiteCNNIO
import LiteCNNTensor

/// One labelled image as a data set stores it, before augmentation.
///
/// `image` is `[height, width, channels]` (HWC, layout `.plain`) with values in [0, 1]; `channels` is 1 for grayscale
/// and 3 for colour. `label` is in `0..<classCount`.
public struct LabeledImage: Sendable {
    public var image: Tensor
    public var label: Int

    public init(image: Tensor, label: Int) {
        self.image = image
        self.label = label
    }
}

/// A random-access collection of labelled images (`torch.utils.data.Dataset`).
///
/// Implementations are immutable after creation and safe to read from several threads at once: the loader decodes
/// samples on a background thread while training runs.
public protocol Dataset: Sendable {
    /// Number of samples.
    var count: Int { get }
    /// Class names, indexed by label.
    var classNames: [String] { get }
    /// Channels of every image (1 or 3).
    var channels: Int { get }
    /// The size every image has, or `nil` when sizes differ (image folders); the loader's transforms then resize.
    var imageSize: (height: Int, width: Int)? { get }
    /// Sample `index` (`0..<count`), decoded. Throws `FileFormatError` naming the file when it cannot be read.
    func sample(at index: Int) throws -> LabeledImage
}

extension Dataset {
    public var classCount: Int { classNames.count }
}

/// A data set's training and test splits, with a one-line description for logs (`"MNIST (IDX) at data/mnist"`).
public struct DatasetSplits: Sendable {
    public var train: any Dataset
    public var test: any Dataset
    public var description: String

    public init(train: any Dataset, test: any Dataset, description: String) {
        self.train = train
        self.test = test
        self.description = description
    }
}

/// The on-disk formats `litecnn train --format` names; `shapes` is the built-in procedural set (no files).
public enum DataFormat: String, CaseIterable, Sendable, Codable {
    case shapes, idx, cifar, folder, npy
}

/// A batch as the loader hands it to a network.
public struct Batch: Sendable {
    /// `[batch, height, width, channels]`, layout `.nhwc`, after the transforms (normalized).
    public var images: Tensor
    public var labels: [Int]
    /// The data set indices of the samples, in batch order.
    public var indices: [Int]

    public init(images: Tensor, labels: [Int], indices: [Int]) {
        self.images = images
        self.labels = labels
        self.indices = indices
    }
}

/// One step of preprocessing or augmentation applied to a single HWC image (`torchvision.transforms`).
///
/// Randomness comes only from `generator`, which the loader derives from (seed, epoch, sample index): the same run
/// sees the same augmentations whatever the thread count or prefetch depth, which is what makes `--resume` exact.
public protocol ImageTransform: Sendable {
    func apply(_ image: Tensor, generator: inout SeededGenerator) -> Tensor
    /// The output `[height, width, channels]` for an input of that shape (`nil` dims = variable input).
    func outputShape(for inputShape: [Int]) -> [Int]
}
