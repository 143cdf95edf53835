import Foundation
import LiteCNNGraph
import LiteCNNIO
import LiteCNNONNX
import LiteCNNTensor

/// Bytes per section and per tensor of a serialized compressed model (for reports). `total` is the file's size.
public struct SizeBreakdown: Sendable, Equatable {
    public struct Section: Sendable, Equatable {
        /// `header`, `architecture`, `tensors`, `activation ranges`, `metadata`, `checksum`.
        public var name: String
        /// Bytes including the section's 12-byte tag and length.
        public var bytes: Int
    }

    public struct TensorSize: Sendable, Equatable {
        public var name: String
        /// e.g. `codebook 6-bit, sparse (8-bit gaps), Huffman`.
        public var encoding: String
        public var elements: Int
        /// Elements actually stored (non-zeros plus padding when sparse, else `elements`).
        public var storedEntries: Int
        /// Name, kind, shape and parameters (codebook, scales, zero points).
        public var headerBytes: Int
        /// The value stream, with its length field (and Huffman table when coded).
        public var valueBytes: Int
        /// The gap stream of a sparse tensor, with its length field (0 when dense).
        public var indexBytes: Int
        public var bytes: Int { headerBytes + valueBytes + indexBytes }
        /// Bits of file per element of the tensor.
        public var bitsPerElement: Double { elements == 0 ? 0 : Double(bytes * 8) / Double(elements) }
    }

    public var total: Int
    public var sections: [Section]
    /// In file order (sorted by name).
    public var tensors: [TensorSize]
}

/// Reads and writes compressed model files (`.lcz`). The byte layout is specified in docs/COMPRESSED_FORMAT.md:
/// an 8-byte magic, a version, tagged sections (architecture = the ONNX graph without the stored weights; the
/// tensors; activation ranges; metadata) and a CRC-32 of everything before it.
///
/// Reading validates everything before use: the checksum, the magic and major version, every section and stream
/// length against the bytes that remain, enum tags and bit widths, element counts against the streams that must
/// hold them, and the total decoded element count against `limits` — a hostile file is rejected with a
/// `CompressedFileError` naming the file, the section and the byte offset; nothing traps.
public enum CompressedModelFile {
    public static let fileExtension = "lcz"
    /// `\x89 L C Z \r \n \x1A \n` (PNG-style: catches text-mode and 7-bit transfers).
    public static let magic: [UInt8] = [0x89, 0x4C, 0x43, 0x5A, 0x0D, 0x0A, 0x1A, 0x0A]
    /// Files with another major version are refused; a newer minor version only adds sections, which are skipped.
    public static let majorVersion: UInt16 = 1
    public static let minorVersion: UInt16 = 0

    /// Bounds on what a reader allocates for a file.
    public struct Limits: Sendable {
        /// Total decoded elements over all tensors (default 2^28 ≈ 268 M, 1 GB of fp32; VGG-19 has 144 M).
        public var maximumElements: Int
        public init(maximumElements: Int = 1 << 28) { self.maximumElements = maximumElements }
    }

    enum Tag {
        static let architecture: [UInt8] = Array("ARCH".utf8)
        static let tensors: [UInt8] = Array("TENS".utf8)
        static let ranges: [UInt8] = Array("ACTR".utf8)
        static let metadata: [UInt8] = Array("META".utf8)
    }

    // MARK: Writing

    public static func serialize(_ model: CompressedModel) throws -> [UInt8] {
        try encode(model, file: "<memory>").bytes
    }

    /// Writes `serialize(model)` to `url` atomically.
    public static func write(_ model: CompressedModel, to url: URL) throws {
        let bytes = try encode(model, file: url.path).bytes
        do {
            try writeFileAtomically(bytes, to: url)
        } catch {
            throw CompressedFileError(file: url.path, section: "file", offset: 0, reason: "\(error)")
        }
    }

    /// Bytes per section and per tensor of a serialized model (for reports).
    public static func sizeBreakdown(_ model: CompressedModel) throws -> SizeBreakdown {
        try encode(model, file: "<memory>").breakdown
    }

