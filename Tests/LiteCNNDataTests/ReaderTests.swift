// Tests of the file readers (IDX, CIFAR, .npy folders, image folders) and of DataSource's format detection, on small
// files each test writes into a temporary folder — including truncated files and lying headers.
import CImageDecode
import Foundation
import LiteCNNData
import LiteCNNIO
import LiteCNNTensor
import XCTest

// MARK: - Helpers shared by the reader and codec tests

/// Small data-set files written for the tests.
enum DataFixtures {
    /// A fresh empty folder under the system temporary folder.
    static func temporaryFolder() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-data-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    static func write(_ bytes: [UInt8], _ url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
    }

    /// gzip of `bytes` through zlib.
    static func gzip(_ bytes: [UInt8]) -> [UInt8] {
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let status = bytes.withUnsafeBufferPointer { litecnn_gzip_compress($0.baseAddress, $0.count, 6, &output, &length, &message) }
        precondition(status == 0, "gzip failed")
        defer { litecnn_buffer_free(output) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// An IDX file: magic `00 00 08 rank`, big-endian dims, then `data`.
    static func idx(dims: [Int], data: [UInt8], typeByte: UInt8 = 0x08) -> [UInt8] {
        var bytes: [UInt8] = [0, 0, typeByte, UInt8(dims.count)]
        for dim in dims { bytes += [UInt8(dim >> 24 & 0xFF), UInt8(dim >> 16 & 0xFF), UInt8(dim >> 8 & 0xFF), UInt8(dim & 0xFF)] }
        return bytes + data
    }

    /// The pixel byte of image `i` at flat position `p` in the IDX fixtures.
    static func idxPixel(_ i: Int, _ p: Int) -> UInt8 { UInt8((i * 37 + p * 11) % 256) }

    /// Writes an MNIST-style folder: `train` and `test` images of 3×4 with labels `i % 10` (test labels `(i + 3) % 10`).
    static func writeIDX(in folder: URL, train: Int, test: Int, gzipped: Bool, dotted: Bool = false) throws {
        for (split, count, shift) in [("train", train, 0), ("t10k", test, 3)] {
            let pixels = (0..<count).flatMap { i in (0..<12).map { idxPixel(i + shift, $0) } }
            let labels = (0..<count).map { UInt8(($0 + shift) % 10) }
            let imagesName = dotted ? "\(split)-images.idx3-ubyte" : "\(split)-images-idx3-ubyte"
            let labelsName = dotted ? "\(split)-labels.idx1-ubyte" : "\(split)-labels-idx1-ubyte"
            let imageFile = idx(dims: [count, 3, 4], data: pixels), labelFile = idx(dims: [count], data: labels)
            try write(gzipped ? gzip(imageFile) : imageFile, folder.appendingPathComponent(imagesName + (gzipped ? ".gz" : "")))
            try write(gzipped ? gzip(labelFile) : labelFile, folder.appendingPathComponent(labelsName + (gzipped ? ".gz" : "")))
        }
    }

    /// A CIFAR record: label byte(s) then R, G, B planes with value `(seed + plane·50 + pixel) % 256`.
    static func cifarRecord(labels: [UInt8], seed: Int) -> [UInt8] {
        labels + (0..<3).flatMap { plane in (0..<1024).map { UInt8((seed + plane * 50 + $0) % 256) } }
    }

    /// A `.npy` file with an arbitrary dtype: `data` holds the little-endian element bytes.
    static func npy(descr: String, shape: [Int], data: [UInt8]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var header = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
        header += [UInt8](repeating: 0x20, count: (64 - (10 + header.count + 1) % 64) % 64) + [0x0A]
        return NPY.magic + [1, 0, UInt8(header.count & 0xFF), UInt8(header.count >> 8)] + header + data
    }

    static func int64Bytes(_ values: [Int]) -> [UInt8] {
        values.flatMap { value in withUnsafeBytes(of: Int64(value).littleEndian) { Array($0) } }
    }

    /// A `[h, w, channels]` image with values `((y·w + x)·channels + c)·step mod 256 / 255` (exact in 8 bits).
    static func patternImage(height: Int, width: Int, channels: Int, step: Int = 7, offset: Int = 0) -> Tensor {
        Tensor(shape: [height, width, channels],
               scalars: (0..<(height * width * channels)).map { Float(($0 * step + offset) % 256) / 255 }, layout: .plain)
    }
}

/// Asserts that `body` throws an error whose description contains every string of `fragments`; returns the description.
@discardableResult
func assertThrowsMentioning(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line,
                            _ body: () throws -> Void) -> String? {
    do {
        try body()
        XCTFail("expected an error mentioning \(fragments)", file: file, line: line)
        return nil
    } catch {
        let text = String(describing: error)
        XCTAssertTrue(error is FileFormatError, "\(type(of: error)): \(text)", file: file, line: line)
        for fragment in fragments {
            XCTAssertTrue(text.contains(fragment), "'\(text)' does not mention '\(fragment)'", file: file, line: line)
        }
        return text
    }
}

// MARK: - IDX

final class IDXReaderTests: XCTestCase {
    func checkMNISTSplits(_ splits: DatasetSplits, train: Int, test: Int) throws {
        XCTAssertEqual(splits.train.count, train)
        XCTAssertEqual(splits.test.count, test)
        XCTAssertEqual(splits.train.classNames, (0..<10).map(String.init))
        XCTAssertEqual(splits.train.channels, 1)
        XCTAssertEqual(splits.train.imageSize?.height, 3)
        XCTAssertEqual(splits.train.imageSize?.width, 4)
        for (dataset, shift) in [(splits.train, 0), (splits.test, 3)] {
            for i in 0..<dataset.count {
                let sample = try dataset.sample(at: i)
                XCTAssertEqual(sample.image.shape, [3, 4, 1])
                XCTAssertEqual(sample.label, (i + shift) % 10)
                XCTAssertEqual(sample.image.scalars, (0..<12).map { Float(DataFixtures.idxPixel(i + shift, $0)) / 255 })
            }
        }
    }

    func testReadsPlainGzippedAndDottedFolders() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let plain = root.appendingPathComponent("plain"), gz = root.appendingPathComponent("gz")
        let dotted = root.appendingPathComponent("dotted"), torchvision = root.appendingPathComponent("tv")
        try DataFixtures.writeIDX(in: plain, train: 23, test: 7, gzipped: false)
        try DataFixtures.writeIDX(in: gz, train: 23, test: 7, gzipped: true)
        try DataFixtures.writeIDX(in: dotted, train: 23, test: 7, gzipped: false, dotted: true)
        try DataFixtures.writeIDX(in: torchvision.appendingPathComponent("MNIST/raw"), train: 23, test: 7, gzipped: true)
        for folder in [plain, gz, dotted, torchvision] {
            XCTAssertEqual(DataSource.detect(folder), .idx)
            let splits = try DataSource.open(path: folder.path, format: nil)
            try checkMNISTSplits(splits, train: 23, test: 7)
            XCTAssertTrue(splits.description.contains("IDX") && splits.description.contains("23 train + 7 test"), splits.description)
        }
        try checkMNISTSplits(try DataSource.open(path: plain.path, format: .idx), train: 23, test: 7)
    }

    /// A gzipped MNIST-sized training file (60 000 × 28 × 28) loads with exact pixels; prints the load time.
    func testFullSizeGzippedTrainingSplit() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let count = 60_000, size = 28 * 28
        var pixels = [UInt8](repeating: 0, count: count * size)
        for i in stride(from: 0, to: pixels.count, by: 97) { pixels[i] = UInt8(i / 97 % 251) }
        let images = root.appendingPathComponent("train-images-idx3-ubyte.gz"), labels = root.appendingPathComponent("train-labels-idx1-ubyte.gz")
        try DataFixtures.write(DataFixtures.gzip(DataFixtures.idx(dims: [count, 28, 28], data: pixels)), images)
        try DataFixtures.write(DataFixtures.gzip(DataFixtures.idx(dims: [count], data: (0..<count).map { UInt8($0 % 10) })), labels)
        let start = Date()
        let dataset = try IDX.load(images: images, labels: labels)
        let seconds = Date().timeIntervalSince(start)
        print("IDX: 60000×28×28 gzipped (\(try FileManager.default.attributesOfItem(atPath: images.path)[.size] ?? 0) bytes) loaded in \(String(format: "%.3f", seconds)) s")
        XCTAssertEqual(dataset.count, count)
        let sample = try dataset.sample(at: 59_999)
        XCTAssertEqual(sample.label, 9)
        XCTAssertEqual(sample.image.scalars, (0..<size).map { Float(pixels[59_999 * size + $0]) / 255 })
    }

