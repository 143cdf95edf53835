// Folders of PNG and JPEG images, one sub-folder per class (torchvision.datasets.ImageFolder's layout).
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// A folder of images with one sub-folder per class, decoded lazily (`torchvision.datasets.ImageFolder`).
///
/// - Classes are the sub-folders' names sorted by Unicode code point (as Python's `sorted`); the label of a class is
///   its index in that list. Files in a class folder (and its nested folders, walked in sorted order) are sorted by
///   name; hidden files and folders (names starting with ".") and files whose extension is not `.png`, `.jpg` or
///   `.jpeg` (any case) are skipped. A class folder without images is an error, as in torchvision.
/// - Opening only lists the files (and reads the header of one image per class, see `channels`); `sample(at:)` decodes
///   one file and is safe to call from several threads.
/// - `imageSize` is nil: images may differ in size, so the loader's transforms resize or crop them.
/// - `channels` is 1 when the first image of every class is grayscale (gray PNG, 1-component JPEG), else 3. A sample
///   whose file has the other channel count is converted: gray → RGB by repeating the value, RGB → gray by ITU-R 601
///   luma (0.299 R + 0.587 G + 0.114 B, as `PIL.Image.convert("L")`).
/// - A file that cannot be decoded throws a `FileFormatError` naming it from `sample(at:)`.
public struct ImageFolderDataset: Dataset {
    /// Extensions (lower-cased) of the files read.
    public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The image files, by sample index.
    public let files: [String]
    /// The label of every file.
    public let labels: [Int32]
    public let classNames: [String]
    public let channels: Int
    public var count: Int { files.count }
    public var imageSize: (height: Int, width: Int)? { nil }

    /// The images of `files` with `labels`; `channels` (1 or 3) is what every sample is converted to.
    public init(files: [String], labels: [Int], classNames: [String], channels: Int) {
        precondition(files.count == labels.count && (channels == 1 || channels == 3))
        self.files = files
        self.labels = labels.map { Int32($0) }
        self.classNames = classNames
        self.channels = channels
    }

    /// Decodes sample `index` to `[H, W, channels]` in [0, 1]; throws a `FileFormatError` naming the file.
    public func sample(at index: Int) throws -> LabeledImage {
        let decoded = try ImageCodec.decode(contentsOf: URL(fileURLWithPath: files[index]))
        return LabeledImage(image: imageWithChannels(decoded, channels), label: Int(labels[index]))
    }

    /// The data set subset `indices` (in that order).
    public func subset(_ indices: [Int]) -> ImageFolderDataset {
        ImageFolderDataset(files: indices.map { files[$0] }, labels: indices.map { Int(labels[$0]) }, classNames: classNames, channels: channels)
    }

    // MARK: Opening folders

    /// The training and test splits of the folder at `directory`:
    /// - `directory/train/<class>/…` is the training split and `directory/val/<class>/…` (or `test/`) the test split;
    ///   the test classes must be among the training classes (labels follow the training class list);
    /// - without `train/`, `directory/<class>/…` is split per class by `isHeldOut(position:ofClassCount:)` over the
    ///   sorted file list (about every 10th image held out; with `train/` but no `val/` or `test/` the same is done to
    ///   `train/`).
    public static func splits(directory: URL) throws -> DatasetSplits {
        let trainFolder = directory.appendingPathComponent("train")
        let hasTrain = isDirectory(trainFolder)
        let testFolder = hasTrain ? ["val", "test"].map { directory.appendingPathComponent($0) }.first(where: isDirectory) : nil
        let trainRoot = hasTrain ? trainFolder : directory
        let train = try scan(trainRoot, classNames: nil)
        let channels = try probeChannels(train)
        let classes = "\(train.classNames.count) classes, \(channels) channel\(channels == 1 ? "" : "s")"
        let all = ImageFolderDataset(files: train.files, labels: train.labels, classNames: train.classNames, channels: channels)
        var skipped = train.skipped
        let trainSet: ImageFolderDataset, testSet: ImageFolderDataset
        var description: String
        if let testFolder {
            let test = try scan(testFolder, classNames: train.classNames)
            skipped += test.skipped
            trainSet = all
            testSet = ImageFolderDataset(files: test.files, labels: test.labels, classNames: train.classNames, channels: channels)
            description = "image folder at \(directory.path): \(trainSet.count) train (train/) + \(testSet.count) test (\(testFolder.lastPathComponent)/) images, \(classes)"
        } else {
            let (trainIndices, testIndices) = heldOutSplit(labels: train.labels, classCount: train.classNames.count)
            trainSet = all.subset(trainIndices)
            testSet = all.subset(testIndices)
            description = "image folder at \(trainRoot.path): \(trainSet.count) train + \(testSet.count) held-out test images (every ~10th per class), \(classes)"
        }
        if skipped > 0 { description += " (\(skipped) files without a .png/.jpg/.jpeg extension skipped)" }
        return DatasetSplits(train: trainSet, test: testSet, description: description)
    }

