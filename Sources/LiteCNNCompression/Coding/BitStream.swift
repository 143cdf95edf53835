// Bit streams of the compressed file format: bits are packed MSB-first (the first bit of a stream is bit 7 of its
// first byte), multi-bit values are written most significant bit first, and the last byte is padded with zero bits.
// This order makes canonical Huffman codes decodable by looking up the next few bits as one integer.

/// An error in a bit stream: it ends early, holds a value outside its alphabet, or a code that does not exist.
public struct CodingError: Error, CustomStringConvertible, Equatable {
    /// Bit offset from the start of the stream where the problem was found.
    public var bitOffset: Int
    public var reason: String

    public init(bitOffset: Int, reason: String) {
        self.bitOffset = bitOffset
        self.reason = reason
    }

    public var description: String { "bit \(bitOffset): \(reason)" }
}

/// Appends values of 0…32 bits to a byte array, MSB-first.
public struct BitWriter {
    public private(set) var bytes: [UInt8]
    /// Bits written but not yet flushed, right-aligned (fewer than 32 between writes).
    private var accumulator: UInt64 = 0
    private var pending = 0

    public init(reservingBytes capacity: Int = 0) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    /// Number of bits written so far.
    public var bitCount: Int { bytes.count * 8 + pending }

    /// Appends the low `bits` bits of `value` (0 ≤ bits ≤ 32; `value` must fit in them).
    @inline(__always)
    public mutating func write(_ value: UInt32, bits: Int) {
        precondition(bits >= 0 && bits <= 32 && (bits == 32 || value >> UInt32(bits) == 0),
                     "BitWriter: value \(value) does not fit in \(bits) bits")
        accumulator = (accumulator << UInt64(bits)) | UInt64(value)
        pending += bits
        if pending >= 32 {
            // Flush a whole 32-bit word (most significant byte first).
            pending -= 32
            let word = UInt32(truncatingIfNeeded: accumulator >> UInt64(pending))
            bytes.append(UInt8(truncatingIfNeeded: word >> 24))
            bytes.append(UInt8(truncatingIfNeeded: word >> 16))
            bytes.append(UInt8(truncatingIfNeeded: word >> 8))
            bytes.append(UInt8(truncatingIfNeeded: word))
        }
    }

    /// The bytes, with the last one padded with zero bits.
    public mutating func finish() -> [UInt8] {
        while pending >= 8 {
            pending -= 8
            bytes.append(UInt8(truncatingIfNeeded: accumulator >> UInt64(pending)))
        }
        if pending > 0 {
            bytes.append(UInt8(truncatingIfNeeded: accumulator << UInt64(8 - pending)))
            pending = 0
        }
        accumulator = 0
        return bytes
    }
}

/// Reads values of 0…32 bits from `bytes[range]`, MSB-first. Reading past the end yields zero bits and is recorded:
/// `checkEnd()` (or `consume` with `strict`) reports it, so decoders may peek freely and check once.
public struct BitReader {
    private let bytes: [UInt8]
    private var next: Int
    private let end: Int
    private let start: Int
    /// Unread bits, left-aligned (bit 63 is the next bit).
    private var window: UInt64 = 0
    private var available = 0
    /// Zero bits supplied after the end of the range.
    private var phantom = 0

