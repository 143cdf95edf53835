import Foundation
import LiteCNN
import LiteCNNONNX
import SwiftProtobuf
import XCTest

/// Hand-built graphs: round trips, and every kind of bad input gives a thrown error with context (never a trap).
final class ONNXFileTests: XCTestCase {
    /// input [batch,3,4,4] → Conv(w,b) → Relu → Reshape(Constant shape) → Gemm → logits
    static func smallGraph(opset: Int = 17) -> Graph {
        let w = Tensor(shape: [2, 3, 3, 3], scalars: (0..<54).map { Float($0) * 0.01 - 0.2 }, layout: .plain)
        let b = Tensor(shape: [2], scalars: [0.5, -0.25], layout: .plain)
        let fc = Tensor(shape: [5, 32], scalars: (0..<160).map { Float($0 % 7) * 0.125 }, layout: .plain)
        return Graph(
            name: "small", opsetVersion: opset,
            inputs: [ValueInfo(name: "input", shape: [.symbolic("batch"), .fixed(3), .fixed(4), .fixed(4)])],
            outputs: [ValueInfo(name: "logits", shape: [.symbolic("batch"), .fixed(5)])],
            nodes: [
                Node(name: "conv", opType: "Conv", inputs: ["input", "w", "b"], outputs: ["c"],
                     attributes: ["kernel_shape": .ints([3, 3]), "pads": .ints([1, 1, 1, 1]), "strides": .ints([1, 1]), "group": .int(1)]),
                Node(name: "relu", opType: "Relu", inputs: ["c"], outputs: ["r"]),
                Node(name: "shape", opType: "Constant", inputs: [], outputs: ["s"],
                     attributes: ["value": .tensor(.int([0, -1], shape: [2]))]),
                Node(name: "reshape", opType: "Reshape", inputs: ["r", "s"], outputs: ["flat"]),
                Node(name: "fc", opType: "Gemm", inputs: ["flat", "fc.weight", ""], outputs: ["logits"],
                     attributes: ["transB": .int(1), "alpha": .float(1), "beta": .float(1)]),
            ],
            initializers: ["w": .float(w), "b": .float(b), "fc.weight": .float(fc)],
            metadata: ["litecnn.model": "small", "note": "ünïcode"])
    }

    static func model(_ graph: Graph = smallGraph()) throws -> Onnx_ModelProto {
        try Onnx_ModelProto(serializedBytes: ONNXFile.serialize(graph))
    }

    func parse(_ model: Onnx_ModelProto) throws -> Graph {
        try ONNXFile.parse(try model.serializedBytes(), source: "test.onnx")
    }

    /// Asserts that `body` throws and that the error's description contains every string of `fragments`.
    func assertError(_ fragments: [String], file: StaticString = #filePath, line: UInt = #line, _ body: () throws -> Void) {
        do {
            try body()
            XCTFail("no error; expected one mentioning \(fragments)", file: file, line: line)
        } catch {
            for f in fragments { XCTAssertTrue("\(error)".contains(f), "'\(error)' does not mention '\(f)'", file: file, line: line) }
        }
    }

    // MARK: Round trips

    func testRoundTripIsLosslessForEverySupportedOpset() throws {
        for opset in ONNXFile.supportedOpsets {
            let g = Self.smallGraph(opset: opset)
            let bytes = try ONNXFile.serialize(g)
            assertSameGraph(try ONNXFile.parse(bytes), g, "opset \(opset)")
            let m = try Onnx_ModelProto(serializedBytes: bytes)
            XCTAssertEqual(m.irVersion, opset <= 17 ? 8 : (opset <= 20 ? 9 : 10))
            XCTAssertEqual(m.opsetImport.map(\.version), [Int64(opset)])
            XCTAssertEqual(m.graph.input.first?.type.tensorType.shape.dim.first?.dimParam, "batch")
            let w = try XCTUnwrap(m.graph.initializer.first { $0.name == "w" })
            XCTAssertEqual(w.rawData.count, 54 * 4)
            XCTAssertTrue(w.floatData.isEmpty)
        }
    }