    private static func encode(_ model: CompressedModel, file: String) throws -> (bytes: [UInt8], breakdown: SizeBreakdown) {
        var out = ByteWriter()
        out.append(magic)
        out.u16(majorVersion)
        out.u16(minorVersion)
        var sections = [SizeBreakdown.Section(name: "header", bytes: out.bytes.count)]
        var tensorSizes: [SizeBreakdown.TensorSize] = []
        let names = model.tensors.keys.sorted()

        func section(_ tag: [UInt8], _ name: String, _ payload: [UInt8]) {
            out.append(tag)
            out.u64(UInt64(payload.count))
            out.append(payload)
            sections.append(.init(name: name, bytes: 12 + payload.count))
        }

        // Architecture: the graph without the stored weights, which become typed graph inputs (placeholders).
        var graph = model.graph
        let inputNames = Set(graph.inputs.map(\.name))
        for name in names {
            guard !inputNames.contains(name) else {
                throw CompressedFileError(file: file, section: "architecture", offset: out.bytes.count, tensor: name,
                                          reason: "a stored tensor has the name of a graph input")
            }
            graph.initializers[name] = nil
            graph.inputs.append(ValueInfo(name: name, elementType: .float32, shape: model.tensors[name]!.encoding.shape.map { .fixed($0) }))
        }
        let architecture: Data
        do {
            architecture = try ONNXFile.serialize(graph)
        } catch {
            throw CompressedFileError(file: file, section: "architecture", offset: out.bytes.count, reason: "cannot encode the graph: \(error)")
        }
        section(Tag.architecture, "architecture", [UInt8](architecture))

        // Tensors.
        var t = ByteWriter()
        t.varint(names.count)
        let tensorsBase = out.bytes.count + 12
        for name in names {
            let stored = model.tensors[name]!
            let size = try TensorCoding.write(name: name, stored: stored, into: &t, file: file, baseOffset: tensorsBase)
            tensorSizes.append(.init(name: name, encoding: describe(stored), elements: stored.encoding.shape.reduce(1, *),
                                     storedEntries: size.entries, headerBytes: size.header,
                                     valueBytes: size.values, indexBytes: size.gaps))
        }
        section(Tag.tensors, "tensors", t.bytes)

        // Activation ranges and metadata.
        var r = ByteWriter()
        r.varint(model.activationRanges.count)
        for name in model.activationRanges.keys.sorted() {
            let range = model.activationRanges[name]!
            r.string(name)
            r.f32(range.lowerBound)
            r.f32(range.upperBound)
        }
        section(Tag.ranges, "activation ranges", r.bytes)
        var m = ByteWriter()
        m.varint(model.metadata.count)
        for key in model.metadata.keys.sorted() {
            m.string(key)
            m.string(model.metadata[key]!)
        }
        section(Tag.metadata, "metadata", m.bytes)

        out.u32(CRC32.checksum(out.bytes))
        sections.append(.init(name: "checksum", bytes: 4))
        return (out.bytes, SizeBreakdown(total: out.bytes.count, sections: sections, tensors: tensorSizes))
    }

    /// `codebook 6-bit, sparse (8-bit gaps), Huffman` and the like.
    public static func describe(_ stored: StoredTensor) -> String {
        var s: String
        switch stored.encoding {
        case .float32: s = "fp32"
        case .float16: s = "fp16"
        case let .codebook(c): s = "codebook \(c.bits)-bit (\(c.codebook.count) entries)"
        case let .linear(q): s = "int\(q.bits) \(q.symmetric ? "symmetric" : "asymmetric") \(q.axis == nil ? "per-tensor" : "per-channel")"
        }
        if stored.sparse { s += ", sparse (\(stored.indexBits)-bit gaps)" }
        if stored.huffman { s += ", Huffman" }
        return s
    }

    // MARK: Reading

    /// Parses a file's bytes; `source` names it in errors.
    public static func parse(_ bytes: [UInt8], source: String, limits: Limits = Limits()) throws -> CompressedModel {
        try decode(bytes, source: source, limits: limits).model
    }

    /// Reads and parses the file at `url`.
    public static func read(_ url: URL, limits: Limits = Limits()) throws -> CompressedModel {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw CompressedFileError(file: url.path, section: "file", offset: 0, reason: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse([UInt8](data), source: url.path, limits: limits)
    }

    /// Whether the bytes start with the format's magic (for MODEL argument detection).
    public static func looksLikeCompressedModel(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: magic.count) else { return false }
        return [UInt8](head) == magic
    }

    /// Sizes of a file's sections and tensors, read from its bytes (validated like `parse`).
    public static func sizeBreakdown(ofFile bytes: [UInt8], source: String, limits: Limits = Limits()) throws -> SizeBreakdown {
        try decode(bytes, source: source, limits: limits).breakdown
    }

    private static func decode(_ bytes: [UInt8], source: String, limits: Limits) throws -> (model: CompressedModel, breakdown: SizeBreakdown) {
        func fail(_ section: String, _ offset: Int, _ reason: String) -> CompressedFileError {
            CompressedFileError(file: source, section: section, offset: offset, reason: reason)
        }
        let headerSize = magic.count + 4
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw fail("header", 0, "not a LiteCNN compressed model (the file does not start with the .lcz magic)")
        }
        guard bytes.count >= headerSize + 4 else {
            throw fail("header", bytes.count, "the file is truncated: \(bytes.count) bytes, fewer than a header and a checksum")
        }
        var header = ByteReader(bytes, file: source, section: "header", range: magic.count..<headerSize)
        let major = try header.u16("major version"), minor = try header.u16("minor version")
        guard major == majorVersion else {
            throw fail("header", magic.count, "format version \(major).\(minor) is not readable by this reader (reads \(majorVersion).x)")
        }
        let crcAt = bytes.count - 4
        var crcReader = ByteReader(bytes, file: source, section: "checksum", range: crcAt..<bytes.count)
        let stored = try crcReader.u32("checksum")
        let computed = CRC32.checksum(bytes, range: 0..<crcAt)
        guard stored == computed else {
            throw fail("checksum", crcAt, "CRC-32 mismatch (stored 0x\(String(stored, radix: 16)), computed 0x\(String(computed, radix: 16))): the file is corrupted or truncated")
        }

