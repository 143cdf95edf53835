import Foundation
import LiteCNNTensor

/// The safetensors file format (Hugging Face): tensors by name, with a JSON header.
///
/// Layout of a file:
///
///     bytes 0..<8        header length n, unsigned 64-bit little-endian
///     bytes 8..<8+n      JSON object, UTF-8, optionally padded with spaces:
///                          { "__metadata__": { "key": "value", … },                 (optional, strings only)
///                            "name": { "dtype": "F32", "shape": [64, 3, 3, 3], "data_offsets": [begin, end] }, … }
///     bytes 8+n..<end    the data; each tensor's bytes are `begin..<end` relative to the start of the data,
///                        row-major (C order), little-endian
///
/// LiteCNN writes `F32`; it reads `F32`, `F16`, `BF16`, `F64`, `I64` and `I32`, converting to `Float`.
/// Reading validates everything before trusting it: the header length against the file size, the JSON, each
/// dtype and shape, that offsets are in bounds, do not overlap and cover the data exactly, and that every byte
/// length equals shape product × dtype size. Problems are thrown as `FileFormatError`, never trapped.
public enum Safetensors {
    /// Headers larger than this are refused (the reference implementation's limit), so a lying length field
    /// cannot make the reader allocate or scan gigabytes.
    public static let maximumHeaderLength = 100_000_000

    /// Element types a safetensors file can store that LiteCNN reads.
    public enum DType: String, Sendable, CaseIterable {
        case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64", i64 = "I64", i32 = "I32"

        /// Bytes per element.
        public var size: Int {
            switch self {
            case .f16, .bf16: return 2
            case .f32, .i32: return 4
            case .f64, .i64: return 8
            }
        }
    }

    /// One tensor's entry in the header.
    public struct TensorInfo: Sendable, Equatable {
        public var name: String
        public var dtype: DType
        public var shape: [Int]
        /// Byte range relative to the start of the data section.
        public var dataOffsets: Range<Int>
    }

    // MARK: Writing

    /// The bytes of a safetensors file holding `tensors` as `F32`, in the given order, with `metadata`.
    ///
    /// Preconditions (programmer errors): names are unique, non-empty and not `__metadata__`.
    public static func encode(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) -> [UInt8] {
        var seen = Set<String>()
        for (name, _) in tensors {
            precondition(!name.isEmpty && name != "__metadata__", "Safetensors.encode: invalid tensor name '\(name)'")
            precondition(seen.insert(name).inserted, "Safetensors.encode: duplicate tensor name '\(name)'")
        }
        var entries: [String] = []
        if !metadata.isEmpty {
            let pairs = metadata.keys.sorted().map { "\(jsonQuoted($0)):\(jsonQuoted(metadata[$0]!))" }
            entries.append("\"__metadata__\":{" + pairs.joined(separator: ",") + "}")
        }
        var offset = 0
        for (name, tensor) in tensors {
            let end = offset + tensor.count * 4
            let shape = tensor.shape.map(String.init).joined(separator: ",")
            entries.append("\(jsonQuoted(name)):{\"dtype\":\"F32\",\"shape\":[\(shape)],\"data_offsets\":[\(offset),\(end)]}")
            offset = end
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        // Pad with spaces so the data starts 8-byte aligned, as the reference writer does.
        while header.count % 8 != 0 { header.append(0x20) }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(8 + header.count + offset)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { bytes.append(contentsOf: $0) }
        bytes += header
        for (_, tensor) in tensors {
            tensor.scalars.withUnsafeBufferPointer { values in
                for value in values { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes.append(contentsOf: $0) } }
            }
        }
        return bytes
    }