    func testBadFilesGiveErrorsNamingTheFile() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let images = root.appendingPathComponent("train-images-idx3-ubyte")
        let labels = root.appendingPathComponent("train-labels-idx1-ubyte")
        let pixels = (0..<(5 * 12)).map { UInt8($0 % 256) }
        let goodLabels = DataFixtures.idx(dims: [5], data: [0, 1, 2, 3, 4])
        try DataFixtures.write(goodLabels, labels)
        func check(_ imageFile: [UInt8], _ fragments: [String], labelFile: [UInt8]? = nil, name: URL? = nil) throws {
            try DataFixtures.write(imageFile, images)
            try DataFixtures.write(labelFile ?? goodLabels, labels)
            assertThrowsMentioning([(name ?? images).path] + fragments) { _ = try IDX.load(images: images, labels: labels) }
        }
        let good = DataFixtures.idx(dims: [5, 3, 4], data: pixels)
        try DataFixtures.write(good, images)
        XCTAssertEqual(try IDX.load(images: images, labels: labels).count, 5, "the good pair loads")
        try check(Array(good.dropLast()), ["truncated"])                                    // one byte short
        try check(Array(good.prefix(10)), ["header", "truncated"])                          // ends inside the header
        try check(DataFixtures.idx(dims: [1000, 3, 4], data: pixels), ["truncated", "1000×3×4"])  // lying count
        try check(good + [1, 2, 3], ["3 bytes after"])                                       // trailing bytes
        try check([0x12, 0x34] + Array(good.dropFirst(2)), ["not an IDX file"])             // wrong magic
        try check(DataFixtures.idx(dims: [5, 3, 4], data: pixels, typeByte: 0x0D), ["float32"])
        try check(DataFixtures.idx(dims: [5, 12], data: pixels), ["rank 2"])
        try check(DataFixtures.idx(dims: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: pixels), ["too large"])
        try check(good, ["label 10", "out of range"], labelFile: DataFixtures.idx(dims: [5], data: [0, 1, 10, 3, 4]), name: labels)
        try check(good, ["4 labels", "5 images"], labelFile: DataFixtures.idx(dims: [4], data: [0, 1, 2, 3]), name: labels)
        try check(DataFixtures.idx(dims: [5, 3, 4], data: pixels), ["0x00000801"], labelFile: good, name: labels)

