// CRC-32 (IEEE 802.3, the checksum of zip, gzip and PNG): reflected polynomial 0xEDB88320, initial value and final
// XOR 0xFFFFFFFF. `CRC32.checksum(Array("123456789".utf8)) == 0xCBF43926`.

/// CRC-32 as used by zip/gzip/PNG, computed eight bytes at a time (slicing-by-8).
public enum CRC32 {
    /// `table[k * 256 + b]`: the CRC of byte `b` followed by `k` zero bytes.
    private static let table: [UInt32] = {
        var tables = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for b in 0..<256 {
            var c = UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
            tables[0][b] = c
        }
        for k in 1..<8 {
            for b in 0..<256 { tables[k][b] = (tables[k - 1][b] >> 8) ^ tables[0][Int(tables[k - 1][b] & 0xFF)] }
        }
        return tables.flatMap { $0 }
    }()

    /// The CRC-32 of `bytes[range]` (the whole array when `range` is nil), continuing from `previous` (the CRC of
    /// the bytes before, 0 for a fresh start).
    public static func checksum(_ bytes: [UInt8], range: Range<Int>? = nil, continuing previous: UInt32 = 0) -> UInt32 {
        let range = range ?? 0..<bytes.count
        precondition(range.lowerBound >= 0 && range.upperBound <= bytes.count, "CRC32: range \(range) outside \(bytes.count) bytes")
        return bytes.withUnsafeBufferPointer { buffer in
            return table.withUnsafeBufferPointer { t in
                var crc = ~previous
                var i = range.lowerBound
                let end = range.upperBound
                while i + 8 <= end {
                    let lo = crc ^ (UInt32(buffer[i]) | UInt32(buffer[i + 1]) << 8 | UInt32(buffer[i + 2]) << 16 | UInt32(buffer[i + 3]) << 24)
                    let hi = UInt32(buffer[i + 4]) | UInt32(buffer[i + 5]) << 8 | UInt32(buffer[i + 6]) << 16 | UInt32(buffer[i + 7]) << 24
                    crc = t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                        ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                        ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                        ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                    i += 8
                }
                while i < end {
                    crc = t[Int((crc ^ UInt32(buffer[i])) & 0xFF)] ^ (crc >> 8)
                    i += 1
                }
                return ~crc
            }
        }
    }
}
