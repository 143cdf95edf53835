// In-memory labelled images (the storage behind the IDX, CIFAR and `.npy` readers) and the `.npy` folder reader.
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// Labelled images of one size held in memory, `torch.utils.data.TensorDataset`-style.
///
/// Pixels are stored sample after sample in HWC order (`[count, height, width, channels]`), either as bytes (scaled by
/// 1/255 when a sample is read; 1 byte per value, which is how MNIST and CIFAR stay compact) or as `Float`s taken as
/// they are. A data set may view a subset of the stored samples (`subset(_:)`); views share the storage.
public struct ArrayDataset: Dataset {
    /// The stored pixel values, `storedCount × height × width × channels` of them.
    public enum Pixels: Sendable {
        /// Bytes 0…255, read as value / 255.
        case bytes([UInt8])
        /// Values used as they are.
        case floats([Float])

        var count: Int {
            switch self {
            case .bytes(let values): return values.count
            case .floats(let values): return values.count
            }
        }
    }

    public let pixels: Pixels
    /// The label of every stored sample.
    public let storedLabels: [Int32]
    /// The stored samples this data set shows, in order (`nil` = all of them).
    public let selection: [Int]?
    public let height: Int
    public let width: Int
    public let channels: Int
    public let classNames: [String]

    /// Stores `pixels` (`labels.count × height × width × channels` values, HWC per sample) with `labels` in
    /// `0..<classNames.count`. Throws `TensorError` when the sizes disagree or a label is out of range.
    public init(pixels: Pixels, labels: [Int], height: Int, width: Int, channels: Int, classNames: [String]) throws {
        guard height > 0, width > 0, channels == 1 || channels == 3 else {
            throw TensorError.invalidShape([labels.count, height, width, channels], context: "ArrayDataset images (channels must be 1 or 3)")
        }
        let (perSample, o1) = height.multipliedReportingOverflow(by: width * channels)
        let (total, o2) = perSample.multipliedReportingOverflow(by: labels.count)
        guard !o1, !o2, total == pixels.count else {
            throw TensorError.shapeMismatch(expected: [labels.count, height, width, channels], actual: [pixels.count], context: "ArrayDataset pixels")
        }
        if let bad = labels.firstIndex(where: { $0 < 0 || $0 >= classNames.count }) {
            throw TensorError.invalidShape([labels[bad]], context: "ArrayDataset label of sample \(bad) is outside 0..<\(classNames.count)")
        }
        self.init(pixels: pixels, storedLabels: labels.map { Int32($0) }, selection: nil, height: height, width: width,
                  channels: channels, classNames: classNames)
    }

    init(pixels: Pixels, storedLabels: [Int32], selection: [Int]?, height: Int, width: Int, channels: Int, classNames: [String]) {
        self.pixels = pixels
        self.storedLabels = storedLabels
        self.selection = selection
        self.height = height
        self.width = width
        self.channels = channels
        self.classNames = classNames
    }

    public var count: Int { selection?.count ?? storedLabels.count }
    public var imageSize: (height: Int, width: Int)? { (height, width) }

    /// The label of sample `index` without decoding its image.
    public func label(at index: Int) -> Int { Int(storedLabels[selection?[index] ?? index]) }

    /// The data set made of samples `indices` (positions in this data set) in that order, sharing the storage.
    public func subset(_ indices: [Int]) -> ArrayDataset {
        let stored = indices.map { selection?[$0] ?? $0 }
        return ArrayDataset(pixels: pixels, storedLabels: storedLabels, selection: stored, height: height, width: width,
                            channels: channels, classNames: classNames)
    }

    /// Sample `index` as `[height, width, channels]` (layout `.plain`) in [0, 1] for byte storage.
    public func sample(at index: Int) throws -> LabeledImage {
        precondition(index >= 0 && index < count, "sample index \(index) outside 0..<\(count)")
        let stored = selection?[index] ?? index
        let size = height * width * channels
        let start = stored * size
        let image: Tensor
        switch pixels {
        case .bytes(let values):
            image = values.withUnsafeBufferPointer { source in
                Tensor(shape: [height, width, channels], layout: .plain) { out in
                    for i in 0..<size { out[i] = Float(source[start + i]) / 255 }
                }
            }
        case .floats(let values):
            image = Tensor(shape: [height, width, channels], scalars: Array(values[start..<(start + size)]), layout: .plain)
        }
        return LabeledImage(image: image, label: Int(storedLabels[stored]))
    }
}