        // gzip: a lying count larger than the compressed file can hold is refused before allocating; a truncated
        // stream and a stream longer than its header are errors too.
        try check(DataFixtures.gzip(DataFixtures.idx(dims: [100_000_000, 28, 28], data: pixels)), ["more than", "compressed"])
        try check(DataFixtures.gzip(DataFixtures.idx(dims: [6, 3, 4], data: pixels)), ["truncated"])
        try check(DataFixtures.gzip(DataFixtures.idx(dims: [4, 3, 4], data: pixels)), ["longer than"])
        let compressed = DataFixtures.gzip(good)
        try check(Array(compressed.prefix(compressed.count - 12)), ["truncated"])
        var corrupt = compressed
        corrupt[12] ^= 0xFF
        corrupt[13] ^= 0x5A
        try DataFixtures.write(corrupt, images)
        XCTAssertThrowsError(try IDX.load(images: images, labels: labels)) { error in
            XCTAssertTrue(String(describing: error).contains(images.path), "\(error)")
        }

        // A folder missing its test split names the missing file.
        try DataFixtures.write(good, images)
        try DataFixtures.write(goodLabels, labels)
        assertThrowsMentioning(["t10k-images-idx3-ubyte", "missing"]) { _ = try DataSource.open(path: root.path, format: nil) }
    }
}

