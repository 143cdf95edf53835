// The fingerprint that ties an operator bank to the exact base weights it was built for.
import LiteCNNCompression
import LiteCNNGraph
import LiteCNNTensor

/// A CRC-32 over every initializer of a graph: the weights (and BatchNorm statistics, shape constants) a bank's
/// operators were distilled against.
///
/// The checksummed byte stream is, for each initializer in the order of its name's UTF-8 bytes:
/// `u8` tag (`0x46` `F` float, `0x49` `I` integer), `u32` name byte count, the name's UTF-8 bytes, `u32` rank,
/// `u64` each dimension, then the elements in row-major order — floats as the little-endian `u32` of their IEEE 754
/// bit pattern, integers as little-endian two's-complement `i64`. All integers are little-endian. The CRC is the
/// zip/PNG CRC-32 (`CRC32.checksum`), computed over 64 KiB chunks so that VGG-16's 138 M parameters never become one
/// byte array. Node structure and metadata are not part of it (`OperatorBank.validate(against:)` compares the slots).
public enum BaseFingerprint {
    public static func of(_ graph: Graph) -> UInt32 {
        var stream = ChecksumStream()
        let names = graph.initializers.keys.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        for name in names {
            guard let constant = graph.initializers[name] else { continue }
            let nameBytes = Array(name.utf8)
            switch constant {
            case let .float(tensor):
                stream.byte(0x46)
                stream.u32(UInt32(truncatingIfNeeded: nameBytes.count))
                stream.bytes(nameBytes)
                stream.shape(tensor.shape)
                stream.floats(tensor.scalars)
            case let .int(values, shape):
                stream.byte(0x49)
                stream.u32(UInt32(truncatingIfNeeded: nameBytes.count))
                stream.bytes(nameBytes)
                stream.shape(shape)
                for v in values { stream.u64(UInt64(bitPattern: Int64(v))) }
            }
        }
        return stream.finish()
    }
}

/// Bytes fed to a CRC-32 through a fixed 64 KiB buffer.
private struct ChecksumStream {
    static let capacity = 1 << 16
    var buffer = [UInt8](repeating: 0, count: ChecksumStream.capacity)
    var used = 0
    var crc: UInt32 = 0

    mutating func flush() {
        guard used > 0 else { return }
        crc = CRC32.checksum(buffer, range: 0..<used, continuing: crc)
        used = 0
    }

    mutating func byte(_ b: UInt8) {
        if used == Self.capacity { flush() }
        buffer[used] = b
        used += 1
    }

    mutating func bytes(_ bytes: [UInt8]) { for b in bytes { byte(b) } }
    mutating func u32(_ v: UInt32) { for k in 0..<4 { byte(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
    mutating func u64(_ v: UInt64) { for k in 0..<8 { byte(UInt8(truncatingIfNeeded: v >> (8 * k))) } }

    mutating func shape(_ shape: [Int]) {
        u32(UInt32(truncatingIfNeeded: shape.count))
        for d in shape { u64(UInt64(bitPattern: Int64(d))) }
    }

    /// Little-endian bit patterns, written a buffer-full at a time.
    mutating func floats(_ scalars: [Float]) {
        var start = 0
        while start < scalars.count {
            if Self.capacity - used < 4 { flush() }
            let n = min(scalars.count - start, (Self.capacity - used) / 4)
            let at = used
            scalars.withUnsafeBufferPointer { source in
                buffer.withUnsafeMutableBytes { target in
                    for i in 0..<n {
                        target.storeBytes(of: source[start + i].bitPattern.littleEndian, toByteOffset: at + 4 * i, as: UInt32.self)
                    }
                }
            }
            used += 4 * n
            start += n
        }
    }

    mutating func finish() -> UInt32 {
        flush()
        return crc
    }
}
