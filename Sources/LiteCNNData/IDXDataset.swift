// MNIST-style IDX files (MNIST, Fashion-MNIST, KMNIST), plain or gzip-compressed as the MNIST site serves them.
// Format: LeCun, Cortes & Burges, "THE MNIST DATABASE of handwritten digits", http://yann.lecun.com/exdb/mnist/.
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// Reads MNIST-style IDX data sets.
///
/// An IDX file is a 4-byte magic `00 00 TT RR` (TT = element type, 0x08 = unsigned byte; RR = rank), RR big-endian
/// `UInt32` dimensions, then the elements in C order. Images are `0x00000803` (`[N, rows, cols]` bytes), labels
/// `0x00000801` (`[N]` bytes). The file length must be exactly 4 + 4·rank + product(dims); `.gz` files are inflated
/// into a buffer of exactly that size (checked against what the compressed size can hold first).
///
/// A folder holds `train-images-idx3-ubyte`, `train-labels-idx1-ubyte` (the training split), `t10k-images-idx3-ubyte`,
/// `t10k-labels-idx1-ubyte` (the test split), each optionally `.gz`-compressed; the dotted variant
/// `train-images.idx3-ubyte` is accepted too, as are torchvision's `raw/`, `MNIST/raw/`, `FashionMNIST/raw/` and
/// `KMNIST/raw/` sub-folders. Labels must be < 10; class names are "0"…"9" (Fashion-MNIST's names are not in its
/// files). Images stay bytes in memory (47 MB for MNIST's training split) and become `[28, 28, 1]` floats / 255 per
/// sample.
public enum IDX {
    /// Folders searched under the given path, in order.
    static let subfolders = ["", "raw", "MNIST/raw", "FashionMNIST/raw", "KMNIST/raw"]

    /// The candidate names of one file: `train-images-idx3-ubyte`, `train-images.idx3-ubyte`, and both with `.gz`.
    static func candidateNames(split: String, kind: String) -> [String] {
        let dashed = "\(split)-\(kind)-ubyte", dotted = "\(split)-\(kind.replacingOccurrences(of: "-", with: "."))-ubyte"
        return [dashed, dotted, dashed + ".gz", dotted + ".gz"]
    }

    /// The file of `split` (`train`/`t10k`) and `kind` (`images-idx3`/`labels-idx1`) in `directory`, if present.
    static func find(in directory: URL, split: String, kind: String) -> URL? {
        candidateNames(split: split, kind: kind).map { directory.appendingPathComponent($0) }
            .first { FileManager.default.fileExists(atPath: $0.path) }
    }

    /// The folder under `root` that holds a training images file, if any.
    static func dataDirectory(under root: URL) -> URL? {
        subfolders.map { $0.isEmpty ? root : root.appendingPathComponent($0) }
            .first { find(in: $0, split: "train", kind: "images-idx3") != nil }
    }

    /// The training and test splits of the IDX data set in `directory` (see the type's documentation).
    public static func splits(directory: URL) throws -> DatasetSplits {
        guard let folder = dataDirectory(under: directory) else {
            throw FileFormatError(file: directory.path, reason: "no \(candidateNames(split: "train", kind: "images-idx3").joined(separator: " / ")) found (also looked in \(subfolders.dropFirst().joined(separator: ", ")))")
        }
        func file(_ split: String, _ kind: String) throws -> URL {
            guard let url = find(in: folder, split: split, kind: kind) else {
                throw FileFormatError(file: folder.appendingPathComponent(candidateNames(split: split, kind: kind)[0]).path,
                                      reason: "missing (looked for \(candidateNames(split: split, kind: kind).joined(separator: ", ")))")
            }
            return url
        }
        let train = try load(images: file("train", "images-idx3"), labels: file("train", "labels-idx1"))
        let test = try load(images: file("t10k", "images-idx3"), labels: file("t10k", "labels-idx1"))
        guard train.height == test.height, train.width == test.width else {
            throw FileFormatError(file: try file("t10k", "images-idx3").path,
                                  reason: "test images are \(test.height)×\(test.width) but training images are \(train.height)×\(train.width)")
        }
        return DatasetSplits(train: train, test: test,
                             description: "MNIST-style IDX at \(folder.path): \(train.count) train + \(test.count) test images of \(train.height)×\(train.width)×1, 10 classes")
    }