    public init(_ bytes: [UInt8], range: Range<Int>? = nil) {
        let range = range ?? 0..<bytes.count
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "BitReader: range \(range) outside \(bytes.count) bytes")
        self.bytes = bytes
        self.start = range.lowerBound
        self.next = range.lowerBound
        self.end = range.upperBound
    }

    /// Total bits in the range.
    public var bitLength: Int { (end - start) * 8 }
    /// Bits consumed so far (may exceed `bitLength` after reading past the end).
    public var bitPosition: Int { (next - start) * 8 + phantom - available }
    /// Whether more bits were consumed than the stream holds.
    public var isOverrun: Bool { bitPosition > bitLength }

    @inline(__always)
    private mutating func refill() {
        if next + 8 <= end {
            // Fast path: load 8 bytes big-endian and take the whole bytes that fit in the window.
            let offset = next
            let word = bytes.withUnsafeBytes { UInt64(bigEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) }
            let take = (64 - available) >> 3
            window |= (word >> UInt64(64 - 8 * take)) << UInt64(64 - available - 8 * take)
            available += 8 * take
            next += take
            return
        }
        while available <= 56 {
            if next < end {
                window |= UInt64(bytes[next]) << UInt64(56 - available)
                next += 1
            } else {
                phantom += 8
            }
            available += 8
        }
    }

    /// The next `bits` bits (1…32) as an integer, without consuming them.
    @inline(__always)
    public mutating func peek(_ bits: Int) -> UInt32 {
        if available < bits { refill() }
        return UInt32(truncatingIfNeeded: window >> UInt64(64 - bits))
    }

    /// Drops `bits` bits (at most what the last `peek` looked at).
    @inline(__always)
    public mutating func consume(_ bits: Int) {
        if available < bits { refill() }
        window <<= UInt64(bits)
        available -= bits
    }

    /// Reads `bits` bits (0…32).
    @inline(__always)
    public mutating func read(_ bits: Int) -> UInt32 {
        if bits == 0 { return 0 }
        let v = peek(bits)
        consume(bits)
        return v
    }

    /// Throws if more bits were consumed than the stream holds.
    public func checkEnd(_ what: String) throws {
        if isOverrun {
            throw CodingError(bitOffset: bitLength, reason: "\(what): the stream ends early (\(bitLength) bits, \(bitPosition) needed)")
        }
    }
}

/// Fixed-width packing of unsigned integers (`bits` 1…32 per value, MSB-first).
public enum BitPacking {
    /// Bytes needed for `count` values of `bits` bits, or nil on overflow.
    public static func byteCount(count: Int, bits: Int) -> Int? {
        let (total, overflow) = count.multipliedReportingOverflow(by: bits)
        return overflow ? nil : (total + 7) / 8
    }

    /// Packs `count` values produced by `value(i)`; each must be `< 1 << bits`.
    public static func pack(count: Int, bits: Int, _ value: (Int) -> UInt32) -> [UInt8] {
        precondition((1...32).contains(bits), "BitPacking: bits must be 1…32, got \(bits)")
        if bits == 8 { return [UInt8](unsafeUninitializedCapacity: count) { out, n in
            for i in 0..<count { out[i] = UInt8(value(i)) }
            n = count
        } }
        var writer = BitWriter(reservingBytes: byteCount(count: count, bits: bits) ?? 0)
        for i in 0..<count { writer.write(value(i), bits: bits) }
        return writer.finish()
    }

    /// Unpacks `count` values of `bits` bits from `bytes[range]`, which must be exactly `byteCount(count:bits:)` long;
    /// `body(i, v)` receives each value.
    public static func unpack(_ bytes: [UInt8], range: Range<Int>, count: Int, bits: Int,
                              _ body: (Int, UInt32) -> Void) throws {
        precondition((1...32).contains(bits), "BitPacking: bits must be 1…32, got \(bits)")
        guard let needed = byteCount(count: count, bits: bits), needed == range.count else {
            throw CodingError(bitOffset: 0, reason: "\(count) values of \(bits) bits need \(byteCount(count: count, bits: bits).map(String.init) ?? "too many") bytes, the stream has \(range.count)")
        }
        if bits == 8 {
            bytes.withUnsafeBufferPointer { b in for i in 0..<count { body(i, UInt32(b[range.lowerBound + i])) } }
            return
        }
        var reader = BitReader(bytes, range: range)
        for i in 0..<count { body(i, reader.read(bits)) }
        try reader.checkEnd("fixed-width values")
    }
}