    func testWriteIsAtomicAndLoadReadsItBack() throws {
        let dir = try ONNXFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("m.onnx")
        try Data("old".utf8).write(to: url)
        try ONNXFile.write(Self.smallGraph(), to: url)
        assertSameGraph(try ONNXFile.load(contentsOf: url), Self.smallGraph(), "write/load")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["m.onnx"], "no temporary file left")
        assertError(["does-not-exist"]) { _ = try ONNXFile.write(Self.smallGraph(), to: dir.appendingPathComponent("does-not-exist/m.onnx")) }
    }

    func testTypedFieldsAndOtherDataTypesAreRead() throws {
        var m = try Self.model()
        func tensor(_ name: String, _ type: Onnx_TensorProto.DataType, dims: [Int64], _ fill: (inout Onnx_TensorProto) -> Void) -> Onnx_TensorProto {
            var t = Onnx_TensorProto()
            t.name = name; t.dataType = Int32(type.rawValue); t.dims = dims
            fill(&t)
            return t
        }
        m.graph.initializer += [
            tensor("f", .float, dims: [2]) { $0.floatData = [1.5, -2] },
            tensor("d", .double, dims: [2]) { $0.doubleData = [0.25, 3] },
            tensor("draw", .double, dims: [1]) { t in t.rawData = withUnsafeBytes(of: (2.5 as Double).bitPattern.littleEndian) { Data($0) } },
            tensor("h", .float16, dims: [4]) { $0.int32Data = [0x3C00, 0xC000, 0x0001, 0x7C00] },
            tensor("hraw", .float16, dims: [1]) { $0.rawData = Data([0x00, 0x38]) },
            tensor("i64", .int64, dims: [3]) { $0.int64Data = [1, -2, 3] },
            tensor("i32", .int32, dims: [2]) { $0.rawData = Data([0xff, 0xff, 0xff, 0xff, 7, 0, 0, 0]) },
            tensor("i8", .int8, dims: [2]) { $0.rawData = Data([0xfe, 3]) },
            tensor("u8", .uint8, dims: [2]) { $0.int32Data = [200, 3] },
            tensor("bool", .bool, dims: [3]) { $0.rawData = Data([1, 0, 1]) },
            tensor("scalar", .int64, dims: []) { $0.int64Data = [42] },
            tensor("empty", .float, dims: [0, 3]) { _ in },
        ]
        let g = try parse(m)
        XCTAssertEqual(g.initializers["f"], .float(Tensor(shape: [2], scalars: [1.5, -2], layout: .plain)))
        XCTAssertEqual(g.initializers["d"], .float(Tensor(shape: [2], scalars: [0.25, 3], layout: .plain)))
        XCTAssertEqual(g.initializers["draw"], .float(Tensor(shape: [1], scalars: [2.5], layout: .plain)))
        XCTAssertEqual(g.initializers["h"], .float(Tensor(shape: [4], scalars: [1, -2, 0x1p-24, .infinity], layout: .plain)))
        XCTAssertEqual(g.initializers["hraw"], .float(Tensor(shape: [1], scalars: [0.5], layout: .plain)))
        XCTAssertEqual(g.initializers["i64"], .int([1, -2, 3], shape: [3]))
        XCTAssertEqual(g.initializers["i32"], .int([-1, 7], shape: [2]))
        XCTAssertEqual(g.initializers["i8"], .int([-2, 3], shape: [2]))
        XCTAssertEqual(g.initializers["u8"], .int([200, 3], shape: [2]))
        XCTAssertEqual(g.initializers["bool"], .int([1, 0, 1], shape: [3]))
        XCTAssertEqual(g.initializers["scalar"], .int([42], shape: []))
        XCTAssertEqual(g.initializers["empty"]?.shape, [0, 3])
    }

    func testUnnamedNodesAndInitializerInputs() throws {
        var m = try Self.model()
        m.graph.node[1].name = ""
        var vi = Onnx_ValueInfoProto(); vi.name = "w"   // keep_initializers_as_inputs style
        m.graph.input.append(vi)
        let g = try parse(m)
        XCTAssertEqual(g.nodes[1].name, "Relu_1")
        XCTAssertEqual(g.inputs.map(\.name), ["input"])
    }

    // MARK: Wire format

    /// Initializers are read by a wire-format walk outside swift-protobuf (to take raw_data without copying it); the
    /// protobuf semantics it must keep: fields in any order, a message field given twice merges, unknown fields skip.
    func testInitializersKeepProtobufSemanticsInAnyFieldOrder() throws {
        func varint(_ v: Int) -> Data {
            var bytes: [UInt8] = [], v = UInt64(v)
            repeat { bytes.append(UInt8(v & 0x7f) | (v >= 0x80 ? 0x80 : 0)); v >>= 7 } while v != 0
            return Data(bytes)
        }
        func field(_ number: Int, _ payload: Data) -> Data { varint(number << 3 | 2) + varint(payload.count) + payload }

        let graph = Self.smallGraph()
        var m = try Self.model(graph)
        let initializers = m.graph.initializer
        m.graph.initializer = []
        let graphWithoutInitializers = try m.graph.serializedBytes() as Data
        m.clearGraph()
        // raw_data first, then the other fields, then an unknown field (number 99, varint).
        var tensors = Data()
        for var t in initializers {
            let raw = t.rawData
            t.clearRawData()
            tensors += field(5, field(9, raw) + (try t.serializedBytes() as Data) + varint(99 << 3) + varint(7))
        }
        // The graph split in two occurrences of ModelProto.graph, initializers first: they merge.
        let bytes = field(7, tensors) + (try m.serializedBytes() as Data) + field(7, graphWithoutInitializers)
        assertSameGraph(try ONNXFile.parse(bytes, source: "reordered.onnx"), graph, "reordered fields")

        // A wire type ONNX never uses (3, a group) is an error that gives its offset.
        assertError(["bad.onnx", "offset 0", "wire type 3"]) { _ = try ONNXFile.parse(Data([0x0b]) + bytes, source: "bad.onnx") }
        // A length past the end of an initializer's graph.
        let cut = field(7, varint(5 << 3 | 2) + varint(1_000_000))
        assertError(["cut.onnx", "claims 1000000 bytes"]) { _ = try ONNXFile.parse(cut, source: "cut.onnx") }
    }

    // MARK: Malformed protobuf

    func testTruncatedFilesThrowOrParseButNeverTrap() throws {
        let bytes = try ONNXFile.serialize(Self.smallGraph())
        var thrown = 0
        for length in stride(from: 0, to: bytes.count, by: max(1, bytes.count / 300)) {
            do { _ = try ONNXFile.parse(bytes.prefix(length), source: "cut.onnx") } catch { thrown += 1; XCTAssertTrue("\(error)".contains("cut.onnx"), "\(error)") }
        }
        XCTAssertGreaterThan(thrown, 250)
        for garbage in [Data([0xff]), Data([0x08, 0xff, 0xff, 0xff]), Data(repeating: 0x0a, count: 64), Data("not a model".utf8)] {
            XCTAssertThrowsError(try ONNXFile.parse(garbage))
        }
    }

    func testRandomByteFlipsNeverTrap() throws {
        let bytes = try ONNXFile.serialize(Self.smallGraph())
        var rng = SystemRandomNumberGenerator()
        var failures = 0
        for _ in 0..<2000 {
            var copy = bytes
            for _ in 0..<Int.random(in: 1...4, using: &rng) {
                copy[Int.random(in: 0..<copy.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            }
            do { _ = try ONNXFile.parse(copy) } catch { failures += 1 }
        }
        XCTAssertGreaterThan(failures, 0)
    }

    // MARK: Invalid models

    func testUnsupportedDataTypeNamesTheTensor() throws {
        var m = try Self.model()
        var t = Onnx_TensorProto(); t.name = "labels"; t.dataType = 8; t.dims = [1]; t.stringData = [Data("a".utf8)]
        m.graph.initializer.append(t)
        assertError(["test.onnx", "initializer 'labels'", "unsupported data type 8"]) { _ = try parse(m) }
        m.graph.initializer.removeLast()
        t.dataType = 16; t.rawData = Data([0, 0])  // bfloat16
        m.graph.initializer.append(t)
        assertError(["'labels'", "data type 16"]) { _ = try parse(m) }
    }

    func testLyingLengthsAndDimsAreErrors() throws {
        var m = try Self.model()
        let i = try XCTUnwrap(m.graph.initializer.firstIndex { $0.name == "w" })
        m.graph.initializer[i].rawData = m.graph.initializer[i].rawData.prefix(100)
        assertError(["initializer 'w'", "raw_data holds 100 bytes"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.initializer[i].dims = [1 << 40, 1 << 40, 1 << 40]
        assertError(["initializer 'w'", "too large"]) { _ = try parse(m) }
        m.graph.initializer[i].dims = [1 << 20, 1 << 10]  // 2^30 elements: under the cap, but no data for them
        assertError(["initializer 'w'", "raw_data"]) { _ = try parse(m) }
        m.graph.initializer[i].dims = [-2, -27]
        assertError(["initializer 'w'", "negative dimension"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.initializer[i].clearRawData(); m.graph.initializer[i].floatData = [1, 2, 3]
        assertError(["initializer 'w'", "float_data holds 3 values"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.input[0].type.tensorType.shape.dim[1].dimValue = -3
        assertError(["graph input 'input'", "negative dimension"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.input[0].type.tensorType.elemType = 8
        assertError(["graph input 'input'", "element type 8"]) { _ = try parse(m) }
    }

    func testCycleUnknownInputAndDuplicateOutputNameTheNode() throws {
        var m = try Self.model()
        m.graph.node[0].input[0] = "r"  // conv consumes relu's output: a cycle
        assertError(["node 'conv'", "operator Conv", "opset 17", "'r'", "topological"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.node.swapAt(0, 1)  // order broken, no cycle
        assertError(["node 'relu'", "topological"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.initializer.removeAll { $0.name == "fc.weight" }  // missing initializer
        assertError(["node 'fc'", "operator Gemm", "'fc.weight'", "not produced"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.node[1].output = ["c"]
        assertError(["node 'relu'", "'c'", "already produced"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.output[0].name = "nothing"
        assertError(["graph output 'nothing'"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.initializer.append(m.graph.initializer[0])
        assertError(["defined twice"]) { _ = try parse(m) }
    }

    func testUnsupportedOperatorDomainAndOpset() throws {
        var m = try Self.model()
        m.graph.node[1].opType = "LSTM"
        assertError(["node 'relu'", "operator LSTM", "opset 17", "unsupported operator"]) { _ = try parse(m) }
        do { _ = try parse(m); XCTFail() } catch let e as GraphError {
            XCTAssertEqual(e.node, "relu"); XCTAssertEqual(e.opType, "LSTM"); XCTAssertEqual(e.opset, 17)
        }
        m = try Self.model()
        m.graph.node[1].domain = "com.microsoft"
        assertError(["node 'relu'", "com.microsoft"]) { _ = try parse(m) }
        for opset: Int64 in [7, 12, 22] {
            m = try Self.model()
            m.opsetImport[0].version = opset
            assertError(["opset \(opset)", "unsupported opset"]) { _ = try parse(m) }
        }
        m = try Self.model()
        m.opsetImport[0].domain = "ai.onnx.ml"
        assertError(["no version of the default ONNX domain"]) { _ = try parse(m) }
        XCTAssertThrowsError(try ONNXFile.serialize(Self.smallGraph(opset: 12)))
        XCTAssertEqual(ONNXFile.supportedOperators.count, 33)
    }

    func testAttributesOfTheWrongType() throws {
        var m = try Self.model()
        let k = try XCTUnwrap(m.graph.node[0].attribute.firstIndex { $0.name == "kernel_shape" })
        m.graph.node[0].attribute[k].type = .int
        m.graph.node[0].attribute[k].i = 3
        assertError(["node 'conv'", "attribute 'kernel_shape'", "expected a list of ints"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.node[0].attribute[k].type = .graph
        assertError(["node 'conv'", "kernel_shape", "not supported"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.node[0].attribute.append(m.graph.node[0].attribute[k])
        assertError(["kernel_shape", "defined twice"]) { _ = try parse(m) }
        m = try Self.model()
        m.graph.node[2].attribute[0].t.dataType = 8  // Constant value of type STRING
        assertError(["node 'shape'", "operator Constant", "attribute 'value'"]) { _ = try parse(m) }
    }

    // MARK: External data

    func testExternalDataInsideOutsideAndOutOfBounds() throws {
        let dir = try ONNXFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let sub = dir.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
        let weights = Tensor(shape: [2, 3, 3, 3], scalars: (0..<54).map { Float($0) }, layout: .plain)
        var blob = Data(count: 16)
        weights.scalars.withUnsafeBytes { blob.append(contentsOf: $0) }
        try blob.write(to: sub.appendingPathComponent("w.bin"))
        try blob.write(to: dir.appendingPathComponent("outside.bin"))

        func write(location: String, offset: String? = "16", length: String? = "216") throws -> URL {
            var m = try Self.model()
            let i = m.graph.initializer.firstIndex { $0.name == "w" }!
            m.graph.initializer[i].clearRawData()
            m.graph.initializer[i].dataLocation = .external
            var entries: [(String, String)] = [("location", location)]
            if let offset { entries.append(("offset", offset)) }
            if let length { entries.append(("length", length)) }
            m.graph.initializer[i].externalData = entries.map { var e = Onnx_StringStringEntryProto(); e.key = $0.0; e.value = $0.1; return e }
            let url = sub.appendingPathComponent("m.onnx")
            let bytes: Data = try m.serializedBytes()
            try bytes.write(to: url)
            return url
        }
        let g = try ONNXFile.load(contentsOf: write(location: "w.bin"))
        XCTAssertEqual(g.initializers["w"], .float(weights))
        for bad in ["../outside.bin", "a/../../outside.bin", dir.appendingPathComponent("outside.bin").path, "..\\outside.bin"] {
            assertError(["initializer 'w'", "leaves the model's directory"]) { _ = try ONNXFile.load(contentsOf: write(location: bad)) }
        }
        try FileManager.default.createSymbolicLink(at: sub.appendingPathComponent("link.bin"), withDestinationURL: dir.appendingPathComponent("outside.bin"))
        assertError(["leaves the model's directory"]) { _ = try ONNXFile.load(contentsOf: write(location: "link.bin")) }
        assertError(["outside 'w.bin'"]) { _ = try ONNXFile.load(contentsOf: write(location: "w.bin", offset: "100")) }
        assertError(["length 200"]) { _ = try ONNXFile.load(contentsOf: write(location: "w.bin", length: "200")) }
        assertError(["offset"]) { _ = try ONNXFile.load(contentsOf: write(location: "w.bin", offset: "-4")) }
        assertError(["cannot read external data file 'missing.bin'"]) { _ = try ONNXFile.load(contentsOf: write(location: "missing.bin")) }
        assertError(["length"]) { _ = try ONNXFile.load(contentsOf: write(location: "w.bin", offset: "0", length: nil)) }
    }
}
