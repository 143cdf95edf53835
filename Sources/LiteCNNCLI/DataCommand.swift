import ArgumentParser
import Foundation
import LiteCNN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `litecnn data`: generate the built-in procedural data set as `.npy` files, or inspect a data set on disk.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data",
        abstract: "Generate the built-in shapes data set as .npy files, or inspect a data set.",
        discussion: """
        The formats LiteCNN reads (MNIST-style IDX, CIFAR-10/100 binary, image folders, NumPy arrays) and the \
        shapes set are described in docs/DATA.md.

        Examples:
          litecnn data shapes --samples 10000 --resolution 32 --out data/shapes --preview shapes.png
          litecnn data shapes --samples 2000 --channels 1 --resolution 24 --seed 3 --out /tmp/shapes-gray
          litecnn data inspect data/shapes
          litecnn data inspect ~/datasets/mnist --format idx --json
          litecnn data inspect shapes --samples 1000
        """,
        subcommands: [ShapesDataCommand.self, InspectDataCommand.self]
    )
}

/// `litecnn data shapes`: writes the procedural set in the `npy` layout `litecnn train --format npy` reads.
struct ShapesDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shapes",
        abstract: "Write the procedural shapes data set as .npy files (train_*, test_*, classes.txt).",
        discussion: """
        Writes into --out (created if missing), each file atomically:
          train_images.npy  float32 [N, H, W, C], values in [0, 1] (NHWC, C = --channels)
          train_labels.npy  int64 [N], labels 0…9 (label = index mod 10, so classes are balanced)
          test_images.npy   float32 [M, H, W, C], a held-out split drawn from a different stream
          test_labels.npy   int64 [M]
          classes.txt       the 10 class names, one per line, in label order
        The same --seed gives byte-identical files; `litecnn train --data shapes` generates the same images in memory \
        without files. Classes and the generation process: docs/DATA.md.

        Examples:
          litecnn data shapes --samples 10000 --resolution 32 --out data/shapes
          litecnn data shapes --samples 500 --test-samples 100 --channels 1 --out /tmp/s --preview /tmp/s/preview.png
        """
    )

    @Option(help: ArgumentHelp("Training images.", valueName: "n"))
    var samples: Int = 10_000

    @Option(help: ArgumentHelp("Held-out test images (default: max(100, samples / 5)).", valueName: "m"))
    var testSamples: Int?

    @Option(help: ArgumentHelp("Image side in pixels (16…4096).", valueName: "r"))
    var resolution: Int = 32

    @Option(help: ArgumentHelp("1 (gray) or 3 (RGB).", valueName: "c"))
    var channels: Int = 3

    @Option(help: ArgumentHelp("Seed: the same seed gives the same images.", valueName: "s"))
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Output folder.", valueName: "dir"))
    var out: String

    @Option(help: ArgumentHelp("Also write a PNG grid of the first 64 training images with their class names in classes.txt order.",
                               valueName: "file.png"))
    var preview: String?

    func validate() throws {
        do {
            try ShapesDataset.validate(samples: samples, testSamples: testSamples, resolution: resolution, channels: channels)
        } catch let error as DataArgumentError {
            throw ValidationError(error.description)
        }
        let perImage = resolution * resolution * channels * 4
        let total = samples + (testSamples ?? ShapesDataset.defaultTestSamples(for: samples))
        if total.multipliedReportingOverflow(by: perImage).overflow {
            throw ValidationError("--samples: \(total) images of \(resolution)×\(resolution)×\(channels) do not fit in a file")
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out).standardizedFileURL
        do {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        } catch {
            throw CommandError("\(directory.path): cannot create the output folder (\(error.localizedDescription))")
        }
        let splits = ShapesDataset.splits(samples: samples, testSamples: testSamples, resolution: resolution,
                                          channels: channels, seed: seed)
        let progress = ProgressLine(enabled: true)
        let start = monotonicSeconds()
        for (name, data) in [("train", splits.train), ("test", splits.test)] {
            guard let shapes = data as? ShapesDataset else { continue }
            try writeImages(shapes, to: directory.appendingPathComponent("\(name)_images.npy")) { done in
                progress.update("\(name): \(done)/\(shapes.count) images")
            }
            try writeFileAtomically(NPYFiles.int64((0..<shapes.count).map(shapes.label(at:))),
                                    to: directory.appendingPathComponent("\(name)_labels.npy"))
        }
        try writeFileAtomically(Array((ShapesDataset.classNames.joined(separator: "\n") + "\n").utf8),
                                to: directory.appendingPathComponent("classes.txt"))
        progress.finish()
        let seconds = monotonicSeconds() - start
        print("\(splits.description)")
        print("wrote \(splits.train.count) train + \(splits.test.count) test images to \(directory.path) " +
              "(train_images.npy, train_labels.npy, test_images.npy, test_labels.npy, classes.txt) in " +
              String(format: "%.2f s", seconds))
        if let preview {
            let url = URL(fileURLWithPath: preview).standardizedFileURL
            try writeFileAtomically(try ImageCodec.encodePNG(previewGrid(splits.train)), to: url)
            print("preview: \(url.path) (first \(min(64, splits.train.count)) training images, 8 per row, labels in row-major order: " +
                  (0..<min(8, splits.train.count)).map { ShapesDataset.classNames[$0 % 10] }.joined(separator: ", ") + ", …)")
        }
    }

    /// Streams `data` into a float32 `.npy` file: samples are generated in parallel in chunks and appended to a
    /// temporary file that is renamed over `url` at the end (atomic; memory stays bounded whatever the size).
    private func writeImages(_ data: ShapesDataset, to url: URL, progress: (Int) -> Void) throws {
        let perImage = data.resolution * data.resolution * data.channels
        let header = NPYFiles.header(descr: "<f4", shape: [data.count, data.resolution, data.resolution, data.channels])
        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(UInt32.random(in: 0...UInt32.max))")
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(header)),
              let handle = FileHandle(forWritingAtPath: temporary.path) else {
            throw CommandError("\(url.path): cannot create the file")
        }
        do {
            handle.seekToEndOfFile()
            let chunk = 1024
            var start = 0
            while start < data.count {
                let n = min(chunk, data.count - start)
                var bytes = [UInt8](repeating: 0, count: n * perImage * 4)
                bytes.withUnsafeMutableBytes { raw in
                    let base = UnsafeSendableRawPointer(raw.baseAddress!)
                    let first = start
                    WorkerPool.shared.parallelFor(n) { i in
                        let pixels = try! data.sample(at: first + i).image.scalars   // never throws for a valid index
                        let out = base.pointer.advanced(by: i * perImage * 4)
                        for (k, value) in pixels.enumerated() {
                            out.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: k * 4, as: UInt32.self)
                        }
                    }
                }
                try handle.write(contentsOf: bytes)
                start += n
                progress(start)
            }
            try handle.close()
        } catch {
            try? handle.close()
            try? FileManager.default.removeItem(at: temporary)
            throw CommandError("\(url.path): cannot write (\(error.localizedDescription))")
        }
        if rename(temporary.path, url.path) != 0 {
            let reason = String(cString: strerror(errno))
            try? FileManager.default.removeItem(at: temporary)
            throw CommandError("\(url.path): cannot move the written file into place (\(reason))")
        }
    }

    /// The first ≤ 64 images in a grid of 8 columns with 2-pixel white gaps, each image enlarged by an integer factor
    /// (nearest neighbour) to at least 48 pixels. `[H, W, C]` in [0, 1].
    private func previewGrid(_ data: any Dataset) throws -> Tensor {
        let count = min(64, data.count), columns = min(8, count), rows = (count + columns - 1) / columns
        let factor = max(1, (48 + resolution - 1) / resolution), tile = resolution * factor, gap = 2
        let height = rows * tile + (rows + 1) * gap, width = columns * tile + (columns + 1) * gap
        var pixels = [Float](repeating: 1, count: height * width * channels)
        for i in 0..<count {
            let image = try data.sample(at: i).image.scalars
            let top = gap + (i / columns) * (tile + gap), left = gap + (i % columns) * (tile + gap)
            for y in 0..<tile {
                for x in 0..<tile {
                    let s = ((y / factor) * resolution + x / factor) * channels
                    let o = ((top + y) * width + left + x) * channels
                    for c in 0..<channels { pixels[o + c] = image[s + c] }
                }
            }
        }
        return Tensor(shape: [height, width, channels], scalars: pixels, layout: .plain)
    }
}

