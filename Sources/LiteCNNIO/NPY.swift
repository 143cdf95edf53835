import Foundation
import LiteCNNTensor

/// NumPy's `.npy` format: one array per file.
///
/// Layout: the magic string `\x93NUMPY`, a major and minor version byte, the header length (2 bytes little-endian in
/// version 1, 4 bytes in versions 2 and 3), then a Python dict literal such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }` padded with spaces and a newline so the data starts
/// on a 64-byte boundary, then the data in C order.
///
/// LiteCNN writes `<f4` (version 1, or 2 when the header needs it); it reads versions 1–3 with dtypes `<f4`, `<f8`,
/// `|u1`, `<i8` and `<i4`, converting to `Float`, any rank (shape `()` gives a scalar tensor). Fortran-ordered arrays
/// and big-endian dtypes are refused with a message saying how to convert them.
public enum NPY {
    /// The first six bytes of every `.npy` file.
    public static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

    /// Element types LiteCNN reads from `.npy` files.
    enum DType: String, CaseIterable {
        case float32 = "<f4", float64 = "<f8", uint8 = "|u1", int64 = "<i8", int32 = "<i4"
        var size: Int {
            switch self {
            case .uint8: return 1
            case .float32, .int32: return 4
            case .float64, .int64: return 8
            }
        }
    }

    // MARK: Writing

    /// The bytes of a `.npy` file holding `tensor` as `<f4` in C order with its shape.
    public static func encode(_ tensor: Tensor) -> [UInt8] {
        let shapeText: String
        switch tensor.rank {
        case 0: shapeText = "()"
        case 1: shapeText = "(\(tensor.shape[0]),)"
        default: shapeText = "(" + tensor.shape.map(String.init).joined(separator: ", ") + ")"
        }
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"
        // Version 1 stores the header length in 2 bytes; larger headers need version 2.
        let version: UInt8 = dict.utf8.count + 1 + 10 < 65_536 ? 1 : 2
        let prefix = magic.count + 2 + (version == 1 ? 2 : 4)
        var header = Array(dict.utf8)
        let total = prefix + header.count + 1
        header += [UInt8](repeating: 0x20, count: (64 - total % 64) % 64)
        header.append(0x0A)
        var bytes = magic + [version, 0]
        if version == 1 {
            withUnsafeBytes(of: UInt16(header.count).littleEndian) { bytes += $0 }
        } else {
            withUnsafeBytes(of: UInt32(header.count).littleEndian) { bytes += $0 }
        }
        bytes += header
        bytes.reserveCapacity(bytes.count + tensor.count * 4)
        for value in tensor.scalars { withUnsafeBytes(of: value.bitPattern.littleEndian) { bytes += $0 } }
        return bytes
    }

    /// Writes `tensor` to `url` as `.npy` (`<f4`), atomically.
    public static func write(_ tensor: Tensor, to url: URL) throws {
        try writeFileAtomically(encode(tensor), to: url)
    }

    // MARK: Reading

    /// Reads the `.npy` file at `url` as a `Float` tensor.
    public static func read(_ url: URL) throws -> Tensor {
        try decode(readFileBytes(url), fileName: url.path)
    }

    /// Parses `.npy` bytes; `fileName` is used in error messages.
    public static func decode(_ bytes: [UInt8], fileName: String) throws -> Tensor {
        func failure(_ offset: Int, _ reason: String) -> FileFormatError {
            FileFormatError(file: fileName, offset: offset, reason: reason)
        }
        guard bytes.count >= 10, Array(bytes[0..<6]) == magic else {
            throw failure(0, "not a .npy file (it does not start with \\x93NUMPY)")
        }
        let major = bytes[6]
        guard (1...3).contains(major) else { throw failure(6, "unsupported .npy version \(major).\(bytes[7]) (LiteCNN reads 1–3)") }
        let headerLength: Int
        let headerStart: Int
        if major == 1 {
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8
            headerStart = 10
        } else {
            guard bytes.count >= 12 else { throw failure(8, "file ends inside the header length") }
            headerLength = Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            headerStart = 12
        }
        guard headerLength <= bytes.count - headerStart else {
            throw failure(8, "header length \(headerLength) exceeds the \(bytes.count - headerStart) bytes after it")
        }
        let headerBytes = bytes[headerStart..<(headerStart + headerLength)]
        // Versions 1 and 2 are latin-1 (ASCII in practice); version 3 is UTF-8.
        guard let headerText = String(validating: headerBytes, as: UTF8.self) else {
            throw failure(headerStart, "header is not valid text")
        }
        let header: [String: PythonLiteral]
        do {
            header = try PythonLiteralParser.parseDict(headerText)
        } catch {
            throw failure(headerStart + error.offset, "cannot parse the header dict: \(error.reason)")
        }
        guard case let .string(descr)? = header["descr"] else { throw failure(headerStart, "header has no 'descr' string") }
        guard let dtype = DType(rawValue: descr) else {
            let hint = descr.hasPrefix(">") ? " (big-endian; convert with arr.astype(arr.dtype.newbyteorder('<')))" : ""
            throw failure(headerStart, "unsupported dtype '\(descr)'\(hint); LiteCNN reads \(DType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard case let .bool(fortranOrder)? = header["fortran_order"] else {
            throw failure(headerStart, "header has no 'fortran_order' boolean")
        }
        guard !fortranOrder else {
            throw failure(headerStart, "array is stored in Fortran (column-major) order; save it with np.save(path, np.ascontiguousarray(arr))")
        }
        guard case let .tuple(dims)? = header["shape"] else { throw failure(headerStart, "header has no 'shape' tuple") }
        var shape: [Int] = []
        var count = 1
        for dim in dims {
            guard case let .integer(d) = dim, d >= 0 else { throw failure(headerStart, "shape entries must be non-negative integers") }
            let (product, overflow) = count.multipliedReportingOverflow(by: d)
            guard !overflow else { throw failure(headerStart, "shape \(dims) has too many elements") }
            shape.append(d)
            count = product
        }
        let dataStart = headerStart + headerLength
        let available = bytes.count - dataStart
        let (needed, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, needed == available else {
            throw failure(dataStart, "shape \(shape) of \(descr) needs \(overflow ? "too many" : String(needed)) bytes of data, the file has \(available)")
        }
        return bytes.withUnsafeBytes { raw in
            let source = UnsafeRawBufferPointer(rebasing: raw[dataStart...])
            return Tensor(shape: shape) { out in
                for i in 0..<count {
                    switch dtype {
                    case .float32:
                        out[i] = Float(bitPattern: UInt32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: UInt32.self)))
                    case .float64:
                        out[i] = Float(Double(bitPattern: UInt64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self))))
                    case .uint8:
                        out[i] = Float(source[i])
                    case .int64:
                        out[i] = Float(Int64(littleEndian: source.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)))
                    case .int32:
                        out[i] = Float(Int32(littleEndian: source.loadUnaligned(fromByteOffset: i * 4, as: Int32.self)))
                    }
                }
            }
        }
    }
}