// MARK: - CIFAR

final class CIFARReaderTests: XCTestCase {
    func testCIFAR10BatchesInTheirSubfolder() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let folder = root.appendingPathComponent("cifar-10-batches-bin")
        let labels: [[UInt8]] = [[3, 0, 9], [1, 2], [7, 5]]
        for (index, batch) in labels.enumerated() {
            let records = batch.enumerated().flatMap { DataFixtures.cifarRecord(labels: [$0.element], seed: index * 10 + $0.offset) }
            try DataFixtures.write(records, folder.appendingPathComponent(index < 2 ? "data_batch_\(index + 1).bin" : "test_batch.bin"))
        }
        var splits = try DataSource.open(path: root.path, format: nil)
        XCTAssertEqual(splits.train.count, 5)
        XCTAssertEqual(splits.test.count, 2)
        XCTAssertEqual(splits.train.classNames, CIFAR.cifar10ClassNames)
        XCTAssertEqual(splits.train.channels, 3)
        XCTAssertEqual(splits.train.imageSize?.height, 32)
        XCTAssertTrue(splits.description.contains("CIFAR-10"), splits.description)
        let sample = try splits.train.sample(at: 3)   // batch 2, record 0: seed 10
        XCTAssertEqual(sample.label, 1)
        XCTAssertEqual(sample.image.shape, [32, 32, 3])
        for (y, x) in [(0, 0), (0, 1), (5, 7), (31, 31)] {
            for c in 0..<3 {
                XCTAssertEqual(sample.image[y, x, c], Float((10 + c * 50 + y * 32 + x) % 256) / 255, "pixel \(y),\(x),\(c)")
            }
        }
        XCTAssertEqual(try (0..<2).map { try splits.test.sample(at: $0).label }, [7, 5])

        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]
        try DataFixtures.write(Array((names.joined(separator: "\n") + "\n\n").utf8), folder.appendingPathComponent("batches.meta.txt"))
        splits = try DataSource.open(path: folder.path, format: .cifar)
        XCTAssertEqual(splits.test.classNames, names)

        try DataFixtures.write(Array("a\nb\n".utf8), folder.appendingPathComponent("batches.meta.txt"))
        assertThrowsMentioning(["batches.meta.txt", "2 class names"]) { _ = try DataSource.open(path: root.path, format: nil) }
    }

    func testCIFAR100UsesFineLabels() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        try DataFixtures.write(DataFixtures.cifarRecord(labels: [19, 99], seed: 1) + DataFixtures.cifarRecord(labels: [0, 42], seed: 2),
                               root.appendingPathComponent("train.bin"))
        try DataFixtures.write(DataFixtures.cifarRecord(labels: [4, 7], seed: 3), root.appendingPathComponent("test.bin"))
        var splits = try DataSource.open(path: root.path, format: nil)
        XCTAssertEqual(splits.train.classNames.count, 100)
        XCTAssertEqual(try (0..<2).map { try splits.train.sample(at: $0).label }, [99, 42])
        let sample = try splits.test.sample(at: 0)
        XCTAssertEqual(sample.label, 7)
        XCTAssertEqual(sample.image[2, 3, 1], Float((3 + 50 + 2 * 32 + 3) % 256) / 255)
        XCTAssertTrue(splits.description.contains("CIFAR-100"), splits.description)

        let names = (0..<100).map { "class\($0)" }
        try DataFixtures.write(Array(names.joined(separator: "\n").utf8), root.appendingPathComponent("fine_label_names.txt"))
        splits = try DataSource.open(path: root.path, format: .cifar)
        XCTAssertEqual(splits.train.classNames[42], "class42")
    }

    func testBadBatchesGiveErrorsNamingFileAndOffset() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let train = root.appendingPathComponent("data_batch_1.bin"), test = root.appendingPathComponent("test_batch.bin")
        let good = DataFixtures.cifarRecord(labels: [1], seed: 0)
        try DataFixtures.write(good + good, train)
        try DataFixtures.write(good + Array(good.prefix(100)), test)
        assertThrowsMentioning([test.path, "byte 3073", "partial record of 100 bytes"]) { _ = try CIFAR.splits(directory: root) }
        try DataFixtures.write(good + DataFixtures.cifarRecord(labels: [10], seed: 0), test)
        assertThrowsMentioning([test.path, "byte 3073", "label 10"]) { _ = try CIFAR.splits(directory: root) }
        try FileManager.default.removeItem(at: test)
        assertThrowsMentioning([test.path, "missing"]) { _ = try CIFAR.splits(directory: root) }

        let cifar100 = root.appendingPathComponent("cifar-100-binary")
        let record = DataFixtures.cifarRecord(labels: [2, 3], seed: 0)
        try DataFixtures.write(record, cifar100.appendingPathComponent("test.bin"))
        try DataFixtures.write(record + DataFixtures.cifarRecord(labels: [2, 100], seed: 0), cifar100.appendingPathComponent("train.bin"))
        assertThrowsMentioning(["train.bin", "byte 3075", "fine label 100"]) { _ = try CIFAR.splits(directory: cifar100) }
        try DataFixtures.write(record + DataFixtures.cifarRecord(labels: [20, 1], seed: 0), cifar100.appendingPathComponent("train.bin"))
        assertThrowsMentioning(["train.bin", "byte 3074", "coarse label 20"]) { _ = try CIFAR.splits(directory: cifar100) }
    }
}

