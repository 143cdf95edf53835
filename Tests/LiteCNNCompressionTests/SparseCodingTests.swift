import LiteCNN
import XCTest

/// Round trips of every stored-tensor form through the file: encoding × sparse × Huffman, with edge cases.
final class SparseCodingTests: XCTestCase {
    func testGapsAndPaddingFollowDeepCompression() throws {
        // 3-bit gaps (max 7): non-zeros at 1, 4, 15 → a padding zero at 12 so the gap to 15 fits.
        let nonZero: Set = [1, 4, 15]
        let e = SparseCoding.entries(count: 20, indexBits: 3) { !nonZero.contains($0) }
        XCTAssertEqual(e.positions, [1, 4, 12, 15])
        XCTAssertEqual(e.gaps, [1, 2, 7, 2])
        XCTAssertEqual(try SparseCoding.positions(gaps: e.gaps, count: 20, indexBits: 3), e.positions)
        // Trailing zeros are padded too, so that at most 2^b − 1 zeros follow the last entry.
        let t = SparseCoding.entries(count: 40, indexBits: 2) { $0 != 0 }
        XCTAssertEqual(t.positions, Array(stride(from: 0, through: 36, by: 4)))
        XCTAssertTrue(t.gaps.dropFirst().allSatisfy { $0 == 3 })
        // All zeros, 1-bit gaps: every other element is a padding entry.
        let z = SparseCoding.entries(count: 7, indexBits: 1) { _ in true }
        XCTAssertEqual(z.positions, [1, 3, 5])
        XCTAssertEqual(SparseCoding.entries(count: 0, indexBits: 4) { _ in true }.positions, [])
    }

    func testPositionsRejectInconsistentGaps() {
        XCTAssertThrowsError(try SparseCoding.positions(gaps: [8], count: 20, indexBits: 3), "gap wider than 3 bits")
        XCTAssertThrowsError(try SparseCoding.positions(gaps: [3, 3], count: 6, indexBits: 3), "lands past the end")
        XCTAssertThrowsError(try SparseCoding.positions(gaps: [0], count: 10, indexBits: 3), "9 trailing zeros need padding")
        XCTAssertNoThrow(try SparseCoding.positions(gaps: [0], count: 8, indexBits: 3))
    }

    func testRandomSparsePositionsRoundTrip() throws {
        var rng = TestRandom(11)
        for indexBits in [1, 2, 5, 8, 16] {
            for density in [0.0, 0.01, 0.3, 1.0] {
                let count = rng.int(0..<3000)
                let keep = (0..<count).map { _ in rng.unit() < density }
                let e = SparseCoding.entries(count: count, indexBits: indexBits) { !keep[$0] }
                XCTAssertTrue(e.gaps.allSatisfy { Int($0) <= SparseCoding.maximumGap(indexBits: indexBits) })
                XCTAssertEqual(Set(e.positions).isSuperset(of: keep.indices.filter { keep[$0] }), true)
                XCTAssertLessThanOrEqual(count, SparseCoding.maximumElementCount(entries: e.positions.count, indexBits: indexBits))
                XCTAssertEqual(try SparseCoding.positions(gaps: e.gaps, count: count, indexBits: indexBits), e.positions)
            }
        }
    }

    // MARK: Stored tensors through the file

    static func emptyGraph() -> Graph { Graph(name: "tensors", opsetVersion: 17) }

