import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// Decodes `TensorProto`s into `Constant`s, resolving external data files (mapped once each) inside `directory`.
///
/// Every length is checked against the bytes actually present before anything is allocated: a tensor whose dims
/// promise more data than the file holds is an error, not an allocation.
struct TensorReader {
    let source: String
    let directory: URL?
    private var files: [String: Data] = [:]

    init(source: String, directory: URL?) {
        self.source = source
        self.directory = directory
    }

    private func fail(_ what: String, _ message: String) -> ONNXError {
        ONNXError(source: source, "\(what): \(message)")
    }

    /// Bytes per element of the data types LiteCNN reads; nil for the others.
    private static func elementSize(_ type: Onnx_TensorProto.DataType) -> Int? {
        switch type {
        case .float, .int32: return 4
        case .double, .int64: return 8
        case .float16: return 2
        case .int8, .uint8, .bool: return 1
        default: return nil
        }
    }

    /// The constant of `t`. `rawData` is `raw_data` when the caller took it out of the message (`ONNXWire`); when nil,
    /// `t.rawData` is used.
    mutating func constant(_ t: Onnx_TensorProto, rawData: Data? = nil, what: String) throws -> Constant {
        var shape: [Int] = []
        var count = 1
        for d in t.dims {
            guard d >= 0 else { throw fail(what, "negative dimension \(d) in \(t.dims)") }
            let (product, overflow) = count.multipliedReportingOverflow(by: Int(d))
            guard !overflow, product <= Int(Int32.max) * 64 else { throw fail(what, "dims \(t.dims) are too large") }
            shape.append(Int(d))
            count = product
        }
        guard let type = Onnx_TensorProto.DataType(rawValue: Int(t.dataType)), let size = Self.elementSize(type) else {
            throw fail(what, "unsupported data type \(t.dataType) (LiteCNN reads FLOAT, FLOAT16, DOUBLE, INT64, INT32, INT8, UINT8, BOOL)")
        }
        let bytes: Data?
        if t.hasDataLocation && t.dataLocation == .external {
            bytes = try external(t, what: what, expected: count * size)
        } else if let raw = rawData ?? (t.hasRawData ? t.rawData : nil) {
            guard raw.count == count * size else {
                throw fail(what, "raw_data holds \(raw.count) bytes, dims \(t.dims) of \(type) need \(count * size)")
            }
            bytes = raw
        } else {
            bytes = nil
        }
        if let bytes { return try Self.decode(bytes, type: type, shape: shape, count: count) }

        // Typed fields.
        func check(_ n: Int, _ field: String) throws {
            guard n == count else { throw fail(what, "\(field) holds \(n) values, dims \(t.dims) need \(count)") }
        }
        switch type {
        case .float:
            try check(t.floatData.count, "float_data")
            return .float(Tensor(shape: shape, scalars: t.floatData, layout: .plain))
        case .double:
            try check(t.doubleData.count, "double_data")
            return .float(Tensor(shape: shape, scalars: t.doubleData.map { Float($0) }, layout: .plain))
        case .float16:
            try check(t.int32Data.count, "int32_data")
            return .float(Tensor(shape: shape, scalars: t.int32Data.map { halfToFloat(UInt16(truncatingIfNeeded: $0)) }, layout: .plain))
        case .int64:
            try check(t.int64Data.count, "int64_data")
            return .int(t.int64Data.map { Int($0) }, shape: shape)
        case .bool:
            try check(t.int32Data.count, "int32_data")
            return .int(t.int32Data.map { $0 != 0 ? 1 : 0 }, shape: shape)
        default:  // int32, int8, uint8
            try check(t.int32Data.count, "int32_data")
            return .int(t.int32Data.map { Int($0) }, shape: shape)
        }
    }

