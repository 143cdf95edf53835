import Foundation
import LiteCNN
import XCTest

/// Hostile files: bit flips, truncations, lying length and count fields. The reader must always throw a
/// `CompressedFileError` (or, when the damage leaves a valid file, return a model) — never trap, never allocate what
/// a lying field asks for.
final class CompressedFileFuzzTests: XCTestCase {
    /// `bytes` with its last four bytes replaced by the CRC-32 of the rest (so the structural checks are reached).
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        guard bytes.count >= 4 else { return bytes }
        var b = bytes
        let crc = CRC32.checksum(b, range: 0..<(b.count - 4))
        for k in 0..<4 { b[b.count - 4 + k] = UInt8(truncatingIfNeeded: crc >> UInt32(8 * k)) }
        return b
    }

    /// The sections of a well-formed file, in order.
    static func sections(_ bytes: [UInt8]) -> [(tag: String, payload: [UInt8])] {
        var out: [(String, [UInt8])] = []
        var p = 12
        while p < bytes.count - 4 {
            let tag = String(decoding: bytes[p..<(p + 4)], as: UTF8.self)
            var length = 0
            for k in 0..<8 { length |= Int(bytes[p + 4 + k]) << (8 * k) }
            out.append((tag, Array(bytes[(p + 12)..<(p + 12 + length)])))
            p += 12 + length
        }
        return out
    }

    /// A file from sections (with correct lengths and checksum).
    static func assemble(_ sections: [(tag: String, payload: [UInt8])]) -> [UInt8] {
        var b = CompressedModelFile.magic + [1, 0, 0, 0]
        for (tag, payload) in sections {
            b += Array(tag.utf8)
            for k in 0..<8 { b.append(UInt8(truncatingIfNeeded: UInt64(payload.count) >> UInt64(8 * k))) }
            b += payload
        }
        return resealed(b + [0, 0, 0, 0])
    }

    static func varint(_ v: UInt64) -> [UInt8] {
        var v = v, out: [UInt8] = []
        while v >= 0x80 { out.append(UInt8(v & 0x7F) | 0x80); v >>= 7 }
        return out + [UInt8(v)]
    }

    static func f32(_ v: Float) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v.bitPattern >> UInt32(8 * $0)) } }

    /// A small model with every kind of tensor and a real (tiny) architecture.
    static func model() -> CompressedModel {
        var graph = Graph(name: "fuzz", opsetVersion: 17)
        graph.inputs = [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(2), .fixed(5), .fixed(5)])]
        graph.outputs = [ValueInfo(name: "y", shape: nil)]
        graph.nodes = [
            Node(name: "conv", opType: "Conv", inputs: ["x", "w", "b"], outputs: ["c"],
                 attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1])]),
            Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
            Node(name: "flat", opType: "Flatten", inputs: ["r"], outputs: ["f"]),
            Node(name: "fc", opType: "Gemm", inputs: ["f", "fw", "fb"], outputs: ["y"], attributes: ["transB": .int(1)]),
        ]
        graph.metadata = ["litecnn.input_shape": "2,5,5"]
        var rng = TestRandom(99)
        let w = CodebookTensor(shape: [4, 2, 3, 3], bits: 4, codebook: [0, -0.5, 0.25, 0.75, 1],
                               indices: (0..<72).map { _ in rng.unit() < 0.6 ? 0 : UInt8(rng.int(1..<5)) })
        let fw = LinearQuantizedTensor(shape: [3, 100], bits: 6, symmetric: false, axis: 0, scales: [0.1, 0.2, 0.3],
                                       zeroPoints: [31, 5, 60], values: (0..<300).map { i in rng.unit() < 0.8 ? [31, 5, 60][i / 100] : Int32(rng.int(0..<64)) })
        return CompressedModel(graph: graph, tensors: [
            "w": StoredTensor(encoding: .codebook(w), sparse: true, indexBits: 3, huffman: true),
            "b": StoredTensor(encoding: .float16(Tensor(shape: [4], scalars: [0.5, -1, 0, 2]))),
            "fw": StoredTensor(encoding: .linear(fw), sparse: true, indexBits: 5, huffman: false),
            "fb": StoredTensor(encoding: .float32(Tensor(shape: [3], scalars: [0, 0, 1.25])), sparse: true, indexBits: 1, huffman: true),
            "extra": StoredTensor(encoding: .codebook(CodebookTensor(shape: [9], bits: 2, codebook: [1, 2, 3], indices: [0, 1, 2, 2, 1, 0, 0, 0, 1])),
                                  huffman: false),
        ], activationRanges: ["x": -1...1, "r": 0...4], metadata: ["stage": "fuzz"])
    }

    func parseOutcome(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> CompressedFileError? {
        do {
            _ = try CompressedModelFile.parse(bytes, source: "fuzz.lcz")
            return nil
        } catch let error as CompressedFileError {
            XCTAssertEqual(error.file, "fuzz.lcz", file: file, line: line)
            XCTAssertTrue((0...bytes.count).contains(error.offset), "offset \(error.offset) outside the file", file: file, line: line)
            return error
        } catch {
            XCTFail("not a CompressedFileError: \(error)", file: file, line: line)
            return nil
        }
    }

    func testTheFuzzModelIsValid() throws {
        let m = Self.model()
        let bytes = try CompressedModelFile.serialize(m)
        let back = try CompressedModelFile.parse(bytes, source: "fuzz.lcz")
        XCTAssertEqual(back.tensors, m.tensors)
        XCTAssertEqual(Self.assemble(Self.sections(bytes)), bytes)
        XCTAssertEqual(Self.sections(bytes).map(\.tag), ["ARCH", "TENS", "ACTR", "META"])
    }

    func testEverySingleBitFlipIsDetected() throws {
        let bytes = try CompressedModelFile.serialize(Self.model())
        for bit in 0..<(bytes.count * 8) {
            var b = bytes
            b[bit / 8] ^= UInt8(1 << (bit % 8))
            XCTAssertNotNil(parseOutcome(b), "flip of bit \(bit) went unnoticed")
        }
    }

    func testResealedCorruptionNeverTraps() throws {
        let bytes = try CompressedModelFile.serialize(Self.model())
        var rng = TestRandom(7)
        // One flipped bit per byte, checksum fixed so the structure is what gets tested.
        for i in 0..<(bytes.count - 4) {
            var b = bytes
            b[i] ^= UInt8(1 << rng.int(0..<8))
            _ = parseOutcome(Self.resealed(b))
        }
        // Random bytes, runs of 0xFF (huge varints) and zeroed spans.
        for round in 0..<1500 {
            var b = bytes
            let at = rng.int(0..<(bytes.count - 4))
            switch round % 3 {
            case 0: for _ in 0..<rng.int(1..<6) { b[rng.int(0..<(bytes.count - 4))] = UInt8(rng.int(0..<256)) }
            case 1: for k in at..<min(bytes.count - 4, at + rng.int(1..<12)) { b[k] = 0xFF }
            default: for k in at..<min(bytes.count - 4, at + rng.int(1..<12)) { b[k] = 0 }
            }
            _ = parseOutcome(Self.resealed(b))
        }
    }

    func testTruncationAtEveryLengthIsRejected() throws {
        let bytes = try CompressedModelFile.serialize(Self.model())
        let boundaries = Set(Self.sections(bytes).reduce(into: [12]) { $0.append($0.last! + 12 + $1.payload.count) })
        for length in 0..<bytes.count {
            let cut = Array(bytes[0..<length])
            XCTAssertNotNil(parseOutcome(cut), "truncation to \(length) bytes went unnoticed")
            // With a fresh checksum, only a cut at a section boundary (dropping optional sections) can be valid.
            if length >= 16 {
                let resealed = Self.resealed(cut + [0, 0, 0, 0])
                if parseOutcome(resealed) == nil {
                    XCTAssertTrue(boundaries.contains(length), "a truncated file (\(length) bytes) was accepted")
                }
            }
        }
    }

    // MARK: Lying fields

    /// The TENS payload holding only `record`.
    func fileWithRecord(_ record: [UInt8], count: UInt64 = 1) throws -> [UInt8] {
        let base = Self.sections(try CompressedModelFile.serialize(CompressedModel(graph: Graph(name: "g", opsetVersion: 17))))
        return Self.assemble(base.map { $0.tag == "TENS" ? ("TENS", Self.varint(count) + record) : $0 })
    }

    /// name "t", kind, flags, rank and dims.
    func head(kind: UInt8, flags: UInt8 = 0, dims: [UInt64]) -> [UInt8] {
        [1, UInt8(ascii: "t"), kind, flags, UInt8(dims.count)] + dims.flatMap { Self.varint($0) }
    }

    func assertRejected(_ bytes: [UInt8], section: String = "tensors", _ message: String, line: UInt = #line) {
        let start = Date()
        guard let error = parseOutcome(bytes, line: line) else { return XCTFail("accepted: \(message)", line: line) }
        XCTAssertEqual(error.section, section, "\(message): \(error)", line: line)
        XCTAssertLessThan(Date().timeIntervalSince(start), 0.5, "\(message): rejecting took too long (allocated?)", line: line)
    }

    func testLyingLengthsAndCountsAreRejectedBeforeAllocating() throws {
        let valid = head(kind: 0, dims: [2]) + Self.varint(8) + Self.f32(1) + Self.f32(2)
        XCTAssertEqual(try CompressedModelFile.parse(try fileWithRecord(valid), source: "ok").tensors["t"]?.decoded().scalars, [1, 2])

        assertRejected(try fileWithRecord(valid, count: 1 << 62), "tensor count 2^62")
        assertRejected(try fileWithRecord(valid, count: 2), "two tensors declared, one present")
        assertRejected(try fileWithRecord([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x01]), "a varint of 11 bytes")
        assertRejected(try fileWithRecord(Self.varint(1 << 40) + [0x74]), "name length 2^40")
        assertRejected(try fileWithRecord([2, 0xC3, 0x28] + valid.dropFirst(2)), "name not UTF-8")
        assertRejected(try fileWithRecord(head(kind: 9, dims: [2]) + valid.suffix(9)), "unknown kind")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 0x40, dims: [2]) + valid.suffix(9)), "unknown flag bits")
        assertRejected(try fileWithRecord([1, UInt8(ascii: "t"), 0, 0, 200]), "rank 200")
        assertRejected(try fileWithRecord(head(kind: 0, dims: [1 << 31 - 1, 1 << 31 - 1]) + Self.varint(8) + Self.f32(1) + Self.f32(2)),
                       "2^62 elements")
        assertRejected(try fileWithRecord(head(kind: 0, dims: [100_000_000]) + Self.varint(8) + Self.f32(1) + Self.f32(2)),
                       "10^8 floats in 8 bytes")
        assertRejected(try fileWithRecord(head(kind: 0, dims: [2]) + Self.varint(1 << 60) + Self.f32(1) + Self.f32(2)),
                       "value stream length 2^60")
        assertRejected(try fileWithRecord(head(kind: 1, dims: [2]) + Self.varint(8) + Self.f32(1) + Self.f32(2)),
                       "fp16 stream of the wrong length")
        // Sparse: entries beyond the element count, element count beyond what the entries can cover, bad index bits.
        assertRejected(try fileWithRecord(head(kind: 0, flags: 1, dims: [2]) + [4] + Self.varint(3)), "3 entries in 2 elements")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 1, dims: [200_000_000]) + [4] + Self.varint(1)
                                          + Self.varint(4) + Self.f32(1) + Self.varint(1) + [0]), "2·10^8 elements from one entry")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 1, dims: [2]) + [17] + Self.varint(1)), "17-bit gaps")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 1, dims: [2]) + [0] + Self.varint(1)), "0-bit gaps")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 1, dims: [200]) + [8] + Self.varint(1)
                                          + Self.varint(4) + Self.f32(1) + Self.varint(1) + [255]), "gap 255 lands past the end")
        assertRejected(try fileWithRecord(head(kind: 0, flags: 3, dims: [1_000_000]) + [16] + Self.varint(40)
                                          + Self.varint(160) + [UInt8](repeating: 0, count: 160) + Self.varint(1 << 50)), "gap stream length 2^50")
        // Codebooks.
        assertRejected(try fileWithRecord(head(kind: 2, dims: [4]) + [9] + Self.varint(2)), "9-bit codebook")
        assertRejected(try fileWithRecord(head(kind: 2, dims: [4]) + [2] + Self.varint(5)), "5 entries for 2 bits")
        assertRejected(try fileWithRecord(head(kind: 2, dims: [4]) + [2] + Self.varint(1 << 50)), "codebook size 2^50")
        assertRejected(try fileWithRecord(head(kind: 2, dims: [4]) + [2] + Self.varint(2) + Self.f32(0) + Self.f32(1)
                                          + Self.varint(1) + [0b00_01_10_11]), "index 3 in a 2-entry codebook")
        assertRejected(try fileWithRecord(head(kind: 2, flags: 2, dims: [100_000_000]) + [8] + Self.varint(2) + Self.f32(0) + Self.f32(1)
                                          + Self.varint(4) + [0x08, 0x40, 0, 0]), "10^8 Huffman symbols in 4 bytes")
        assertRejected(try fileWithRecord(head(kind: 2, flags: 3, dims: [10]) + [4] + Self.varint(10) + [2] + Self.varint(2)
                                          + Self.f32(0.5) + Self.f32(1) + Self.varint(3) + [0, 0, 0] + Self.varint(5) + [0, 0, 0, 0, 0]),
                       "sparse codebook without a zero entry leaving elements out (or a garbage Huffman table)")
        // Linear.
        assertRejected(try fileWithRecord(head(kind: 3, dims: [2, 2]) + [1, 0, 255]), "1-bit integers")
        assertRejected(try fileWithRecord(head(kind: 3, dims: [2, 2]) + [8, 2, 255]), "symmetric flag 2")
        assertRejected(try fileWithRecord(head(kind: 3, dims: [2, 2]) + [8, 0, 5]), "axis 5 of rank 2")
        assertRejected(try fileWithRecord(head(kind: 3, dims: [1 << 28, 0]) + [8, 0, 0] + Self.f32(1)), "2^28 channels of scales in 4 bytes")
        assertRejected(try fileWithRecord(head(kind: 3, dims: [2]) + [2, 1, 255] + Self.f32(1) + [0, 0, 0, 0]
                                          + Self.varint(1) + [0b1100_0000]), "symbol 3 is outside the symmetric 2-bit range")
        // Structure around the tensors.
        let good = try fileWithRecord(valid)
        var sections = Self.sections(good)
        assertRejected(Self.assemble(sections.filter { $0.tag != "ARCH" }), section: "architecture", "no architecture")
        assertRejected(Self.assemble(sections + [sections[1]]), section: "tensors", "tensors twice")
        assertRejected(Self.assemble(sections.map { $0.tag == "TENS" ? ("TENS", $0.payload + [0]) : $0 }), "a trailing byte")
        assertRejected(try fileWithRecord(valid + valid, count: 2), "duplicate tensor name")
        sections[0].payload = Array(sections[0].payload.dropLast(3))
        assertRejected(Self.assemble(sections), section: "architecture", "broken protobuf")
        var huge = good
        for k in 0..<8 { huge[16 + k] = k == 7 ? 0x7F : 0xFF }
        assertRejected(Self.resealed(huge), section: "architecture", "architecture section length 2^63")
        // Ranges and metadata.
        let meta = Self.sections(good).map { s -> (tag: String, payload: [UInt8]) in
            s.tag == "ACTR" ? ("ACTR", Self.varint(1) + [1, UInt8(ascii: "r")] + Self.f32(.nan) + Self.f32(1)) : s }
        assertRejected(Self.assemble(meta), section: "activation ranges", "NaN range")
        let reversed = Self.sections(good).map { s -> (tag: String, payload: [UInt8]) in
            s.tag == "ACTR" ? ("ACTR", Self.varint(1) + [1, UInt8(ascii: "r")] + Self.f32(2) + Self.f32(1)) : s }
        assertRejected(Self.assemble(reversed), section: "activation ranges", "min > max")
        let badMeta = Self.sections(good).map { s -> (tag: String, payload: [UInt8]) in
            s.tag == "META" ? ("META", Self.varint(1) + [1, 0xFF, 0]) : s }
        assertRejected(Self.assemble(badMeta), section: "metadata", "key not UTF-8")
        let manyMeta = Self.sections(good).map { s -> (tag: String, payload: [UInt8]) in
            s.tag == "META" ? ("META", Self.varint(1 << 61)) : s }
        assertRejected(Self.assemble(manyMeta), section: "metadata", "2^61 metadata entries")
    }

    func testElementLimitIsEnforced() throws {
        let model = CompressedModel(graph: Graph(name: "g", opsetVersion: 17),
                                    tensors: ["a": StoredTensor(encoding: .float32(Tensor(shape: [10, 10])))])
        let bytes = try CompressedModelFile.serialize(model)
        XCTAssertNoThrow(try CompressedModelFile.parse(bytes, source: "m", limits: .init(maximumElements: 100)))
        XCTAssertThrowsError(try CompressedModelFile.parse(bytes, source: "m", limits: .init(maximumElements: 99))) {
            XCTAssertEqual(($0 as? CompressedFileError)?.section, "tensors")
        }
    }
}