    /// Serializes `tensors` alone, parses them back, and checks equality and the decoded values bit for bit.
    func assertRoundTrip(_ tensors: [String: StoredTensor], file: StaticString = #filePath, line: UInt = #line) throws {
        let model = CompressedModel(graph: Self.emptyGraph(), tensors: tensors)
        let bytes = try CompressedModelFile.serialize(model)
        let back = try CompressedModelFile.parse(bytes, source: "round trip")
        XCTAssertEqual(back.tensors.count, tensors.count, file: file, line: line)
        for (name, stored) in tensors {
            guard let read = back.tensors[name] else { XCTFail("\(name) missing", file: file, line: line); continue }
            XCTAssertEqual(read, stored, "\(name): \(CompressedModelFile.describe(stored))", file: file, line: line)
            let a = read.decoded(), b = stored.encoding.decoded()
            XCTAssertEqual(a.shape, b.shape, file: file, line: line)
            XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), "\(name)", file: file, line: line)
        }
        let breakdown = try CompressedModelFile.sizeBreakdown(model)
        XCTAssertEqual(breakdown.total, bytes.count, file: file, line: line)
        XCTAssertEqual(breakdown.sections.reduce(0) { $0 + $1.bytes }, bytes.count, file: file, line: line)
    }

    /// Values for `count` elements with about `zeros` of them zero.
    func sample<T>(_ count: Int, zeros: Double, rng: inout TestRandom, _ value: (inout TestRandom) -> T) -> [T?] {
        (0..<count).map { _ in rng.unit() < zeros ? nil : value(&rng) }
    }

    func encodings(shape: [Int], zeros: Double, rng: inout TestRandom) -> [(String, WeightEncoding)] {
        let count = shape.reduce(1, *)
        var out: [(String, WeightEncoding)] = []
        let floats = sample(count, zeros: zeros, rng: &rng) { Float(Double($0.int(-1000..<1000)) * 0.0137 + 1e-3) }
        out.append(("f32", .float32(Tensor(shape: shape, scalars: floats.map { $0 ?? 0 }, layout: .plain))))
        let halves = floats.map { $0.map { Float(Float16($0)) } ?? 0 }
        out.append(("f16", .float16(Tensor(shape: shape, scalars: halves, layout: .plain))))
        for bits in [1, 4, 8] {
            let size = 1 << bits
            let codebook = [Float(0)] + (1..<size).map { Float($0) * 0.25 - 1 }
            let indices = sample(count, zeros: zeros, rng: &rng) { $0.int(1..<max(2, size)) % size }.map { UInt8($0 ?? 0) }
            out.append(("cb\(bits)", .codebook(CodebookTensor(shape: shape, bits: bits, codebook: codebook, indices: indices))))
        }
        // A codebook without a zero entry (sparse then stores everything).
        let noZero = CodebookTensor(shape: shape, bits: 2, codebook: [0.5, -0.5, 1.5],
                                    indices: (0..<count).map { _ in UInt8(rng.int(0..<3)) })
        out.append(("cbNoZero", .codebook(noZero)))
        for (bits, symmetric) in [(8, false), (8, true), (4, true), (2, false), (16, false), (16, true)] {
            let q0 = LinearQuantizedTensor(shape: [1], bits: bits, symmetric: symmetric, axis: nil, scales: [1], zeroPoints: [0], values: [0])
            let r = q0.range
            // Per tensor.
            let zp: Int32 = symmetric ? 0 : r.lowerBound + (r.upperBound - r.lowerBound) / 3
            let values = sample(count, zeros: zeros, rng: &rng) { Int(r.lowerBound) + $0.int(0..<Int(r.upperBound - r.lowerBound + 1)) }
                .map { $0.map { Int32($0) } ?? zp }
            out.append(("lin\(bits)\(symmetric ? "s" : "a")", .linear(LinearQuantizedTensor(
                shape: shape, bits: bits, symmetric: symmetric, axis: nil, scales: [0.01], zeroPoints: [zp], values: values))))
            // Per channel along axis 0, each channel its own zero point.
            if let channels = shape.first, shape.count >= 1 {
                let zps = (0..<channels).map { c -> Int32 in symmetric ? 0 : r.lowerBound + Int32(c * 7) % (r.upperBound - r.lowerBound + 1) }
                let stride = max(1, count / max(1, channels))
                let pcValues = (0..<count).map { i -> Int32 in
                    rng.unit() < zeros ? zps[i / stride] : r.lowerBound + Int32(rng.int(0..<Int(r.upperBound - r.lowerBound + 1)))
                }
                out.append(("lin\(bits)\(symmetric ? "s" : "a")pc", .linear(LinearQuantizedTensor(
                    shape: shape, bits: bits, symmetric: symmetric, axis: 0,
                    scales: (0..<channels).map { Float($0 + 1) * 0.003 }, zeroPoints: zps, values: pcValues))))
            }
        }
        return out
    }

    func testEveryEncodingSparseAndHuffmanCombinationRoundTrips() throws {
        var rng = TestRandom(12)
        let cases: [([Int], Double)] = [
            ([6, 3, 3, 3], 0.7),   // conv-like, mostly pruned
            ([10, 37], 0.0),       // dense
            ([5, 40], 0.98),       // long zero runs: gaps overflow small index widths
            ([3, 0, 2], 0.5),      // empty tensor
            ([1], 0.0),            // single value
            ([], 0.0),             // scalar
            ([4, 25], 1.0),        // all zeros
        ]
        for (shape, zeros) in cases {
            var tensors: [String: StoredTensor] = [:]
            for (name, encoding) in encodings(shape: shape, zeros: zeros, rng: &rng) {
                for sparse in [false, true] {
                    for huffman in [false, true] {
                        for indexBits in sparse ? [1, 3, 8, 16] : [8] {
                            tensors["\(name)-\(sparse ? "s\(indexBits)" : "d")-\(huffman ? "h" : "f")"] =
                                StoredTensor(encoding: encoding, sparse: sparse, indexBits: indexBits, huffman: huffman)
                        }
                    }
                }
            }
            try assertRoundTrip(tensors)
        }
    }

    func testFloatLayoutTagIsKept() throws {
        let t = Tensor(shape: [2, 1, 1, 3], scalars: [1, 0, 0, 0, 2, 0])   // rank 4 defaults to .nhwc
        XCTAssertEqual(t.layout, .nhwc)
        try assertRoundTrip(["a": StoredTensor(encoding: .float32(t), sparse: true, indexBits: 2),
                             "b": StoredTensor(encoding: .float16(Tensor(shape: [2, 1, 1, 3], scalars: [1, 0, 0, 0, 2, 0], layout: .nchw)))])
    }

    func testSparseStorageIsSmallerForPrunedTensorsAndCountsEntries() throws {
        var rng = TestRandom(13)
        let count = 20_000
        let indices = (0..<count).map { _ in rng.unit() < 0.9 ? UInt8(0) : UInt8(rng.int(1..<16)) }
        let c = CodebookTensor(shape: [count], bits: 4, codebook: [0] + (1..<16).map { Float($0) }, indices: indices)
        let dense = StoredTensor(encoding: .codebook(c))
        let sparse = StoredTensor(encoding: .codebook(c), sparse: true, indexBits: 5)
        let coded = StoredTensor(encoding: .codebook(c), sparse: true, indexBits: 5, huffman: true)
        let b = try CompressedModelFile.sizeBreakdown(CompressedModel(graph: Self.emptyGraph(),
                                                                       tensors: ["dense": dense, "sparse": sparse, "coded": coded]))
        let size = Dictionary(uniqueKeysWithValues: b.tensors.map { ($0.name, $0) })
        let nonZeros = indices.filter { $0 != 0 }.count
        XCTAssertEqual(size["dense"]!.valueBytes, 2 + count / 2)  // varint length (2 bytes) + 4 bits each
        XCTAssertGreaterThanOrEqual(size["sparse"]!.storedEntries, nonZeros)
        XCTAssertLessThan(size["sparse"]!.bytes, size["dense"]!.bytes / 2)
        XCTAssertLessThan(size["coded"]!.bytes, size["sparse"]!.bytes)
        XCTAssertLessThan(size["coded"]!.indexBytes, size["sparse"]!.indexBytes, "geometric gaps take fewer than 5 bits coded")
        XCTAssertEqual(size["sparse"]!.indexBytes, 2 + (size["sparse"]!.storedEntries * 5 + 7) / 8)
    }

    func testWriterRejectsValuesTheEncodingCannotHold() {
        func write(_ stored: StoredTensor) throws { _ = try CompressedModelFile.serialize(CompressedModel(graph: Self.emptyGraph(), tensors: ["w": stored])) }
        let badIndex = CodebookTensor(shape: [3], bits: 2, codebook: [0, 1], indices: [0, 1, 3])
        XCTAssertThrowsError(try write(StoredTensor(encoding: .codebook(badIndex)))) { XCTAssertEqual(($0 as? CompressedFileError)?.tensor, "w") }
        let notHalf = Tensor(shape: [2], scalars: [1, 0.1])
        XCTAssertThrowsError(try write(StoredTensor(encoding: .float16(notHalf)))) { XCTAssertTrue($0 is CompressedFileError) }
        let outOfRange = LinearQuantizedTensor(shape: [2], bits: 4, symmetric: true, axis: nil, scales: [1], zeroPoints: [0], values: [0, 8])
        XCTAssertThrowsError(try write(StoredTensor(encoding: .linear(outOfRange)))) { XCTAssertTrue($0 is CompressedFileError) }
    }
}
