// CIFAR-10 and CIFAR-100 in their binary versions (Krizhevsky, "Learning Multiple Layers of Features from Tiny
// Images", 2009; https://www.cs.toronto.edu/~kriz/cifar.html).
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// Reads the binary CIFAR-10 and CIFAR-100 batches.
///
/// - CIFAR-10 (`cifar-10-batches-bin`): `data_batch_1.bin` … `data_batch_5.bin` (training; those present are read in
///   order) and `test_batch.bin`; each record is 1 label byte (0…9) + 3072 pixel bytes. Class names come from
///   `batches.meta.txt` (one per line) when present, else the standard 10 names.
/// - CIFAR-100 (`cifar-100-binary`): `train.bin` and `test.bin`; each record is a coarse label byte (0…19), a fine label
///   byte (0…99) and 3072 pixel bytes. The fine label is used (100 classes), named from `fine_label_names.txt` when
///   present, else "0"…"99".
///
/// Pixels are three 32×32 planes (red, then green, then blue, rows top to bottom); they are reordered to HWC once at
/// load and kept as bytes (150 MB for CIFAR's 50 000 training images), `[32, 32, 3]` floats / 255 per sample. The
/// folder given may be the batches folder itself or its parent. A file whose size is not a multiple of the record
/// size, or a label out of range, is an error naming the file and the record's byte offset.
public enum CIFAR {
    /// The standard CIFAR-10 class names, by label.
    public static let cifar10ClassNames = ["airplane", "automobile", "bird", "cat", "deer",
                                           "dog", "frog", "horse", "ship", "truck"]
    static let side = 32
    static let imageBytes = 3 * 32 * 32

    enum Variant { case cifar10, cifar100 }

    /// The folder holding the batches under `root` (itself, `cifar-10-batches-bin/` or `cifar-100-binary/`) and which
    /// variant it is, if any.
    static func dataDirectory(under root: URL) -> (URL, Variant)? {
        let fm = FileManager.default
        for folder in [root, root.appendingPathComponent("cifar-10-batches-bin"), root.appendingPathComponent("cifar-100-binary")] {
            if fm.fileExists(atPath: folder.appendingPathComponent("data_batch_1.bin").path)
                || fm.fileExists(atPath: folder.appendingPathComponent("test_batch.bin").path) {
                return (folder, .cifar10)
            }
            if fm.fileExists(atPath: folder.appendingPathComponent("train.bin").path)
                || fm.fileExists(atPath: folder.appendingPathComponent("test.bin").path) {
                return (folder, .cifar100)
            }
        }
        return nil
    }

    /// The training and test splits of the CIFAR-10 or CIFAR-100 binary data set in `directory`.
    public static func splits(directory: URL) throws -> DatasetSplits {
        guard let (folder, variant) = dataDirectory(under: directory) else {
            throw FileFormatError(file: directory.path, reason: "no CIFAR binary batches found (looked for data_batch_1.bin / test_batch.bin or train.bin / test.bin, also in cifar-10-batches-bin/ and cifar-100-binary/)")
        }
        let fm = FileManager.default
        func required(_ name: String) throws -> URL {
            let url = folder.appendingPathComponent(name)
            guard fm.fileExists(atPath: url.path) else { throw FileFormatError(file: url.path, reason: "missing CIFAR batch file") }
            return url
        }
        switch variant {
        case .cifar10:
            let trainFiles = (1...5).map { folder.appendingPathComponent("data_batch_\($0).bin") }.filter { fm.fileExists(atPath: $0.path) }
            guard !trainFiles.isEmpty else {
                throw FileFormatError(file: folder.appendingPathComponent("data_batch_1.bin").path, reason: "missing: CIFAR-10 needs data_batch_1.bin … data_batch_5.bin")
            }
            let names = try classNames(folder.appendingPathComponent("batches.meta.txt"), count: 10) ?? cifar10ClassNames
            let train = try load(trainFiles, variant: .cifar10, classNames: names)
            let test = try load([required("test_batch.bin")], variant: .cifar10, classNames: names)
            return DatasetSplits(train: train, test: test,
                                 description: "CIFAR-10 (binary) at \(folder.path): \(train.count) train (\(trainFiles.count) batches) + \(test.count) test images of 32×32×3, 10 classes")
        case .cifar100:
            let names = try classNames(folder.appendingPathComponent("fine_label_names.txt"), count: 100) ?? (0..<100).map(String.init)
            let train = try load([required("train.bin")], variant: .cifar100, classNames: names)
            let test = try load([required("test.bin")], variant: .cifar100, classNames: names)
            return DatasetSplits(train: train, test: test,
                                 description: "CIFAR-100 (binary, fine labels) at \(folder.path): \(train.count) train + \(test.count) test images of 32×32×3, 100 classes")
        }
    }