/// The deterministic held-out rule used when a data set comes without a test split (image folders without `train/`,
/// `images.npy` + `labels.npy`): within each class, of its `n` samples in order (sorted file names, or array order),
/// `k = n ≥ 2 ? max(1, round(n / 10)) : 0` are held out, evenly spread: sample `j` is held out when
/// `⌊(j + 1)·k / n⌋ > ⌊j·k / n⌋` (n = 10: the 10th; n = 20: the 10th and 20th; n = 5: the 5th; n = 1: none).
public func isHeldOut(position j: Int, ofClassCount n: Int) -> Bool {
    guard n >= 2 else { return false }
    let k = max(1, (n + 5) / 10)
    return (j + 1) * k / n > j * k / n
}

/// Splits `labels` (in sample order) into train and held-out indices with `isHeldOut(position:ofClassCount:)` per class.
func heldOutSplit(labels: [Int], classCount: Int) -> (train: [Int], test: [Int]) {
    var perClass = [Int](repeating: 0, count: classCount)
    for label in labels { perClass[label] += 1 }
    var seen = [Int](repeating: 0, count: classCount)
    var train: [Int] = [], test: [Int] = []
    for (index, label) in labels.enumerated() {
        if isHeldOut(position: seen[label], ofClassCount: perClass[label]) { test.append(index) } else { train.append(index) }
        seen[label] += 1
    }
    return (train, test)
}

// MARK: - .npy folders

/// Reads a folder of NumPy arrays: `train_images.npy`, `train_labels.npy`, `test_images.npy`, `test_labels.npy`
/// (what `litecnn data shapes` writes), or `images.npy` + `labels.npy` with the held-out rule of
/// `isHeldOut(position:ofClassCount:)` making the test split.
///
/// Images are `[N, H, W]` (gray), `[N, H, W, C]` or `[N, C, H, W]` with C = 1 or 3 (channels-first is recognised when
/// dimension 1 is 1 or 3 and dimension 3 is not). `uint8` arrays are kept as bytes and scaled by 1/255; float arrays
/// are taken as they are. Labels are `[N]` (or `[N, 1]`) of any integer dtype (or integral floats), non-negative; the
/// class count is the largest label + 1 over both splits and the class names are "0", "1", ….
public enum NPYFolder {
    public static let splitFileNames = ["train_images.npy", "train_labels.npy", "test_images.npy", "test_labels.npy"]
    public static let singleFileNames = ["images.npy", "labels.npy"]

    /// Whether `directory` holds the files this reader needs.
    static func recognizes(_ directory: URL) -> Bool {
        let fm = FileManager.default
        return fm.fileExists(atPath: directory.appendingPathComponent("train_images.npy").path)
            || fm.fileExists(atPath: directory.appendingPathComponent("images.npy").path)
    }

    /// The splits in `directory` (see the type's documentation).
    public static func splits(directory: URL) throws -> DatasetSplits {
        let fm = FileManager.default
        func url(_ name: String) -> URL { directory.appendingPathComponent(name) }
        if fm.fileExists(atPath: url("train_images.npy").path) {
            for name in splitFileNames where !fm.fileExists(atPath: url(name).path) {
                throw FileFormatError(file: url(name).path, reason: "missing: a .npy data set with train_images.npy needs \(splitFileNames.joined(separator: ", "))")
            }
            let train = try readPair(images: url("train_images.npy"), labels: url("train_labels.npy"))
            let test = try readPair(images: url("test_images.npy"), labels: url("test_labels.npy"))
            guard train.height == test.height, train.width == test.width, train.channels == test.channels else {
                throw FileFormatError(file: url("test_images.npy").path,
                                      reason: "test images are \(test.height)×\(test.width)×\(test.channels) but train images (\(url("train_images.npy").path)) are \(train.height)×\(train.width)×\(train.channels)")
            }
            let classCount = max(train.labels.max() ?? -1, test.labels.max() ?? -1) + 1
            let names = (0..<max(classCount, 1)).map(String.init)
            let trainSet = try train.dataset(classNames: names)
            let testSet = try test.dataset(classNames: names)
            return DatasetSplits(train: trainSet, test: testSet,
                                 description: "NumPy arrays (npy) at \(directory.path): \(trainSet.count) train + \(testSet.count) test images of \(train.height)×\(train.width)×\(train.channels), \(names.count) classes")
        }
        for name in singleFileNames where !fm.fileExists(atPath: url(name).path) {
            throw FileFormatError(file: url(name).path, reason: "missing: a .npy data set needs \(splitFileNames.joined(separator: ", ")) or \(singleFileNames.joined(separator: " + "))")
        }
        let all = try readPair(images: url("images.npy"), labels: url("labels.npy"))
        let classCount = (all.labels.max() ?? -1) + 1
        let names = (0..<max(classCount, 1)).map(String.init)
        let dataset = try all.dataset(classNames: names)
        let (trainIndices, testIndices) = heldOutSplit(labels: all.labels, classCount: names.count)
        return DatasetSplits(train: dataset.subset(trainIndices), test: dataset.subset(testIndices),
                             description: "NumPy arrays (npy) at \(directory.path): \(trainIndices.count) train + \(testIndices.count) held-out test images (every ~10th per class) of \(all.height)×\(all.width)×\(all.channels), \(names.count) classes")
    }

