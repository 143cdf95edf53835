import LiteCNN
import XCTest

/// Deterministic generator (SplitMix64) so failures reproduce.
struct TestRandom {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func int(_ range: Range<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
}

final class HuffmanTests: XCTestCase {
    func testCodeLengthsOfTheTextbookDistributionAreOptimal() throws {
        // CLRS 16.3: frequencies 45, 13, 12, 16, 9, 5 → an optimal code costs 224 bits.
        let counts = [45, 13, 12, 16, 9, 5]
        let lengths = Huffman.codeLengths(counts: counts)
        XCTAssertEqual(lengths, [1, 3, 3, 3, 4, 4])
        let code = try Huffman.Code(lengths: lengths)
        XCTAssertEqual(code.encodedBitCount(counts: counts), 224)
        // Canonical: symbols sorted by (length, symbol) get consecutive codes.
        XCTAssertEqual(code.codes, [0b0, 0b100, 0b101, 0b110, 0b1110, 0b1111])
    }

    func testCodesArePrefixFree() throws {
        var rng = TestRandom(1)
        let counts = (0..<200).map { _ in rng.int(0..<1000) }
        let code = Huffman.Code(counts: counts)
        let used = counts.indices.filter { counts[$0] > 0 }
        for a in used {
            for b in used where a != b && code.lengths[a] <= code.lengths[b] {
                let prefix = code.codes[b] >> UInt32(code.lengths[b] - code.lengths[a])
                XCTAssertNotEqual(prefix, code.codes[a], "code of \(a) is a prefix of the code of \(b)")
            }
        }
        XCTAssertTrue(counts.indices.allSatisfy { (counts[$0] > 0) == (code.lengths[$0] > 0) })
    }

    func testSkewedDistributionCompressesBelowFixedWidthAndRoundTrips() throws {
        var rng = TestRandom(2)
        // Geometric-like over 64 symbols (6-bit fixed width): entropy ≈ 2 bits.
        let symbols = (0..<20_000).map { _ -> UInt32 in
            var s: UInt32 = 0
            while s < 63 && rng.unit() < 0.5 { s += 1 }
            return s
        }
        let bytes = Huffman.encode(symbols, alphabetSize: 64)
        XCTAssertLessThan(bytes.count * 8, symbols.count * 6 / 2, "a skewed distribution must take well under the fixed 6 bits")
        XCTAssertLessThan(Double(bytes.count * 8) / Double(symbols.count), 2.2)
        XCTAssertEqual(try Huffman.decode(bytes, count: symbols.count, alphabetSize: 64), symbols)
    }

    func testUniformDistributionCostsAboutTheFixedWidth() throws {
        var rng = TestRandom(3)
        let symbols = (0..<50_000).map { _ in UInt32(rng.int(0..<256)) }
        let bytes = Huffman.encode(symbols, alphabetSize: 256)
        let bitsPerSymbol = Double(bytes.count * 8) / Double(symbols.count)
        XCTAssertGreaterThanOrEqual(bitsPerSymbol, 8.0)
        XCTAssertLessThan(bitsPerSymbol, 8.1)
        XCTAssertEqual(try Huffman.decode(bytes, count: symbols.count, alphabetSize: 256), symbols)
    }

    func testSingleSymbolAlphabetsAndEmptyStreams() throws {
        for alphabet in [1, 2, 256] {
            let symbols = [UInt32](repeating: UInt32(alphabet - 1), count: 1000)
            let bytes = Huffman.encode(symbols, alphabetSize: alphabet)
            XCTAssertEqual(Huffman.codeLengths(counts: (0..<alphabet).map { $0 == alphabet - 1 ? 1000 : 0 })[alphabet - 1], 1)
            XCTAssertLessThanOrEqual(bytes.count, 125 + 8, "one bit per symbol plus a small table")
            XCTAssertEqual(try Huffman.decode(bytes, count: 1000, alphabetSize: alphabet), symbols)
            let empty = Huffman.encode([], alphabetSize: alphabet)
            XCTAssertEqual(try Huffman.decode(empty, count: 0, alphabetSize: alphabet), [])
            XCTAssertThrowsError(try Huffman.decode(empty, count: 1, alphabetSize: alphabet))
        }
    }

    func testLengthLimitHoldsForFibonacciCounts() throws {
        // Fibonacci weights make the optimal tree a path: 40 symbols would need 39-bit codes.
        var counts = [1, 1]
        while counts.count < 40 { counts.append(counts[counts.count - 1] + counts[counts.count - 2]) }
        let lengths = Huffman.codeLengths(counts: counts)
        XCTAssertLessThanOrEqual(Int(lengths.max()!), Huffman.maximumCodeLength)
        let kraft = lengths.reduce(0.0) { $0 + pow(2.0, -Double($1)) }
        XCTAssertLessThanOrEqual(kraft, 1.0)
        var rng = TestRandom(4)
        let symbols = (0..<5000).map { _ in UInt32(rng.int(0..<40)) }
        // Encode with this code (every symbol present) and decode through the slow (long-code) path.
        let code = try Huffman.Code(lengths: lengths)
        var writer = BitWriter()
        code.writeTable(to: &writer)
        code.encode(symbols, into: &writer)
        let bytes = writer.finish()
        var reader = BitReader(bytes)
        let read = try Huffman.Code.readTable(alphabetSize: 40, from: &reader)
        XCTAssertEqual(read, code)
        XCTAssertEqual(try read.decode(count: symbols.count, from: &reader), symbols)
    }