/// The values a `.npy` header dict holds.
enum PythonLiteral: Equatable {
    case string(String)
    case bool(Bool)
    case integer(Int)
    case tuple([PythonLiteral])
}

/// Parses the restricted Python literal of a `.npy` header: a dict of string keys to strings, `True`/`False`,
/// integers (an optional `L` suffix from Python 2 included) and tuples of those.
struct PythonLiteralParser {
    struct SyntaxError: Error { var offset: Int; var reason: String }

    private let characters: [UInt8]
    private var position = 0

    static func parseDict(_ text: String) throws(SyntaxError) -> [String: PythonLiteral] {
        var parser = PythonLiteralParser(characters: Array(text.utf8))
        parser.skipSpace()
        try parser.expect(UInt8(ascii: "{"))
        var result: [String: PythonLiteral] = [:]
        while true {
            parser.skipSpace()
            if parser.peek == UInt8(ascii: "}") { parser.position += 1; break }
            let keyOffset = parser.position
            guard case let .string(key) = try parser.parseValue(depth: 0) else {
                throw SyntaxError(offset: keyOffset, reason: "dict keys must be strings")
            }
            guard result[key] == nil else { throw SyntaxError(offset: keyOffset, reason: "duplicate key '\(key)'") }
            parser.skipSpace()
            try parser.expect(UInt8(ascii: ":"))
            result[key] = try parser.parseValue(depth: 0)
            parser.skipSpace()
            if parser.peek == UInt8(ascii: ",") { parser.position += 1; continue }
            parser.skipSpace()
            try parser.expect(UInt8(ascii: "}"))
            break
        }
        parser.skipSpace()
        guard parser.position == parser.characters.count else {
            throw SyntaxError(offset: parser.position, reason: "unexpected text after the dict")
        }
        return result
    }

    private init(characters: [UInt8]) { self.characters = characters }

    private var peek: UInt8? { position < characters.count ? characters[position] : nil }

    private mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x09 || c == 0x0D { position += 1 }
    }

    private mutating func expect(_ c: UInt8) throws(SyntaxError) {
        guard peek == c else { throw SyntaxError(offset: position, reason: "expected '\(Character(Unicode.Scalar(c)))'") }
        position += 1
    }

    private mutating func parseValue(depth: Int) throws(SyntaxError) -> PythonLiteral {
        guard depth < 8 else { throw SyntaxError(offset: position, reason: "nested too deeply") }
        skipSpace()
        guard let c = peek else { throw SyntaxError(offset: position, reason: "unexpected end of header") }
        switch c {
        case UInt8(ascii: "'"), UInt8(ascii: "\""):
            position += 1
            let start = position
            while let d = peek, d != c {
                guard d != UInt8(ascii: "\\") else { throw SyntaxError(offset: position, reason: "escapes are not supported in header strings") }
                position += 1
            }
            guard peek == c else { throw SyntaxError(offset: start - 1, reason: "unterminated string") }
            let text = String(decoding: characters[start..<position], as: UTF8.self)
            position += 1
            return .string(text)
        case UInt8(ascii: "("):
            position += 1
            var items: [PythonLiteral] = []
            while true {
                skipSpace()
                if peek == UInt8(ascii: ")") { position += 1; return .tuple(items) }
                items.append(try parseValue(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") { position += 1; continue }
                try expect(UInt8(ascii: ")"))
                return .tuple(items)
            }
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
            let start = position
            if c == UInt8(ascii: "-") { position += 1 }
            var value = 0
            var digits = 0
            while let d = peek, d >= 0x30, d <= 0x39 {
                let (times10, o1) = value.multipliedReportingOverflow(by: 10)
                let (sum, o2) = times10.addingReportingOverflow(Int(d - 0x30))
                guard !o1, !o2 else { throw SyntaxError(offset: start, reason: "integer too large") }
                value = sum
                digits += 1
                position += 1
            }
            guard digits > 0 else { throw SyntaxError(offset: start, reason: "invalid number") }
            if peek == UInt8(ascii: "L") { position += 1 }
            return .integer(c == UInt8(ascii: "-") ? -value : value)
        default:
            for (word, value) in [("True", true), ("False", false)] {
                let utf8 = Array(word.utf8)
                if position + utf8.count <= characters.count, Array(characters[position..<(position + utf8.count)]) == utf8 {
                    position += utf8.count
                    return .bool(value)
                }
            }
            throw SyntaxError(offset: position, reason: "unexpected character")
        }
    }
}