// MARK: - .npy

final class NPYFolderTests: XCTestCase {
    func testSplitFilesInEveryLayout() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        // uint8 [N, H, W] train (gray), float32 [N, C, H, W] is refused to mix with it, so first: both gray.
        let trainBytes = (0..<(4 * 2 * 3)).map { UInt8($0 * 9 % 256) }
        try DataFixtures.write(DataFixtures.npy(descr: "|u1", shape: [4, 2, 3], data: trainBytes), root.appendingPathComponent("train_images.npy"))
        try DataFixtures.write(DataFixtures.npy(descr: "<i8", shape: [4], data: DataFixtures.int64Bytes([0, 2, 1, 2])), root.appendingPathComponent("train_labels.npy"))
        let testImages = Tensor(shape: [2, 2, 3, 1], scalars: (0..<12).map { Float($0) / 16 })
        try NPY.write(testImages, to: root.appendingPathComponent("test_images.npy"))
        try NPY.write(Tensor(shape: [2], scalars: [1, 4]), to: root.appendingPathComponent("test_labels.npy"))
        XCTAssertEqual(DataSource.detect(root), .npy)
        var splits = try DataSource.open(path: root.path, format: nil)
        XCTAssertEqual(splits.train.classNames, ["0", "1", "2", "3", "4"])
        XCTAssertEqual(splits.train.channels, 1)
        let first = try splits.train.sample(at: 1)
        XCTAssertEqual(first.label, 2)
        XCTAssertEqual(first.image.shape, [2, 3, 1])
        XCTAssertEqual(first.image.scalars, trainBytes[6..<12].map { Float($0) / 255 })
        XCTAssertEqual(try splits.test.sample(at: 1).image.scalars, (6..<12).map { Float($0) / 16 })
        XCTAssertEqual(try splits.test.sample(at: 1).label, 4)