    /// Writes `tensors` (as `F32`) and `metadata` to `url` atomically (temporary file, then rename).
    public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:],
                             to url: URL) throws {
        try writeFileAtomically(encode(tensors, metadata: metadata), to: url)
    }

    // MARK: Reading

    /// A parsed safetensors file: its header, validated, and its bytes. Tensors are decoded on request.
    public struct File: Sendable {
        /// The path (or name) used in error messages.
        public let fileName: String
        /// The `__metadata__` map (empty when the file has none).
        public let metadata: [String: String]
        /// Every tensor of the header, in data order.
        public let tensors: [TensorInfo]
        private let bytes: [UInt8]
        private let dataStart: Int
        private let index: [String: Int]

        /// Reads and validates the file at `url`.
        public init(contentsOf url: URL) throws {
            try self.init(bytes: readFileBytes(url), fileName: url.path)
        }

        /// Validates `bytes` as a safetensors file; `fileName` is used in error messages.
        public init(bytes: [UInt8], fileName: String) throws {
            func tensorFailure(_ offset: Int?, _ tensor: String?, _ reason: String) -> FileFormatError {
                FileFormatError(file: fileName, offset: offset, tensor: tensor, reason: reason)
            }
            func failure(_ offset: Int?, _ reason: String) -> FileFormatError { tensorFailure(offset, nil, reason) }
            guard bytes.count >= 8 else {
                throw failure(0, "file is \(bytes.count) bytes; a safetensors file starts with an 8-byte header length")
            }
            var declared: UInt64 = 0
            for i in (0..<8).reversed() { declared = declared << 8 | UInt64(bytes[i]) }
            guard declared <= UInt64(bytes.count - 8) else {
                throw failure(0, "header length \(declared) exceeds the \(bytes.count - 8) bytes after the length field")
            }
            guard declared <= UInt64(Safetensors.maximumHeaderLength) else {
                throw failure(0, "header length \(declared) exceeds the limit of \(Safetensors.maximumHeaderLength) bytes")
            }
            let headerLength = Int(declared)
            guard headerLength >= 2 else { throw failure(0, "header length \(headerLength) is too small for a JSON object") }
            let headerBytes = Array(bytes[8..<(8 + headerLength)])
            guard headerBytes.first == UInt8(ascii: "{") else { throw failure(8, "header does not start with '{'") }
            let json: JSONValue
            do {
                json = try JSONParser.parse(headerBytes)
            } catch {
                throw failure(8 + error.offset, "header is not valid JSON: \(error.reason)")
            }
            guard case let .object(members) = json else { throw failure(8, "header is not a JSON object") }

            let dataStart = 8 + headerLength
            let dataLength = bytes.count - dataStart
            var metadata: [String: String] = [:]
            var infos: [TensorInfo] = []
            for (name, value, valueOffset) in members {
                let at = 8 + valueOffset
                if name == "__metadata__" {
                    guard case let .object(pairs) = value else { throw failure(at, "__metadata__ is not an object") }
                    for (key, item, itemOffset) in pairs {
                        guard case let .string(text) = item else {
                            throw failure(8 + itemOffset, "__metadata__ value for '\(key)' is \(item.kindName), not a string")
                        }
                        metadata[key] = text
                    }
                    continue
                }
                infos.append(try Self.tensorInfo(name: name, value: value, at: at, dataLength: dataLength, failure: tensorFailure))
            }

            // Offsets must tile the data section exactly: sorted by start, each begins where the previous ended.
            infos.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound) }
            var expected = 0
            for info in infos {
                if info.dataOffsets.lowerBound < expected {
                    throw tensorFailure(dataStart + info.dataOffsets.lowerBound, info.name,
                                  "data_offsets \(info.dataOffsets.lowerBound)..<\(info.dataOffsets.upperBound) overlap the previous tensor (which ends at \(expected))")
                }
                if info.dataOffsets.lowerBound > expected {
                    throw tensorFailure(dataStart + expected, info.name,
                                  "gap in the data: bytes \(expected)..<\(info.dataOffsets.lowerBound) belong to no tensor")
                }
                expected = info.dataOffsets.upperBound
            }
            guard expected == dataLength else {
                throw failure(dataStart + expected, "the data section has \(dataLength) bytes but the tensors cover \(expected)")
            }
            self.fileName = fileName
            self.metadata = metadata
            self.tensors = infos
            self.bytes = bytes
            self.dataStart = dataStart
            self.index = Dictionary(uniqueKeysWithValues: infos.enumerated().map { ($0.element.name, $0.offset) })
        }

        /// Validates one header entry; `offset` is the entry's byte offset in the file.
        private static func tensorInfo(name: String, value: JSONValue, at offset: Int, dataLength: Int,
                                       failure: (Int?, String?, String) -> FileFormatError) throws -> TensorInfo {
            guard case let .object(fields) = value else {
                throw failure(offset, name, "entry is \(value.kindName), expected an object with dtype, shape, data_offsets")
            }
            var dtype: DType?
            var shape: [Int]?
            var range: Range<Int>?
            for (key, field, fieldOffset) in fields {
                switch key {
                case "dtype":
                    guard case let .string(text) = field else { throw failure(8 + fieldOffset, name, "dtype is \(field.kindName), not a string") }
                    guard let parsed = DType(rawValue: text) else {
                        throw failure(8 + fieldOffset, name,
                                      "unsupported dtype \(text) (LiteCNN reads \(DType.allCases.map(\.rawValue).joined(separator: ", ")))")
                    }
                    dtype = parsed
                case "shape":
                    guard case let .array(items) = field else { throw failure(8 + fieldOffset, name, "shape is \(field.kindName), not an array") }
                    var dims: [Int] = []
                    for (item, itemOffset) in items {
                        guard let dim = item.nonNegativeInteger else {
                            throw failure(8 + itemOffset, name, "shape entry is not a non-negative integer")
                        }
                        dims.append(dim)
                    }
                    shape = dims
                case "data_offsets":
                    guard case let .array(items) = field, items.count == 2 else {
                        throw failure(8 + fieldOffset, name, "data_offsets must be an array [begin, end]")
                    }
                    guard let begin = items[0].value.nonNegativeInteger, let end = items[1].value.nonNegativeInteger else {
                        throw failure(8 + fieldOffset, name, "data_offsets entries must be non-negative integers")
                    }
                    guard begin <= end else { throw failure(8 + fieldOffset, name, "data_offsets begin \(begin) > end \(end)") }
                    guard end <= dataLength else {
                        throw failure(8 + fieldOffset, name, "data_offsets end \(end) is past the \(dataLength)-byte data section")
                    }
                    range = begin..<end
                default:
                    throw failure(8 + fieldOffset, name, "unexpected field '\(key)'")
                }
            }
            guard let dtype else { throw failure(offset, name, "missing dtype") }
            guard let shape else { throw failure(offset, name, "missing shape") }
            guard let range else { throw failure(offset, name, "missing data_offsets") }
            var elements = 1
            for dim in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw failure(offset, name, "shape \(shape) has too many elements") }
                elements = product
            }
            let (byteCount, overflow) = elements.multipliedReportingOverflow(by: dtype.size)
            guard !overflow, byteCount == range.count else {
                throw failure(offset, name, "shape \(shape) of \(dtype.rawValue) needs \(overflow ? "too many" : String(byteCount)) bytes but data_offsets give \(range.count)")
            }
            return TensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: range)
        }

        /// Tensor names in data order.
        public var names: [String] { tensors.map(\.name) }

        /// The header entry of `name`, or nil.
        public func info(named name: String) -> TensorInfo? { index[name].map { tensors[$0] } }

        /// Decodes tensor `name` to `Float` (bit-exact for F32).
        public func tensor(named name: String) throws -> Tensor {
            guard let info = info(named: name) else {
                throw FileFormatError(file: fileName, tensor: name, reason: "no such tensor in the file")
            }
            return decode(info)
        }

        /// Every tensor, decoded, in data order.
        public func allTensors() -> [(name: String, tensor: Tensor)] { tensors.map { ($0.name, decode($0)) } }

        private func decode(_ info: TensorInfo) -> Tensor {
            let start = dataStart + info.dataOffsets.lowerBound
            let count = info.dataOffsets.count / info.dtype.size
            return bytes.withUnsafeBytes { raw in
                Tensor(shape: info.shape) { out in
                    let source = UnsafeRawBufferPointer(rebasing: raw[start..<(start + info.dataOffsets.count)])
                    for i in 0..<count { out[i] = Self.element(source, i, info.dtype) }
                }
            }
        }

        private static func element(_ source: UnsafeRawBufferPointer, _ i: Int, _ dtype: DType) -> Float {
            switch dtype {
            case .f32:
                return Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
            case .f16:
                return floatFromHalfBits(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
            case .bf16:
                return Float(bitPattern: UInt32(UInt16(littleEndian: source.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) << 16)
            case .f64:
                return Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
            case .i64:
                return Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
            case .i32:
                return Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
            }
        }
    }

    /// Reads and validates the safetensors file at `url`.
    public static func read(_ url: URL) throws -> File { try File(contentsOf: url) }
}

/// IEEE 754 half precision bits → `Float` (exact; written out by hand because `Float16` is unavailable on
/// Intel Macs).
func floatFromHalfBits(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int(h >> 10 & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    switch exponent {
    case 0:
        // Zero or subnormal: mantissa × 2^-24.
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -magnitude : magnitude
    case 0x1F:
        return Float(bitPattern: sign | 0x7F80_0000 | mantissa << 13)
    default:
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | mantissa << 13)
    }
}
