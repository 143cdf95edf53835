// Byte-level fields of the compressed file format: little-endian fixed-width integers and floats, unsigned LEB128
// variable-length integers ("varint", at most 9 bytes, value ≤ 2^63 − 1), and strings (varint byte count + UTF-8).

/// Appends format fields to a byte array.
struct ByteWriter {
    var bytes: [UInt8] = []

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v & 0xFF)); bytes.append(UInt8(v >> 8)) }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt32(8 * k))) } }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { bytes.append(UInt8(truncatingIfNeeded: v >> UInt64(8 * k))) } }
    mutating func i32(_ v: Int32) { u32(UInt32(bitPattern: v)) }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func varint(_ v: Int) {
        precondition(v >= 0, "varint of a negative value")
        var v = UInt64(v)
        while v >= 0x80 {
            bytes.append(UInt8(v & 0x7F) | 0x80)
            v >>= 7
        }
        bytes.append(UInt8(v))
    }
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        varint(utf8.count)
        bytes.append(contentsOf: utf8)
    }
    mutating func append(_ other: [UInt8]) { bytes.append(contentsOf: other) }
}

/// Reads format fields from `bytes[position..<end]`, throwing `CompressedFileError` (with the absolute offset) when a
/// field runs past `end` or is malformed.
struct ByteReader {
    let bytes: [UInt8]
    let file: String
    var section: String
    var tensor: String?
    private(set) var position: Int
    let end: Int

    init(_ bytes: [UInt8], file: String, section: String, range: Range<Int>) {
        self.bytes = bytes
        self.file = file
        self.section = section
        self.position = range.lowerBound
        self.end = range.upperBound
    }

    var remaining: Int { end - position }

    func error(_ reason: String, at offset: Int? = nil) -> CompressedFileError {
        CompressedFileError(file: file, section: section, offset: offset ?? position, tensor: tensor, reason: reason)
    }

    mutating func need(_ count: Int, _ what: String) throws {
        guard count >= 0 && count <= remaining else {
            throw error("\(what) needs \(count) bytes, only \(remaining) remain")
        }
    }

    mutating func u8(_ what: String) throws -> UInt8 {
        try need(1, what)
        position += 1
        return bytes[position - 1]
    }
    mutating func u16(_ what: String) throws -> UInt16 {
        try need(2, what)
        defer { position += 2 }
        return UInt16(bytes[position]) | UInt16(bytes[position + 1]) << 8
    }
    mutating func u32(_ what: String) throws -> UInt32 {
        try need(4, what)
        defer { position += 4 }
        var v: UInt32 = 0
        for k in 0..<4 { v |= UInt32(bytes[position + k]) << UInt32(8 * k) }
        return v
    }
    mutating func u64(_ what: String) throws -> UInt64 {
        try need(8, what)
        defer { position += 8 }
        var v: UInt64 = 0
        for k in 0..<8 { v |= UInt64(bytes[position + k]) << UInt64(8 * k) }
        return v
    }
    mutating func i32(_ what: String) throws -> Int32 { Int32(bitPattern: try u32(what)) }
    mutating func f32(_ what: String) throws -> Float { Float(bitPattern: try u32(what)) }

    /// An unsigned LEB128 integer of at most 9 bytes (≤ 2^63 − 1).
    mutating func varint(_ what: String) throws -> Int {
        let start = position
        var value: UInt64 = 0
        for k in 0..<9 {
            let byte = try u8(what)
            value |= UInt64(byte & 0x7F) << UInt64(7 * k)
            if byte & 0x80 == 0 { return Int(value) }
        }
        throw error("\(what): variable-length integer longer than 9 bytes", at: start)
    }

    /// A varint that must not exceed `limit`.
    mutating func count(_ what: String, atMost limit: Int) throws -> Int {
        let start = position
        let v = try varint(what)
        guard v <= limit else { throw error("\(what) is \(v), more than the \(limit) possible here", at: start) }
        return v
    }

    mutating func string(_ what: String) throws -> String {
        let start = position
        let length = try count("\(what) length", atMost: remaining)
        let range = position..<(position + length)
        position += length
        guard let s = String(validating: bytes[range], as: UTF8.self) else {
            throw error("\(what) is not valid UTF-8", at: start)
        }
        return s
    }

    /// `count` raw bytes as a range of `bytes`.
    mutating func range(_ count: Int, _ what: String) throws -> Range<Int> {
        try need(count, what)
        defer { position += count }
        return position..<(position + count)
    }
}