    func testLargeSparseAlphabetTableIsCompact() throws {
        let symbols: [UInt32] = [0, 65535, 7, 7, 7, 40000, 0, 7]
        let bytes = Huffman.encode(symbols, alphabetSize: 1 << 16)
        XCTAssertLessThan(bytes.count, 24, "runs of unused symbols take 21 bits each")
        XCTAssertEqual(try Huffman.decode(bytes, count: symbols.count, alphabetSize: 1 << 16), symbols)
    }

    func testInvalidCodesAndStreamsThrow() throws {
        XCTAssertThrowsError(try Huffman.Code(lengths: [1, 1, 1]), "Kraft sum 3/2")
        XCTAssertThrowsError(try Huffman.Code(lengths: [21, 1]), "longer than the limit")
        // Single-symbol code: the bit pattern 1 is no code.
        var w = BitWriter()
        let code = try Huffman.Code(lengths: [0, 1])
        code.writeTable(to: &w)
        w.write(0b0101, bits: 4)
        let bytes = w.finish()
        XCTAssertThrowsError(try Huffman.decode(bytes, count: 2, alphabetSize: 2)) { XCTAssertTrue($0 is CodingError) }
        // Truncated stream, and more symbols than bits.
        let good = Huffman.encode([0, 1, 2, 3, 3, 3], alphabetSize: 4)
        XCTAssertThrowsError(try Huffman.decode(Array(good.dropLast()), count: 6, alphabetSize: 4))
        XCTAssertThrowsError(try Huffman.decode(good, count: good.count * 8 + 1, alphabetSize: 4))
        // Trailing garbage after the last symbol.
        XCTAssertThrowsError(try Huffman.decode(good + [0], count: 6, alphabetSize: 4))
        // A run token past the alphabet's end.
        var r = BitWriter()
        r.write(31, bits: 5)
        r.write(9, bits: 16)
        XCTAssertThrowsError(try Huffman.decode(r.finish(), count: 0, alphabetSize: 4))
    }

    func testBitWriterAndReaderRoundTripMixedWidths() throws {
        var rng = TestRandom(5)
        let widths = (0..<5000).map { _ in rng.int(0..<33) }
        let values = widths.map { w -> UInt32 in w == 0 ? 0 : UInt32(truncatingIfNeeded: rng.next()) >> UInt32(32 - w) }
        var writer = BitWriter()
        for (v, w) in zip(values, widths) { writer.write(v, bits: w) }
        let total = writer.bitCount
        XCTAssertEqual(total, widths.reduce(0, +))
        let bytes = writer.finish()
        XCTAssertEqual(bytes.count, (total + 7) / 8)
        var reader = BitReader(bytes)
        for (v, w) in zip(values, widths) { XCTAssertEqual(reader.read(w), v) }
        XCTAssertNoThrow(try reader.checkEnd("test"))
        _ = reader.read(9)
        XCTAssertThrowsError(try reader.checkEnd("test"))
        // MSB-first: the first bit is bit 7 of the first byte.
        var one = BitWriter()
        one.write(1, bits: 1)
        one.write(0b011, bits: 3)
        XCTAssertEqual(one.finish(), [0b1011_0000])
    }

    func testFixedWidthPackingRoundTrips() throws {
        var rng = TestRandom(6)
        for bits in [1, 3, 5, 8, 11, 16] {
            let values = (0..<1001).map { _ in UInt32(rng.int(0..<(1 << bits))) }
            let bytes = BitPacking.pack(count: values.count, bits: bits) { values[$0] }
            XCTAssertEqual(bytes.count, (values.count * bits + 7) / 8)
            var out = [UInt32](repeating: 0, count: values.count)
            try BitPacking.unpack(bytes, range: 0..<bytes.count, count: values.count, bits: bits) { out[$0] = $1 }
            XCTAssertEqual(out, values, "bits \(bits)")
            XCTAssertThrowsError(try BitPacking.unpack(bytes, range: 0..<(bytes.count - 1), count: values.count, bits: bits) { _, _ in })
        }
    }

    func testCRC32CheckValue() {
        XCTAssertEqual(CRC32.checksum(Array("123456789".utf8)), 0xCBF4_3926)
        XCTAssertEqual(CRC32.checksum([]), 0)
        // Incremental equals one shot, across the 8-byte fast path.
        var rng = TestRandom(7)
        let bytes = (0..<1037).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        let split = CRC32.checksum(bytes, range: 501..<1037, continuing: CRC32.checksum(bytes, range: 0..<501))
        XCTAssertEqual(split, CRC32.checksum(bytes))
        // Reference bitwise CRC.
        var crc: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
        }
        XCTAssertEqual(~crc, CRC32.checksum(bytes))
    }
}