        // Section directory.
        var sectionRanges: [String: Range<Int>] = [:]
        var sizes = [SizeBreakdown.Section(name: "header", bytes: headerSize)]
        var reader = ByteReader(bytes, file: source, section: "header", range: headerSize..<crcAt)
        let known: [[UInt8]: String] = [Tag.architecture: "architecture", Tag.tensors: "tensors",
                                        Tag.ranges: "activation ranges", Tag.metadata: "metadata"]
        while reader.remaining > 0 {
            let at = reader.position
            reader.section = "section table"
            let tag = Array(bytes[try reader.range(4, "section tag")])
            let length = try reader.u64("section length")
            guard length <= UInt64(reader.remaining) else {
                throw fail(known[tag] ?? "section table", at + 4, "section length \(length) exceeds the \(reader.remaining) bytes that remain")
            }
            let range = try reader.range(Int(length), "section")
            if let name = known[tag] {
                guard sectionRanges[name] == nil else { throw fail(name, at, "the \(name) section appears twice") }
                sectionRanges[name] = range
                sizes.append(.init(name: name, bytes: 12 + range.count))
            }
        }
        guard let archRange = sectionRanges["architecture"] else { throw fail("architecture", crcAt, "the file has no architecture section") }
        guard let tensRange = sectionRanges["tensors"] else { throw fail("tensors", crcAt, "the file has no tensors section") }

        // Tensors.
        var t = ByteReader(bytes, file: source, section: "tensors", range: tensRange)
        let tensorCount = try t.count("tensor count", atMost: t.remaining)
        var tensors: [String: StoredTensor] = [:]
        var tensorSizes: [SizeBreakdown.TensorSize] = []
        var budget = limits.maximumElements
        for _ in 0..<tensorCount {
            let at = t.position
            let (name, stored, size) = try TensorCoding.read(from: &t, elementBudget: &budget)
            guard tensors[name] == nil else { throw fail("tensors", at, "tensor '\(name)' appears twice") }
            tensors[name] = stored
            let count = stored.encoding.shape.reduce(1, *)
            tensorSizes.append(.init(name: name, encoding: describe(stored), elements: count,
                                     storedEntries: size.entries, headerBytes: size.header,
                                     valueBytes: size.values, indexBytes: size.gaps))
        }
        guard t.remaining == 0 else { throw fail("tensors", t.position, "\(t.remaining) bytes follow the last tensor") }

        // Architecture.
        var graph: Graph
        do {
            graph = try ONNXFile.parse(Data(bytes[archRange]), source: "\(source) (architecture)")
        } catch {
            throw fail("architecture", archRange.lowerBound, "the architecture is not a valid LiteCNN graph: \(error)")
        }
        for name in tensors.keys.sorted() where graph.initializers[name] != nil {
            throw CompressedFileError(file: source, section: "architecture", offset: archRange.lowerBound, tensor: name,
                                      reason: "the architecture also holds an initializer with this stored tensor's name")
        }
        graph.inputs.removeAll { tensors[$0.name] != nil }

        // Activation ranges.
        var ranges: [String: ClosedRange<Float>] = [:]
        if let range = sectionRanges["activation ranges"] {
            var r = ByteReader(bytes, file: source, section: "activation ranges", range: range)
            let count = try r.count("range count", atMost: r.remaining)
            for _ in 0..<count {
                let at = r.position
                let name = try r.string("value name")
                let lower = try r.f32("minimum"), upper = try r.f32("maximum")
                guard lower <= upper else { throw fail("activation ranges", at, "range of '\(name)' is [\(lower), \(upper)]: not an interval") }
                guard ranges[name] == nil else { throw fail("activation ranges", at, "'\(name)' appears twice") }
                ranges[name] = lower...upper
            }
            guard r.remaining == 0 else { throw fail("activation ranges", r.position, "\(r.remaining) bytes follow the last range") }
        }

        // Metadata.
        var metadata: [String: String] = [:]
        if let range = sectionRanges["metadata"] {
            var m = ByteReader(bytes, file: source, section: "metadata", range: range)
            let count = try m.count("entry count", atMost: m.remaining)
            for _ in 0..<count {
                let at = m.position
                let key = try m.string("key"), value = try m.string("value")
                guard metadata[key] == nil else { throw fail("metadata", at, "key '\(key)' appears twice") }
                metadata[key] = value
            }
            guard m.remaining == 0 else { throw fail("metadata", m.position, "\(m.remaining) bytes follow the last entry") }
        }
        sizes.append(.init(name: "checksum", bytes: 4))
        let model = CompressedModel(graph: graph, tensors: tensors, activationRanges: ranges, metadata: metadata)
        return (model, SizeBreakdown(total: bytes.count, sections: sizes, tensors: tensorSizes))
    }
}