    /// Images and labels read from a pair of files, validated against each other.
    struct Pair {
        var pixels: ArrayDataset.Pixels
        var labels: [Int]
        var height: Int, width: Int, channels: Int

        func dataset(classNames: [String]) throws -> ArrayDataset {
            try ArrayDataset(pixels: pixels, labels: labels, height: height, width: width, channels: channels, classNames: classNames)
        }
    }

    /// Reads `images` and `labels` (see the type's documentation for the accepted layouts).
    static func readPair(images: URL, labels: URL) throws -> Pair {
        var imageBytes = try readDataFile(images)
        let isUInt8 = npyDescriptor(imageBytes) == "|u1"
        var tensor = try NPY.decode(imageBytes, fileName: images.path)
        imageBytes = []
        let shape = tensor.shape
        let n: Int, height: Int, width: Int, channels: Int
        var channelsFirst = false
        switch shape.count {
        case 3:
            (n, height, width, channels) = (shape[0], shape[1], shape[2], 1)
        case 4 where shape[3] == 1 || shape[3] == 3:
            (n, height, width, channels) = (shape[0], shape[1], shape[2], shape[3])
        case 4 where shape[1] == 1 || shape[1] == 3:
            (n, height, width, channels) = (shape[0], shape[2], shape[3], shape[1])
            channelsFirst = true
        default:
            throw FileFormatError(file: images.path, reason: "images have shape \(shape); expected [N, H, W], [N, H, W, C] or [N, C, H, W] with C = 1 or 3")
        }
        guard height > 0, width > 0 else {
            throw FileFormatError(file: images.path, reason: "images have shape \(shape): height and width must be positive")
        }
        if channelsFirst {
            tensor = tensor.nchwToNHWC()  // read as [N, C, H, W]
        }
        var values = tensor.scalars
        tensor = Tensor(0)
        let pixels: ArrayDataset.Pixels
        if isUInt8 {
            pixels = .bytes(values.map { UInt8($0) })
        } else {
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw FileFormatError(file: images.path, reason: "image value \(values[bad]) at element \(bad) is not finite")
            }
            pixels = .floats(values)
        }
        values = []

        let labelTensor = try NPY.read(labels)
        guard labelTensor.rank == 1 || (labelTensor.rank == 2 && labelTensor.shape[1] == 1) else {
            throw FileFormatError(file: labels.path, reason: "labels have shape \(labelTensor.shape); expected [N]")
        }
        guard labelTensor.shape[0] == n else {
            throw FileFormatError(file: labels.path, reason: "\(labelTensor.shape[0]) labels for \(n) images in \(images.path)")
        }
        var labelValues: [Int] = []
        labelValues.reserveCapacity(n)
        for (index, value) in labelTensor.scalars.enumerated() {
            guard value >= 0, value <= 1_000_000, value == value.rounded() else {
                throw FileFormatError(file: labels.path, reason: "label \(value) at index \(index) is not an integer in 0…1000000")
            }
            labelValues.append(Int(value))
        }
        return Pair(pixels: pixels, labels: labelValues, height: height, width: width, channels: channels)
    }

    /// The `descr` of a `.npy` header (e.g. `|u1`, `<f4`), or nil.
    static func npyDescriptor(_ bytes: [UInt8]) -> String? {
        let header = String(decoding: bytes.prefix(4096), as: UTF8.self)
        guard let key = header.range(of: "'descr'") else { return nil }
        let rest = header[key.upperBound...].drop(while: { $0 == " " || $0 == ":" })
        guard let quote = rest.first, quote == "'" || quote == "\"" else { return nil }
        let value = rest.dropFirst().prefix(while: { $0 != quote })
        return String(value)
    }
}