    /// The files of a folder of class folders.
    struct Listing {
        var classNames: [String]
        var files: [String]
        var labels: [Int]
        /// Index in `files` of the first file of every class.
        var firstFiles: [Int]
        var skipped: Int
    }

    /// Lists `root/<class>/…`. With `classNames` given (a test split), the folder's classes must be among them and
    /// labels index into them.
    static func scan(_ root: URL, classNames known: [String]?) throws -> Listing {
        let classFolders = try visibleEntries(root).filter { isDirectory(root.appendingPathComponent($0)) }
        guard !classFolders.isEmpty else {
            throw FileFormatError(file: root.path, reason: "no class sub-folders (expected <class>/<image>.png|jpg|jpeg)")
        }
        let classNames = known ?? classFolders
        var listing = Listing(classNames: classNames, files: [], labels: [], firstFiles: [], skipped: 0)
        for name in classFolders {
            guard let label = classNames.firstIndex(of: name) else {
                throw FileFormatError(file: root.appendingPathComponent(name).path,
                                      reason: "class '\(name)' is not among the \(classNames.count) training classes")
            }
            let before = listing.files.count
            try collectImages(root.appendingPathComponent(name), depth: 0, into: &listing.files, skipped: &listing.skipped)
            guard listing.files.count > before else {
                throw FileFormatError(file: root.appendingPathComponent(name).path, reason: "class folder holds no .png, .jpg or .jpeg files")
            }
            listing.firstFiles.append(before)
            listing.labels += [Int](repeating: label, count: listing.files.count - before)
        }
        return listing
    }

    /// Appends the image files under `folder` (sorted, nested folders after the folder's own files, in sorted order).
    private static func collectImages(_ folder: URL, depth: Int, into files: inout [String], skipped: inout Int) throws {
        guard depth < 16 else { throw FileFormatError(file: folder.path, reason: "folders nested more than 16 deep (a symbolic-link loop?)") }
        var subfolders: [URL] = []
        for name in try visibleEntries(folder) {
            let url = folder.appendingPathComponent(name)
            if isDirectory(url) {
                subfolders.append(url)
            } else if imageExtensions.contains(url.pathExtension.lowercased()) {
                files.append(url.path)
            } else {
                skipped += 1
            }
        }
        for subfolder in subfolders { try collectImages(subfolder, depth: depth + 1, into: &files, skipped: &skipped) }
    }

    /// The non-hidden entries of `folder`, sorted by code point.
    static func visibleEntries(_ folder: URL) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: folder.path)
                .filter { !$0.hasPrefix(".") }
                .sorted { $0.unicodeScalars.lexicographicallyPrecedes($1.unicodeScalars) }
        } catch {
            throw FileFormatError(file: folder.path, reason: "cannot list folder (\(error.localizedDescription))")
        }
    }

    static func isDirectory(_ url: URL) -> Bool {
        var flag: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &flag) && flag.boolValue
    }

    /// 1 when the first image of every class is grayscale, else 3 (headers only).
    static func probeChannels(_ listing: Listing) throws -> Int {
        for index in listing.firstFiles {
            let url = URL(fileURLWithPath: listing.files[index])
            if try ImageCodec.probe(readDataFile(url), fileName: url.path).channels != 1 { return 3 }
        }
        return 1
    }
}

/// `image` (`[H, W, 1|3]`) with `channels` channels: gray → RGB repeats the value; RGB → gray is ITU-R 601 luma.
func imageWithChannels(_ image: Tensor, _ channels: Int) -> Tensor {
    let have = image.shape[2]
    guard have != channels else { return image }
    let pixels = image.shape[0] * image.shape[1]
    return image.scalars.withUnsafeBufferPointer { source in
        Tensor(shape: [image.shape[0], image.shape[1], channels], layout: .plain) { out in
            if channels == 3 {
                for p in 0..<pixels { out[3 * p] = source[p]; out[3 * p + 1] = source[p]; out[3 * p + 2] = source[p] }
            } else {
                for p in 0..<pixels {
                    out[p] = 0.299 * source[3 * p] + 0.587 * source[3 * p + 1] + 0.114 * source[3 * p + 2]
                }
            }
        }
    }
}