        // Channels-first float images are transposed to HWC; NHWC RGB stays as is.
        let nchw = Tensor(shape: [2, 3, 2, 2], scalars: (0..<24).map { Float($0) / 24 })
        try NPY.write(nchw, to: root.appendingPathComponent("train_images.npy"))
        try DataFixtures.write(DataFixtures.npy(descr: "<i4", shape: [2], data: [1, 0, 0, 0, 0, 0, 0, 0]), root.appendingPathComponent("train_labels.npy"))
        let nhwc = Tensor(shape: [2, 2, 2, 3], scalars: (0..<24).map { Float($0) / 100 })
        try NPY.write(nhwc, to: root.appendingPathComponent("test_images.npy"))
        splits = try DataSource.open(path: root.path, format: .npy)
        XCTAssertEqual(splits.train.channels, 3)
        let transposed = try splits.train.sample(at: 1).image   // sample 1: values 12..<24, [c, y, x] → [y, x, c]
        for y in 0..<2 { for x in 0..<2 { for c in 0..<3 {
            XCTAssertEqual(transposed[y, x, c], Float(12 + c * 4 + y * 2 + x) / 24)
        } } }
        XCTAssertEqual(try splits.test.sample(at: 0).image.scalars, (0..<12).map { Float($0) / 100 })
    }

    func testSingleFilesGetADeterministicHeldOutSplit() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        // 20 samples of class 0 and 3 of class 1, interleaved.
        let fixed = (0..<23).map { $0 % 8 == 7 || $0 == 22 ? 1 : 0 }   // class 1: samples 7, 15 and 22
        try NPY.write(Tensor(shape: [23, 2, 2], scalars: (0..<92).map { Float($0) }), to: root.appendingPathComponent("images.npy"))
        try NPY.write(Tensor(shape: [23], scalars: fixed.map(Float.init)), to: root.appendingPathComponent("labels.npy"))
        let splits = try DataSource.open(path: root.path, format: nil)
        // class 0: 20 samples → 2 held out (its 10th and 20th); class 1: 3 samples → 1 held out (its 3rd, the last).
        let classZero = fixed.indices.filter { fixed[$0] == 0 }
        let expectedTest = [classZero[9], classZero[19], 22].sorted()
        XCTAssertEqual(splits.test.count, 3)
        XCTAssertEqual(splits.train.count, 20)
        XCTAssertEqual(try (0..<3).map { Int(try splits.test.sample(at: $0).image.scalars[0]) / 4 }, expectedTest)
        XCTAssertTrue(splits.description.contains("held-out"), splits.description)
        XCTAssertEqual((0..<10).filter { isHeldOut(position: $0, ofClassCount: 10) }, [9])
        XCTAssertEqual((0..<1).filter { isHeldOut(position: $0, ofClassCount: 1) }, [])
        XCTAssertEqual((0..<100).filter { isHeldOut(position: $0, ofClassCount: 100) }.count, 10)
    }

    func testBadArraysGiveErrorsNamingTheFile() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let images = root.appendingPathComponent("images.npy"), labels = root.appendingPathComponent("labels.npy")
        try NPY.write(Tensor(shape: [3, 2, 2], repeating: 0.5), to: images)
        try NPY.write(Tensor(shape: [2], scalars: [0, 1]), to: labels)
        assertThrowsMentioning([labels.path, "2 labels for 3 images"]) { _ = try NPYFolder.splits(directory: root) }
        try NPY.write(Tensor(shape: [3], scalars: [0, 1.5, 1]), to: labels)
        assertThrowsMentioning([labels.path, "1.5"]) { _ = try NPYFolder.splits(directory: root) }
        try NPY.write(Tensor(shape: [3], scalars: [0, -1, 1]), to: labels)
        assertThrowsMentioning([labels.path, "-1"]) { _ = try NPYFolder.splits(directory: root) }
        try NPY.write(Tensor(shape: [3, 2, 2, 5], repeating: 0.5), to: images)
        assertThrowsMentioning([images.path, "[3, 2, 2, 5]"]) { _ = try NPYFolder.splits(directory: root) }
        var truncated = NPY.encode(Tensor(shape: [3, 2, 2], repeating: 0.5))
        truncated.removeLast(4)
        try DataFixtures.write(truncated, images)
        assertThrowsMentioning([images.path, "needs 48 bytes"]) { _ = try NPYFolder.splits(directory: root) }
        try FileManager.default.removeItem(at: labels)
        assertThrowsMentioning([labels.path, "missing"]) { _ = try NPYFolder.splits(directory: root) }
        try NPY.write(Tensor(shape: [3, 2, 2], repeating: 0.5), to: root.appendingPathComponent("train_images.npy"))
        assertThrowsMentioning(["train_labels.npy", "missing"]) { _ = try DataSource.open(path: root.path, format: nil) }
    }
}

// MARK: - Image folders

