import Foundation

/// A protobuf wire-format walk over an ONNX `ModelProto` that takes the initializers' `raw_data` out of the message
/// before swift-protobuf sees it.
///
/// swift-protobuf copies every `bytes` field into a `Data` of its own, and weights are nearly all of a model's bytes:
/// decoding ResNet-18's 45 MB that way, then copying the floats into tensors, took longer than planning the model.
/// `ONNXWire.split` instead finds, without copying anything large:
/// - the model with its graph stripped of initializers (a few kilobytes, decoded by swift-protobuf as before);
/// - for each initializer, its `TensorProto` without `raw_data` (also small) and `raw_data` as a slice of the input
///   (which shares the input's storage: a mapped file stays mapped, and the floats are copied once, into the tensor).
///
/// Field numbers are those of onnx.proto: `ModelProto.graph` = 7, `GraphProto.initializer` = 5,
/// `TensorProto.raw_data` = 9. Repeated occurrences of a message field merge, as protobuf specifies, because the
/// rebuilt message keeps them all in order. Every length and varint is checked against the bytes present; a
/// malformed message throws `ONNXWire.Malformed` with the offset of the bad field.
enum ONNXWire {
    /// An initializer: its `TensorProto` without `raw_data`, and `raw_data` if the field was present.
    struct Initializer {
        var tensorWithoutRawData: Data
        var rawData: Data?
    }

    struct Split {
        /// The `ModelProto` whose graph has no `initializer` fields.
        var model: Data
        var initializers: [Initializer]
    }

    struct Malformed: Error {
        var offset: Int
        var message: String
    }

    private enum Field {
        static let modelGraph = 7
        static let graphInitializer = 5
        static let tensorRawData = 9
    }

    /// Splits `data` (a serialized `ModelProto`) as described above.
    static func split(_ data: Data) throws -> Split {
        var model = Data()
        var graph = Data()
        var initializers: [Initializer] = []
        var hasGraph = false
        try walk(data, range: data.startIndex..<data.endIndex) { field, span, payload in
            if field == Field.modelGraph, let payload {
                hasGraph = true
                try walk(data, range: payload) { field, span, payload in
                    if field == Field.graphInitializer, let payload {
                        initializers.append(try initializer(data, range: payload))
                    } else {
                        graph.append(data[span])
                    }
                }
            } else {
                model.append(data[span])
            }
        }
        if hasGraph {
            model.append(tag(field: Field.modelGraph, wireType: 2))
            model.append(varint(UInt64(graph.count)))
            model.append(graph)
        }
        return Split(model: model, initializers: initializers)
    }

    private static func initializer(_ data: Data, range: Range<Int>) throws -> Initializer {
        var rest = Data()
        var raw: Data?
        try walk(data, range: range) { field, span, payload in
            if field == Field.tensorRawData, let payload {
                raw = data[payload]
            } else {
                rest.append(data[span])
            }
        }
        return Initializer(tensorWithoutRawData: rest, rawData: raw)
    }

    /// Calls `visit(fieldNumber, span of the whole field, payload range if length-delimited)` for each top-level field
    /// of the message in `data[range]`.
    private static func walk(_ data: Data, range: Range<Int>,
                             _ visit: (Int, Range<Int>, Range<Int>?) throws -> Void) throws {
        var offset = range.lowerBound
        while offset < range.upperBound {
            let start = offset
            let key = try readVarint(data, &offset, end: range.upperBound)
            let field = Int(key >> 3)
            guard field > 0, key >> 3 <= 0x1fff_ffff else {
                throw Malformed(offset: start - data.startIndex, message: "invalid field number \(key >> 3)")
            }
            var payload: Range<Int>?
            switch key & 7 {
            case 0:
                _ = try readVarint(data, &offset, end: range.upperBound)
            case 1, 5:
                let width = key & 7 == 1 ? 8 : 4
                guard range.upperBound - offset >= width else {
                    throw Malformed(offset: start - data.startIndex, message: "field \(field) is cut off")
                }
                offset += width
            case 2:
                let lengthAt = offset
                let length = try readVarint(data, &offset, end: range.upperBound)
                guard length <= UInt64(range.upperBound - offset) else {
                    throw Malformed(offset: lengthAt - data.startIndex,
                                    message: "field \(field) claims \(length) bytes, \(range.upperBound - offset) remain")
                }
                payload = offset..<(offset + Int(length))
                offset += Int(length)
            default:
                throw Malformed(offset: start - data.startIndex,
                                message: "field \(field) has wire type \(key & 7), which ONNX does not use")
            }
            try visit(field, start..<offset, payload)
        }
    }

    private static func readVarint(_ data: Data, _ offset: inout Int, end: Int) throws -> UInt64 {
        let start = offset
        var value: UInt64 = 0
        var shift: UInt64 = 0
        while true {
            guard offset < end else {
                throw Malformed(offset: start - data.startIndex, message: "a varint is cut off")
            }
            let byte = data[offset]
            offset += 1
            guard shift < 64, shift < 63 || byte <= 1 else {
                throw Malformed(offset: start - data.startIndex, message: "a varint is longer than 64 bits")
            }
            value |= UInt64(byte & 0x7f) << shift
            if byte & 0x80 == 0 { return value }
            shift += 7
        }
    }

    private static func tag(field: Int, wireType: UInt64) -> Data { varint(UInt64(field) << 3 | wireType) }

    private static func varint(_ value: UInt64) -> Data {
        var bytes: [UInt8] = []
        var v = value
        repeat {
            bytes.append(UInt8(v & 0x7f) | (v >= 0x80 ? 0x80 : 0))
            v >>= 7
        } while v != 0
        return Data(bytes)
    }
}