/// A raw pointer the parallel loop may share (each task writes a disjoint range).
private struct UnsafeSendableRawPointer: @unchecked Sendable {
    let pointer: UnsafeMutableRawPointer
    init(_ pointer: UnsafeMutableRawPointer) { self.pointer = pointer }
}

/// `.npy` bytes for the dtypes `NPY.encode` does not write.
enum NPYFiles {
    /// The version-1 header (magic, version, length, dict padded with spaces and a newline so the data starts on a
    /// 64-byte boundary) for a C-order array of `descr` and `shape`.
    static func header(descr: String, shape: [Int]) -> [UInt8] {
        let shapeText = shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
        var dict = Array("{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }".utf8)
        let prefix = NPY.magic.count + 4
        dict += [UInt8](repeating: 0x20, count: (64 - (prefix + dict.count + 1) % 64) % 64)
        dict.append(0x0A)
        var bytes = NPY.magic + [1, 0]
        withUnsafeBytes(of: UInt16(dict.count).littleEndian) { bytes += $0 }
        return bytes + dict
    }

    /// A `<i8` (int64, little-endian) vector: `[values.count]`.
    static func int64(_ values: [Int]) -> [UInt8] {
        var bytes = header(descr: "<i8", shape: [values.count])
        bytes.reserveCapacity(bytes.count + values.count * 8)
        for value in values { withUnsafeBytes(of: Int64(value).littleEndian) { bytes += $0 } }
        return bytes
    }
}