final class ImageFolderTests: XCTestCase {
    func testTrainAndValFoldersWithPNGAndJPEG() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let catImage = DataFixtures.patternImage(height: 5, width: 6, channels: 3)
        for index in 0..<3 {
            try DataFixtures.write(ImageCodec.encodePNG(DataFixtures.patternImage(height: 5, width: 6, channels: 3, offset: index)),
                                   root.appendingPathComponent("train/cat/\(index).png"))
        }
        try DataFixtures.write(ImageCodec.encodeJPEG(DataFixtures.patternImage(height: 8, width: 8, channels: 3), quality: 95),
                               root.appendingPathComponent("train/bird/b.JPG"))
        try DataFixtures.write(ImageCodec.encodeJPEG(DataFixtures.patternImage(height: 9, width: 7, channels: 3), progressive: true),
                               root.appendingPathComponent("train/bird/nested/a.jpeg"))
        try DataFixtures.write([1, 2, 3], root.appendingPathComponent("train/bird/.hidden.png"))
        try DataFixtures.write([1, 2, 3], root.appendingPathComponent("train/bird/notes.txt"))
        try DataFixtures.write([1, 2, 3], root.appendingPathComponent("train/.git/x.png"))
        try DataFixtures.write(ImageCodec.encodePNG(catImage), root.appendingPathComponent("val/cat/v.png"))
        XCTAssertEqual(DataSource.detect(root), .folder)
        let splits = try DataSource.open(path: root.path, format: nil)
        XCTAssertEqual(splits.train.classNames, ["bird", "cat"])
        XCTAssertEqual(splits.train.count, 5)
        XCTAssertEqual(splits.test.count, 1)
        XCTAssertEqual(splits.train.channels, 3)
        XCTAssertNil(splits.train.imageSize)
        XCTAssertTrue(splits.description.contains("1 files without"), splits.description)
        let files = (splits.train as! ImageFolderDataset).files.map { URL(fileURLWithPath: $0).lastPathComponent }
        XCTAssertEqual(files, ["b.JPG", "a.jpeg", "0.png", "1.png", "2.png"])
        XCTAssertEqual(try (0..<5).map { try splits.train.sample(at: $0).label }, [0, 0, 1, 1, 1])
        let png = try splits.train.sample(at: 3)
        XCTAssertEqual(png.image.scalars, DataFixtures.patternImage(height: 5, width: 6, channels: 3, offset: 1).scalars)
        XCTAssertEqual(try splits.train.sample(at: 1).image.shape, [9, 7, 3])
        let val = try splits.test.sample(at: 0)
        XCTAssertEqual(val.label, 1)
        XCTAssertEqual(val.image.scalars, catImage.scalars)