    /// Little-endian bytes (exactly `count` elements) to a constant.
    private static func decode(_ bytes: Data, type: Onnx_TensorProto.DataType, shape: [Int], count: Int) throws -> Constant {
        bytes.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Constant in
            switch type {
            case .float:
                return .float(Tensor(shape: shape, layout: .plain, hugePages: false) { out in
                    #if _endian(little)
                    // The file's little-endian floats are the host's: one copy (weights are most of a model's bytes).
                    if count > 0 { UnsafeMutableRawPointer(out.baseAddress!).copyMemory(from: raw.baseAddress!, byteCount: 4 * count) }
                    #else
                    for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                    #endif
                })
            case .double:
                return .float(Tensor(shape: shape, layout: .plain, hugePages: false) { out in
                    for i in 0..<count {
                        out[i] = Float(Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * i, as: UInt64.self))))
                    }
                })
            case .float16:
                return .float(Tensor(shape: shape, layout: .plain, hugePages: false) { out in
                    for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                })
            case .int64:
                return .int((0..<count).map { Int(Int64(littleEndian: raw.loadUnaligned(fromByteOffset: 8 * $0, as: Int64.self))) }, shape: shape)
            case .int32:
                return .int((0..<count).map { Int(Int32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self))) }, shape: shape)
            case .int8:
                return .int((0..<count).map { Int(Int8(bitPattern: raw[$0])) }, shape: shape)
            case .bool:
                return .int((0..<count).map { raw[$0] != 0 ? 1 : 0 }, shape: shape)
            default:  // uint8
                return .int((0..<count).map { Int(raw[$0]) }, shape: shape)
            }
        }
    }

    /// The bytes of a tensor stored outside the model: `location` relative to the model's directory (no absolute
    /// paths, no `..`, no symbolic link leaving the directory), `offset` and `length` within the file.
    private mutating func external(_ t: Onnx_TensorProto, what: String, expected: Int) throws -> Data {
        var info: [String: String] = [:]
        for e in t.externalData { info[e.key] = e.value }
        guard let directory else {
            throw fail(what, "external data needs the model's directory: read the file with ONNXFile.load(contentsOf:)")
        }
        guard let location = info["location"], !location.isEmpty else { throw fail(what, "external data without a location") }
        let components = location.split(separator: "/", omittingEmptySubsequences: false)
        guard !location.hasPrefix("/"), !location.contains("\\"), !location.contains("\0"),
              !components.contains(where: { $0 == ".." }) else {
            throw fail(what, "external data location '\(location)' leaves the model's directory")
        }
        func number(_ key: String) throws -> Int? {
            guard let text = info[key] else { return nil }
            guard let v = Int(text), v >= 0 else { throw fail(what, "external data \(key) '\(text)' is not a non-negative integer") }
            return v
        }
        let offset = try number("offset") ?? 0
        let base = directory.standardizedFileURL.resolvingSymlinksInPath()
        let url = base.appendingPathComponent(location).standardizedFileURL.resolvingSymlinksInPath()
        guard url.path.hasPrefix(base.path.hasSuffix("/") ? base.path : base.path + "/") else {
            throw fail(what, "external data location '\(location)' leaves the model's directory")
        }
        let file: Data
        if let cached = files[location] {
            file = cached
        } else {
            do {
                file = try Data(contentsOf: url, options: .alwaysMapped)
            } catch {
                throw fail(what, "cannot read external data file '\(location)': \(error.localizedDescription)")
            }
            files[location] = file
        }
        let length = try number("length") ?? (file.count - min(offset, file.count))
        guard length == expected else {
            throw fail(what, "external data length \(length) does not match the \(expected) bytes its dims need")
        }
        guard offset <= file.count, length <= file.count - offset else {
            throw fail(what, "external data [\(offset), \(offset)+\(length)) is outside '\(location)' (\(file.count) bytes)")
        }
        let start = file.startIndex + offset
        return file.subdata(in: start..<(start + length))
    }
}

/// IEEE 754 half precision bits to float (all values, subnormals, infinities and NaN included).
func halfToFloat(_ h: UInt16) -> Float {
    let sign: Float = (h & 0x8000) != 0 ? -1 : 1
    let exponent = Int((h >> 10) & 0x1f)
    let mantissa = UInt32(h & 0x3ff)
    if exponent == 0 { return sign * Float(mantissa) * 0x1p-24 }
    if exponent == 31 {
        return Float(bitPattern: ((h & 0x8000) != 0 ? 0x8000_0000 : 0) | 0x7f80_0000 | (mantissa << 13))
    }
    return sign * Float(bitPattern: UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}

// MARK: - Writing

extension ONNXFile {
    static func tensorProto(_ constant: Constant, name: String) -> Onnx_TensorProto {
        var t = Onnx_TensorProto()
        if !name.isEmpty { t.name = name }
        t.dims = constant.shape.map { Int64($0) }
        var raw = Data()
        switch constant {
        case let .float(tensor):
            t.dataType = Int32(Onnx_TensorProto.DataType.float.rawValue)
            raw.reserveCapacity(4 * tensor.count)
            for v in tensor.scalars { withUnsafeBytes(of: v.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
        case let .int(values, _):
            t.dataType = Int32(Onnx_TensorProto.DataType.int64.rawValue)
            raw.reserveCapacity(8 * values.count)
            for v in values { withUnsafeBytes(of: Int64(v).littleEndian) { raw.append(contentsOf: $0) } }
        }
        t.rawData = raw
        return t
    }

    static func valueInfoProto(_ info: ValueInfo) -> Onnx_ValueInfoProto {
        var vi = Onnx_ValueInfoProto()
        vi.name = info.name
        var tensorType = Onnx_TypeProto.Tensor()
        tensorType.elemType = Int32(info.elementType.rawValue)
        if let shape = info.shape {
            var s = Onnx_TensorShapeProto()
            s.dim = shape.map { d in
                var dim = Onnx_TensorShapeProto.Dimension()
                switch d {
                case let .fixed(v): dim.dimValue = Int64(v)
                case let .symbolic(name?): dim.dimParam = name
                case .symbolic(nil): break
                }
                return dim
            }
            tensorType.shape = s
        }
        var type = Onnx_TypeProto()
        type.tensorType = tensorType
        vi.type = type
        return vi
    }

    static func attributeProto(_ attribute: Attribute, name: String) -> Onnx_AttributeProto {
        var a = Onnx_AttributeProto()
        a.name = name
        switch attribute {
        case let .int(v): a.type = .int; a.i = Int64(v)
        case let .ints(v): a.type = .ints; a.ints = v.map { Int64($0) }
        case let .float(v): a.type = .float; a.f = v
        case let .floats(v): a.type = .floats; a.floats = v
        case let .string(v): a.type = .string; a.s = Data(v.utf8)
        case let .strings(v): a.type = .strings; a.strings = v.map { Data($0.utf8) }
        case let .tensor(c): a.type = .tensor; a.t = tensorProto(c, name: "")
        }
        return a
    }
}