/// `litecnn data inspect PATH`: what a data set holds, as `litecnn train --data PATH` would see it.
struct InspectDataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Describe a data set: format, splits, classes, image size, class histogram, pixel statistics.",
        discussion: """
        PATH is a folder holding a data set in one of the formats of docs/DATA.md (detected from the files present \
        unless --format is given), or `shapes` for the built-in procedural set (sized by --samples, --resolution, \
        --channels, --seed). Every label is read to count the classes (for image folders this decodes every image); \
        the per-channel mean and standard deviation of the pixel values are measured on the first 1000 training \
        images (values in [0, 1]; what a Normalize would use).

        Examples:
          litecnn data inspect data/shapes
          litecnn data inspect ~/datasets/cifar-10-batches-bin --format cifar
          litecnn data inspect ~/datasets/flowers --json
          litecnn data inspect shapes --samples 1000 --channels 1
        """
    )

    @Argument(help: ArgumentHelp("The data set's folder, or `shapes`.", valueName: "path"))
    var path: String

    @Option(help: ArgumentHelp("Format: \(DataFormat.allCases.map(\.rawValue).joined(separator: ", ")) (default: detected).",
                               valueName: "f"))
    var format: String?

    @Option(help: ArgumentHelp("shapes only: training images.", valueName: "n"))
    var samples: Int = 10_000

    @Option(help: ArgumentHelp("shapes only: image side.", valueName: "r"))
    var resolution: Int = 32

    @Option(help: ArgumentHelp("shapes only: 1 or 3.", valueName: "c"))
    var channels: Int = 3

    @Option(help: ArgumentHelp("shapes only: seed.", valueName: "s"))
    var seed: UInt64 = 0

    @Flag(help: "Print JSON: {description, format, path, classes, channels, height, width, train: {count, histogram}, test: {count, histogram}, mean, std}.")
    var json = false

    struct SplitReport: Codable {
        var count: Int
        var histogram: [Int]
    }

    struct Report: Codable {
        var description: String
        var format: String
        var path: String
        var classes: [String]
        var channels: Int
        var height: Int?
        var width: Int?
        var train: SplitReport
        var test: SplitReport
        var mean: [Double]
        var std: [Double]
    }

    func validate() throws {
        if let format, DataFormat(rawValue: format) == nil {
            throw ValidationError("--format must be one of \(DataFormat.allCases.map(\.rawValue).joined(separator: ", ")), got '\(format)'")
        }
    }

    func run() throws {
        var dataFormat = format.flatMap(DataFormat.init(rawValue:))
        if dataFormat == nil, path == "shapes", !FileManager.default.fileExists(atPath: path) { dataFormat = .shapes }
        let splits: DatasetSplits
        let formatName: String
        if dataFormat == .shapes {
            do {
                try ShapesDataset.validate(samples: samples, resolution: resolution, channels: channels)
            } catch let error as DataArgumentError {
                throw ValidationError(error.description)
            }
            splits = ShapesDataset.splits(samples: samples, resolution: resolution, channels: channels, seed: seed)
            formatName = "shapes"
        } else {
            splits = try DataSource.open(path: path, format: dataFormat)
            formatName = (dataFormat ?? DataSource.detect(URL(fileURLWithPath: path).standardizedFileURL))?.rawValue ?? "?"
        }
        let progress = ProgressLine(enabled: !json)
        func histogram(_ data: any Dataset, _ name: String) throws -> SplitReport {
            var counts = [Int](repeating: 0, count: data.classCount)
            for i in 0..<data.count {
                let label: Int
                if let shapes = data as? ShapesDataset { label = shapes.label(at: i) } else { label = try data.sample(at: i).label }
                if label >= 0 && label < counts.count { counts[label] += 1 }
                progress.update("\(name): \(i + 1)/\(data.count) labels")
            }
            return SplitReport(count: data.count, histogram: counts)
        }
        let train = try histogram(splits.train, "train"), test = try histogram(splits.test, "test")
        // Pixel statistics over the first ≤ 1000 training images (Welford per channel).
        let c = splits.train.channels
        var count = [Double](repeating: 0, count: c), mean = count, m2 = count
        for i in 0..<min(1000, splits.train.count) {
            let image = try splits.train.sample(at: i).image
            let channels = image.shape.last ?? 1
            for (k, value) in image.scalars.enumerated() {
                let ch = k % channels
                guard ch < c else { continue }
                count[ch] += 1
                let delta = Double(value) - mean[ch]
                mean[ch] += delta / count[ch]
                m2[ch] += delta * (Double(value) - mean[ch])
            }
            progress.update("pixel statistics: \(i + 1) images")
        }
        progress.finish()
        let std = (0..<c).map { count[$0] > 1 ? (m2[$0] / count[$0]).squareRoot() : 0 }
        let size = splits.train.imageSize
        let report = Report(description: splits.description, format: formatName, path: path,
                            classes: splits.train.classNames, channels: c, height: size?.height, width: size?.width,
                            train: train, test: test, mean: mean.map { ($0 * 10_000).rounded() / 10_000 },
                            std: std.map { ($0 * 10_000).rounded() / 10_000 })
        if json {
            print(try encodeJSON(report))
            return
        }
        print(report.description)
        print("format      \(report.format)")
        print("images      \(size.map { "\($0.height)×\($0.width)" } ?? "sizes vary (transforms resize)") × \(c) channel\(c == 1 ? "" : "s")")
        print("splits      \(train.count) train, \(test.count) test")
        print("classes     \(report.classes.count)")
        print("mean / std  " + zip(report.mean, report.std).map { String(format: "%.4f / %.4f", $0, $1) }.joined(separator: ", ") +
              " (first \(min(1000, splits.train.count)) train images)")
        let rows = report.classes.indices.map { k in [String(k), report.classes[k], String(train.histogram[k]), String(test.histogram[k])] }
        print(renderTable(header: ["Label", "Class", "Train", "Test"], rows: rows, rightAligned: [0, 2, 3]))
    }
}