        // Decoding from several threads at once gives the same pixels.
        let expected = try (0..<5).map { try splits.train.sample(at: $0).image.scalars }
        let results = ResultBox(count: 40)
        DispatchQueue.concurrentPerform(iterations: 40) { i in
            results.set(i, (try? splits.train.sample(at: i % 5).image.scalars) == expected[i % 5])
        }
        XCTAssertTrue(results.all)
    }

    func testFlatFolderHeldOutSplitAndGrayscale() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        for index in 0..<10 {
            try DataFixtures.write(ImageCodec.encodePNG(DataFixtures.patternImage(height: 4, width: 4, channels: 1, offset: index)),
                                   root.appendingPathComponent("zero/img\(index).png"))
        }
        for index in 0..<3 {
            try DataFixtures.write(ImageCodec.encodeJPEG(DataFixtures.patternImage(height: 4, width: 4, channels: 1), quality: 90),
                                   root.appendingPathComponent("one/\(index).jpg"))
        }
        var splits = try DataSource.open(path: root.path, format: .folder)
        XCTAssertEqual(splits.train.classNames, ["one", "zero"])
        XCTAssertEqual(splits.train.channels, 1, "every class starts with a gray image")
        XCTAssertEqual(splits.test.count, 2)   // zero: its 10th file (img9.png); one: its 3rd (2.jpg)
        XCTAssertEqual(splits.train.count, 11)
        let held = (splits.test as! ImageFolderDataset).files.map { URL(fileURLWithPath: $0).lastPathComponent }
        XCTAssertEqual(held, ["2.jpg", "img9.png"])
        XCTAssertEqual(try splits.test.sample(at: 1).image.scalars,
                       DataFixtures.patternImage(height: 4, width: 4, channels: 1, offset: 9).scalars)

        // An RGB class makes the data set RGB; gray images are then repeated over 3 channels.
        let rgb = DataFixtures.patternImage(height: 4, width: 4, channels: 3)
        try DataFixtures.write(ImageCodec.encodePNG(rgb), root.appendingPathComponent("two/a.png"))
        try DataFixtures.write(ImageCodec.encodePNG(rgb), root.appendingPathComponent("two/b.png"))
        splits = try DataSource.open(path: root.path, format: nil)
        XCTAssertEqual(splits.train.channels, 3)
        // train order: one/0.jpg, one/1.jpg, two/a.png (two/b.png is held out), zero/img0.png … img8.png
        let gray = try splits.train.sample(at: 10)
        XCTAssertEqual(gray.label, 2)
        XCTAssertEqual(gray.image.shape, [4, 4, 3])
        let source = DataFixtures.patternImage(height: 4, width: 4, channels: 1, offset: 7).scalars
        XCTAssertEqual(gray.image.scalars, source.flatMap { [$0, $0, $0] })
    }

    func testCorruptAndMissingFilesNameTheFile() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let good = try ImageCodec.encodePNG(DataFixtures.patternImage(height: 4, width: 4, channels: 3))
        try DataFixtures.write(good, root.appendingPathComponent("a/1.png"))
        let broken = root.appendingPathComponent("a/2.png")
        try DataFixtures.write(Array(good.prefix(good.count - 20)), broken)
        let notJPEG = root.appendingPathComponent("a/3.jpg")
        try DataFixtures.write(Array("hello".utf8), notJPEG)
        let splits = try DataSource.open(path: root.path, format: nil)   // opening reads one header per class only
        XCTAssertEqual(splits.train.count + splits.test.count, 3)
        let all = try ImageFolderDataset.splits(directory: root)
        let dataset = ImageFolderDataset(files: (all.train as! ImageFolderDataset).files + (all.test as! ImageFolderDataset).files,
                                         labels: [0, 0, 0], classNames: ["a"], channels: 3)
        XCTAssertNoThrow(try dataset.sample(at: 0))
        assertThrowsMentioning([broken.path, "PNG"]) { _ = try dataset.sample(at: 1) }
        assertThrowsMentioning([notJPEG.path, "not a PNG or JPEG"]) { _ = try dataset.sample(at: 2) }

        try FileManager.default.createDirectory(at: root.appendingPathComponent("empty"), withIntermediateDirectories: true)
        assertThrowsMentioning([root.appendingPathComponent("empty").path, "no .png"]) { _ = try DataSource.open(path: root.path, format: .folder) }
    }
}

// MARK: - Detection

final class DataSourceTests: XCTestCase {
    func testMissingEmptyAndFilePaths() throws {
        let root = try DataFixtures.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: root) }
        let missing = root.appendingPathComponent("nowhere")
        assertThrowsMentioning([missing.path, "no such"]) { _ = try DataSource.open(path: missing.path, format: nil) }
        assertThrowsMentioning([root.path, "train-images-idx3-ubyte", "data_batch_1.bin", "train_images.npy", "<class>"]) {
            _ = try DataSource.open(path: root.path, format: nil)
        }
        let file = root.appendingPathComponent("x.bin")
        try DataFixtures.write([1], file)
        assertThrowsMentioning([file.path, "is a file"]) { _ = try DataSource.open(path: file.path, format: nil) }
        assertThrowsMentioning([root.path]) { _ = try DataSource.open(path: root.path, format: .idx) }
        assertThrowsMentioning([root.path]) { _ = try DataSource.open(path: root.path, format: .cifar) }
    }
}

/// Results written from several threads.
final class ResultBox: @unchecked Sendable {
    private var values: [Bool]
    private let lock = NSLock()
    init(count: Int) { values = [Bool](repeating: false, count: count) }
    func set(_ index: Int, _ value: Bool) { lock.lock(); values[index] = value; lock.unlock() }
    var all: Bool { lock.lock(); defer { lock.unlock() }; return values.allSatisfy { $0 } }
}
