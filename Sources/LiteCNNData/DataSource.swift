// Opening a data set on disk by format, or by recognising the files a folder holds.
import Foundation
import LiteCNNIO

/// Opens data sets stored in files: MNIST-style IDX, CIFAR-10/100 binary, image folders and `.npy` arrays.
public enum DataSource {
    /// Opens the data set in the folder at `path` as `format`, or, when `format` is nil, as the first format whose
    /// files are present, checked in this order:
    /// 1. `idx`: `train-images-idx3-ubyte[.gz]` (or `train-images.idx3-ubyte`), also under `raw/`, `MNIST/raw/`, … (`IDX`);
    /// 2. `cifar`: `data_batch_1.bin`/`test_batch.bin` (CIFAR-10) or `train.bin`/`test.bin` (CIFAR-100), also under
    ///    `cifar-10-batches-bin/` or `cifar-100-binary/` (`CIFAR`);
    /// 3. `npy`: `train_images.npy` or `images.npy` (`NPYFolder`);
    /// 4. `folder`: sub-folders holding `.png`/`.jpg`/`.jpeg` files, optionally under `train/` and `val/` or `test/`
    ///    (`ImageFolderDataset`).
    /// Throws a `FileFormatError` naming the path when it does not exist or holds none of these, and naming the file
    /// when a file is malformed. `shapes` has no files and is refused here (see `ShapesDataset`).
    public static func open(path: String, format: DataFormat?) throws -> DatasetSplits {
        let url = URL(fileURLWithPath: path).standardizedFileURL
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isFolder) else {
            throw FileFormatError(file: path, reason: "no such file or folder")
        }
        guard isFolder.boolValue else {
            throw FileFormatError(file: path, reason: "is a file; give the folder that holds the data set (\(url.deletingLastPathComponent().path))")
        }
        switch format ?? detect(url) {
        case .idx: return try IDX.splits(directory: url)
        case .cifar: return try CIFAR.splits(directory: url)
        case .npy: return try NPYFolder.splits(directory: url)
        case .folder: return try ImageFolderDataset.splits(directory: url)
        case .shapes:
            throw FileFormatError(file: path, reason: "the 'shapes' data set is generated, not read from files (use ShapesDataset)")
        case nil:
            throw FileFormatError(file: path, reason: """
                no data set recognised. Looked for: MNIST-style IDX files (train-images-idx3-ubyte[.gz], \
                train-labels-idx1-ubyte[.gz], t10k-…), CIFAR-10 binary batches (data_batch_1.bin … data_batch_5.bin, \
                test_batch.bin) or CIFAR-100 (train.bin, test.bin), also in cifar-10-batches-bin/ or cifar-100-binary/; \
                NumPy arrays (train_images.npy, train_labels.npy, test_images.npy, test_labels.npy, or images.npy + \
                labels.npy); an image folder (<class>/*.png|jpg|jpeg, optionally under train/ and val/)
                """)
        }
    }

    /// The format whose files `directory` holds, or nil.
    public static func detect(_ directory: URL) -> DataFormat? {
        if IDX.dataDirectory(under: directory) != nil { return .idx }
        if CIFAR.dataDirectory(under: directory) != nil { return .cifar }
        if NPYFolder.recognizes(directory) { return .npy }
        if holdsClassFolders(directory) || holdsClassFolders(directory.appendingPathComponent("train")) { return .folder }
        return nil
    }

    /// Whether some sub-folder of `directory` holds a PNG or JPEG file (directly).
    static func holdsClassFolders(_ directory: URL) -> Bool {
        guard let entries = try? ImageFolderDataset.visibleEntries(directory) else { return false }
        for name in entries {
            let folder = directory.appendingPathComponent(name)
            guard ImageFolderDataset.isDirectory(folder), let files = try? ImageFolderDataset.visibleEntries(folder) else { continue }
            if files.contains(where: { ImageFolderDataset.imageExtensions.contains(URL(fileURLWithPath: $0).pathExtension.lowercased()) }) {
                return true
            }
        }
        return false
    }
}
