// gzip/zlib decompression with a caller-given output size (zlib's inflate, through Sources/CImageDecode), for the
// `.gz` files the MNIST site serves.
import CImageDecode
import LiteCNNIO

/// Decompresses gzip data into a buffer whose size the caller derives from a header it has checked, so a lying length
/// field can never drive a large allocation.
enum Gzip {
    /// Deflate cannot compress better than about 1032:1; a header claiming more output than this is lying.
    static let maximumRatio = 1032

    /// Whether `bytes` start with the gzip magic `1F 8B`.
    static func isCompressed(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == 0x1F && bytes[1] == 0x8B
    }

    /// The first `count` decompressed bytes (fewer when the data ends before that, or throws on corrupt data).
    static func inflatePrefix(_ bytes: [UInt8], count: Int, fileName: String) throws -> [UInt8] {
        let (output, status) = try run(bytes, capacity: count, fileName: fileName)
        if status == Int32(LITECNN_INFLATE_CORRUPT) { throw corrupt(fileName, output.message) }
        return output.bytes
    }

    /// All decompressed bytes, which must be exactly `expectedSize` (derived from a header): more or fewer is an error
    /// naming the file. `expectedSize` is checked against the compressed size before anything is allocated.
    static func inflate(_ bytes: [UInt8], expectedSize: Int, fileName: String, what: String) throws -> [UInt8] {
        let (limit, overflow) = bytes.count.multipliedReportingOverflow(by: maximumRatio)
        guard overflow || expectedSize <= limit + 4096 else {
            throw FileFormatError(file: fileName, offset: 0, reason: "header announces \(what) (\(expectedSize) bytes), more than \(bytes.count) compressed bytes can hold")
        }
        let (output, status) = try run(bytes, capacity: expectedSize, fileName: fileName)
        switch status {
        case Int32(LITECNN_INFLATE_COMPLETE):
            guard output.bytes.count == expectedSize else {
                throw FileFormatError(file: fileName, offset: output.bytes.count,
                                      reason: "truncated: header announces \(what) (\(expectedSize) bytes decompressed) but the data ends after \(output.bytes.count) bytes")
            }
            return output.bytes
        case Int32(LITECNN_INFLATE_MORE):
            throw FileFormatError(file: fileName, offset: expectedSize,
                                  reason: "decompressed data is longer than the \(expectedSize) bytes the header announces (\(what))")
        case Int32(LITECNN_INFLATE_TRUNCATED):
            throw FileFormatError(file: fileName, offset: output.bytes.count,
                                  reason: "truncated gzip file: the data ends after \(output.bytes.count) of the \(expectedSize) decompressed bytes the header announces (\(what))")
        default:
            throw corrupt(fileName, output.message)
        }
    }

    private static func corrupt(_ fileName: String, _ message: String) -> FileFormatError {
        FileFormatError(file: fileName, reason: "corrupt gzip data: \(message)")
    }

    private static func run(_ bytes: [UInt8], capacity: Int, fileName: String) throws -> ((bytes: [UInt8], message: String), Int32) {
        var produced = 0
        var status: Int32 = 0
        var message = [CChar](repeating: 0, count: Int(LITECNN_MESSAGE_CAPACITY))
        let output = [UInt8](unsafeUninitializedCapacity: max(capacity, 1)) { buffer, initialized in
            status = bytes.withUnsafeBufferPointer { input in
                message.withUnsafeMutableBufferPointer { text in
                    litecnn_inflate(input.baseAddress, input.count, buffer.baseAddress, capacity, &produced, text.baseAddress)
                }
            }
            initialized = produced
        }
        let text = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return ((output, text), status)
    }
}