    /// Class names from a text file with one name per line (blank lines ignored), or nil when it does not exist.
    static func classNames(_ url: URL, count: Int) throws -> [String]? {
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        let text = String(decoding: try readDataFile(url), as: UTF8.self)
        let names = text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard names.count == count else {
            throw FileFormatError(file: url.path, reason: "has \(names.count) class names, expected \(count) (one per line)")
        }
        return names
    }

    /// The records of `files`, concatenated, as a data set.
    static func load(_ files: [URL], variant: Variant, classNames: [String]) throws -> ArrayDataset {
        let labelBytes = variant == .cifar10 ? 1 : 2
        let recordSize = labelBytes + imageBytes
        var sizes: [Int] = []
        for file in files {
            let size = try dataFileSize(file)
            guard size > 0 else { throw FileFormatError(file: file.path, offset: 0, reason: "file is empty") }
            guard size % recordSize == 0 else {
                throw FileFormatError(file: file.path, offset: size / recordSize * recordSize,
                                      reason: "trailing partial record of \(size % recordSize) bytes (file is \(size) bytes; \(variant == .cifar10 ? "CIFAR-10" : "CIFAR-100") records are \(recordSize) bytes)")
            }
            sizes.append(size)
        }
        let total = sizes.reduce(0, +) / recordSize
        var pixels = [UInt8](repeating: 0, count: total * imageBytes)
        var labels = [Int32](repeating: 0, count: total)
        var sample = 0
        for file in files {
            let bytes = try readDataFile(file)
            guard bytes.count % recordSize == 0 else {
                throw FileFormatError(file: file.path, offset: bytes.count / recordSize * recordSize, reason: "file changed while being read")
            }
            let records = bytes.count / recordSize
            guard sample + records <= total else { throw FileFormatError(file: file.path, reason: "file changed while being read") }
            try bytes.withUnsafeBufferPointer { source in
                try pixels.withUnsafeMutableBufferPointer { out in
                    for record in 0..<records {
                        let offset = record * recordSize
                        let label: Int
                        switch variant {
                        case .cifar10:
                            label = Int(source[offset])
                            guard label < 10 else {
                                throw FileFormatError(file: file.path, offset: offset, reason: "label \(label) of record \(record) is out of range 0…9")
                            }
                        case .cifar100:
                            guard source[offset] < 20 else {
                                throw FileFormatError(file: file.path, offset: offset, reason: "coarse label \(source[offset]) of record \(record) is out of range 0…19")
                            }
                            label = Int(source[offset + 1])
                            guard label < 100 else {
                                throw FileFormatError(file: file.path, offset: offset + 1, reason: "fine label \(label) of record \(record) is out of range 0…99")
                            }
                        }
                        labels[sample] = Int32(label)
                        let planes = offset + labelBytes
                        let destination = sample * imageBytes
                        for pixel in 0..<(side * side) {
                            out[destination + 3 * pixel] = source[planes + pixel]
                            out[destination + 3 * pixel + 1] = source[planes + 1024 + pixel]
                            out[destination + 3 * pixel + 2] = source[planes + 2048 + pixel]
                        }
                        sample += 1
                    }
                }
            }
        }
        guard sample == total else {
            throw FileFormatError(file: files.last?.path ?? "", reason: "files changed while being read")
        }
        return ArrayDataset(pixels: .bytes(pixels), storedLabels: labels, selection: nil, height: side, width: side,
                            channels: 3, classNames: classNames)
    }
}