    /// The data set of one images file and its labels file (plain or `.gz`).
    public static func load(images: URL, labels: URL) throws -> ArrayDataset {
        let (imageDims, pixels) = try read(images, magic: 0x0803, what: "images")
        let (labelDims, labelBytes) = try read(labels, magic: 0x0801, what: "labels")
        guard imageDims[0] == labelDims[0] else {
            throw FileFormatError(file: labels.path, offset: 4,
                                  reason: "\(labelDims[0]) labels for the \(imageDims[0]) images of \(images.path)")
        }
        guard imageDims[1] > 0, imageDims[2] > 0 else {
            throw FileFormatError(file: images.path, offset: 8, reason: "images are \(imageDims[1])×\(imageDims[2]); rows and columns must be positive")
        }
        if let bad = labelBytes.firstIndex(where: { $0 >= 10 }) {
            throw FileFormatError(file: labels.path, offset: 8 + bad,
                                  reason: "label \(labelBytes[bad]) of item \(bad) is out of range 0…9 (MNIST-style data has 10 classes)")
        }
        return ArrayDataset(pixels: .bytes(pixels), storedLabels: labelBytes.map { Int32($0) }, selection: nil,
                            height: imageDims[1], width: imageDims[2], channels: 1, classNames: (0..<10).map(String.init))
    }

    /// The dimensions and elements (header removed) of the IDX file at `url` whose magic must be `magic`
    /// (`0x0803` images, `0x0801` labels).
    static func read(_ url: URL, magic: Int, what: String) throws -> (dims: [Int], elements: [UInt8]) {
        let fileName = url.path
        var bytes = try readDataFile(url)
        let compressed = Gzip.isCompressed(bytes)
        let rank = magic & 0xFF
        let headerSize = 4 + 4 * rank
        let header = compressed ? try Gzip.inflatePrefix(bytes, count: headerSize, fileName: fileName) : Array(bytes.prefix(headerSize))
        let inside = compressed ? " (decompressed)" : ""
        guard header.count >= 4 else {
            throw FileFormatError(file: fileName, offset: 0, reason: "file\(inside) is \(header.count) bytes, too short for an IDX magic number")
        }
        guard header[0] == 0, header[1] == 0 else {
            throw FileFormatError(file: fileName, offset: 0,
                                  reason: "not an IDX file: magic \(hex(header.prefix(4))) does not start with two zero bytes (expected \(String(format: "0x%08X", magic)) for \(what))")
        }
        guard header[2] == 0x08 else {
            let names: [UInt8: String] = [0x09: "signed byte", 0x0B: "int16", 0x0C: "int32", 0x0D: "float32", 0x0E: "float64"]
            throw FileFormatError(file: fileName, offset: 2,
                                  reason: "element type 0x\(String(format: "%02X", header[2])) (\(names[header[2]] ?? "unknown")) is not supported; MNIST-style \(what) are unsigned bytes (0x08)")
        }
        guard Int(header[3]) == rank else {
            throw FileFormatError(file: fileName, offset: 3,
                                  reason: "rank \(header[3]) but \(what) files have rank \(rank) (magic \(String(format: "0x%08X", magic)))")
        }
        guard header.count == headerSize else {
            throw FileFormatError(file: fileName, offset: header.count, reason: "file\(inside) ends inside the \(headerSize)-byte header (truncated)")
        }
        var dims: [Int] = []
        var elementCount = 1
        var overflow = false
        for axis in 0..<rank {
            let o = 4 + 4 * axis
            let dim = Int(header[o]) << 24 | Int(header[o + 1]) << 16 | Int(header[o + 2]) << 8 | Int(header[o + 3])
            dims.append(dim)
            let (product, o1) = elementCount.multipliedReportingOverflow(by: dim)
            overflow = overflow || o1
            elementCount = product
        }
        let shapeText = dims.map(String.init).joined(separator: "×")
        let (expected, o2) = elementCount.addingReportingOverflow(headerSize)
        guard !overflow, !o2 else {
            throw FileFormatError(file: fileName, offset: 4, reason: "dimensions \(shapeText) are too large")
        }
        if compressed {
            bytes = try Gzip.inflate(bytes, expectedSize: expected, fileName: fileName, what: "\(what) of \(shapeText)")
        } else if bytes.count != expected {
            throw FileFormatError(file: fileName, offset: min(bytes.count, expected),
                                  reason: bytes.count < expected
                                    ? "truncated: the header announces \(what) of \(shapeText) (\(expected) bytes with the header) but the file has \(bytes.count) bytes"
                                    : "\(bytes.count - expected) bytes after the \(what) of \(shapeText) the header announces (file has \(bytes.count) bytes, expected \(expected))")
        }
        bytes.removeFirst(headerSize)
        return (dims, bytes)
    }

    private static func hex<C: Collection<UInt8>>(_ bytes: C) -> String {
        "0x" + bytes.map { String(format: "%02X", $0) }.joined()
    }
}
