import Foundation
import LiteCNN
import XCTest

final class CompressedFileTests: XCTestCase {
    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lcz-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A simple stand-in for weight sharing: uniform codebook between min and max, magnitudes below `threshold` → 0.
    static func uniformCodebook(_ t: Tensor, bits: Int, threshold: Float) -> CodebookTensor {
        let lo = t.scalars.min() ?? 0, hi = t.scalars.max() ?? 0
        let levels = (1 << bits) - 1
        let codebook = [Float(0)] + (0..<levels).map { lo + (hi - lo) * Float($0) / Float(max(1, levels - 1)) }
        let indices = t.scalars.map { v -> UInt8 in
            if abs(v) < threshold { return 0 }
            var best = 1
            for k in 1..<codebook.count where abs(codebook[k] - v) < abs(codebook[best] - v) { best = k }
            return UInt8(best)
        }
        return CodebookTensor(shape: t.shape, bits: bits, codebook: codebook, indices: indices)
    }

    static func squeezeNetGraph() throws -> Graph {
        try exportGraph(ModelZoo.build("squeezenet1_1", options: ModelOptions(classCount: 10)), inputChannels: 3, height: 32, width: 32)
    }

    func testZooModelRoundTripsThroughTheFileBitIdentically() throws {
        let graph = try Self.squeezeNetGraph()
        var tensors: [String: StoredTensor] = [:]
        var k = 0
        for (name, constant) in graph.initializers.sorted(by: { $0.key < $1.key }) {
            guard case let .float(t) = constant else { continue }
            k += 1
            if t.shape.count == 4 {
                // Alternate the forms Deep Compression and linear quantization produce (fp32 for small layers).
                switch t.count < 10_000 ? 2 : k % 2 {
                case 0:
                    tensors[name] = StoredTensor(encoding: .codebook(Self.uniformCodebook(t, bits: 6, threshold: 0.02)),
                                                 sparse: true, indexBits: 8, huffman: true)
                case 1:
                    let m = t.scalars.map { abs($0) }.max() ?? 1
                    let scale = max(m, 1e-6) / 127
                    tensors[name] = StoredTensor(encoding: .linear(LinearQuantizedTensor(
                        shape: t.shape, bits: 8, symmetric: true, axis: nil, scales: [scale], zeroPoints: [0],
                        values: t.scalars.map { Int32(($0 / scale).rounded()) })), huffman: true)
                default:
                    tensors[name] = StoredTensor(encoding: .float32(t), sparse: false)
                }
            } else {
                tensors[name] = StoredTensor(encoding: .float16(Tensor(shape: t.shape, scalars: t.scalars.map { Float(Float16($0)) })))
            }
        }
        XCTAssertGreaterThan(tensors.count, 40)
        let model = CompressedModel(graph: graph, tensors: tensors,
                                    activationRanges: ["input": -2.5...2.5, "relu_1": 0...6.25],
                                    metadata: ["bits": "6", "top1": "0.734"])
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("squeezenet.\(CompressedModelFile.fileExtension)")
        try CompressedModelFile.write(model, to: url)
        let bytes = try CompressedModelFile.serialize(model)
        let onDisk = try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! Int
        XCTAssertEqual(onDisk, bytes.count, "the file's size is the serialized size")
        XCTAssertEqual(try CompressedModelFile.sizeBreakdown(model).total, onDisk)
        XCTAssertEqual(try CompressedModelFile.serialize(model), bytes, "serialization is deterministic")
        XCTAssertTrue(CompressedModelFile.looksLikeCompressedModel(url))
        // Leftover temporary files of the atomic write: none.
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), [url.lastPathComponent])

        let back = try CompressedModelFile.read(url)
        XCTAssertEqual(back.tensors, tensors)
        XCTAssertEqual(back.activationRanges, model.activationRanges)
        XCTAssertEqual(back.metadata, model.metadata)
        XCTAssertEqual(back.graph.nodes, graph.nodes)
        XCTAssertEqual(back.graph.inputs, graph.inputs)
        XCTAssertEqual(back.graph.outputs, graph.outputs)
        XCTAssertEqual(back.graph.metadata, graph.metadata)
        XCTAssertEqual(back.graph.opsetVersion, graph.opsetVersion)

        let decoded = try back.decodedGraph()
        XCTAssertEqual(Set(decoded.initializers.keys), Set(graph.initializers.keys))
        for (name, stored) in tensors {
            guard case let .float(t)? = decoded.initializers[name] else { XCTFail("\(name) not a float initializer"); continue }
            let expected = stored.encoding.decoded()
            XCTAssertEqual(t.shape, expected.shape, name)
            XCTAssertEqual(t.layout, .plain)
            XCTAssertEqual(t.scalars.map(\.bitPattern), expected.scalars.map(\.bitPattern), name)
        }
        // The compressed file is much smaller than the fp32 parameters.
        var fp32Bytes = 0
        for case let .float(t) in graph.initializers.values { fp32Bytes += 4 * t.count }
        XCTAssertLessThan(onDisk, fp32Bytes / 3)
    }

    func testFloat32FileReproducesTheOriginalGraphsInitializersAndRuns() throws {
        let graph = try Self.squeezeNetGraph()
        var tensors: [String: StoredTensor] = [:]
        for (name, constant) in graph.initializers { if case let .float(t) = constant { tensors[name] = StoredTensor(encoding: .float32(t)) } }
        let model = CompressedModel(graph: graph, tensors: tensors)
        let back = try CompressedModelFile.parse(try CompressedModelFile.serialize(model), source: "fp32")
        let decoded = try back.decodedGraph()
        for (name, constant) in graph.initializers {
            switch (constant, decoded.initializers[name]) {
            case let (.float(a), .float(b)?):
                XCTAssertEqual(a.shape, b.shape, name)
                XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern), name)
            case let (.int(a, sa), .int(b, sb)?):
                XCTAssertEqual(a, b, name)
                XCTAssertEqual(sa, sb, name)
            default:
                XCTFail("\(name) differs in kind")
            }
        }
        // Outputs of the runtime on both graphs are identical.
        let input = Tensor(shape: [1, 3, 32, 32], scalars: (0..<(32 * 32 * 3)).map { Float(sin(Double($0) * 0.37)) })
        let a = try InferenceEngine(graph: graph).run(input)
        let b = try InferenceEngine(graph: decoded).run(input)
        XCTAssertEqual(a.scalars.map(\.bitPattern), b.scalars.map(\.bitPattern))
    }

    func testSizeBreakdownAddsUp() throws {
        var rng = TestRandom(21)
        let c = CodebookTensor(shape: [300], bits: 5, codebook: (0..<32).map { Float($0) },
                               indices: (0..<300).map { _ in rng.unit() < 0.6 ? 0 : UInt8(rng.int(1..<32)) })
        let model = CompressedModel(graph: SparseCodingTests.emptyGraph(),
                                    tensors: ["a": StoredTensor(encoding: .codebook(c), sparse: true, indexBits: 4, huffman: true),
                                              "b": StoredTensor(encoding: .float32(Tensor(shape: [7], repeating: 1.5)))],
                                    metadata: ["k": "v"])
        let bytes = try CompressedModelFile.serialize(model)
        let b = try CompressedModelFile.sizeBreakdown(model)
        XCTAssertEqual(b.total, bytes.count)
        XCTAssertEqual(b.sections.map(\.name), ["header", "architecture", "tensors", "activation ranges", "metadata", "checksum"])
        XCTAssertEqual(b.sections.reduce(0) { $0 + $1.bytes }, bytes.count)
        let tensorsSection = b.sections.first { $0.name == "tensors" }!.bytes
        XCTAssertEqual(b.tensors.reduce(0) { $0 + $1.bytes }, tensorsSection - 12 - 1, "section header and tensor count aside")
        XCTAssertEqual(b.tensors.map(\.name), ["a", "b"])
        XCTAssertEqual(b.tensors[1].valueBytes, 1 + 28)
        XCTAssertEqual(b.tensors[0].encoding, "codebook 5-bit (32 entries), sparse (4-bit gaps), Huffman")
        // The breakdown read back from the bytes is the same.
        XCTAssertEqual(try CompressedModelFile.sizeBreakdown(ofFile: bytes, source: "b"), b)
    }

    func testHeaderVersionAndChecksumAreChecked() throws {
        let model = CompressedModel(graph: SparseCodingTests.emptyGraph(),
                                    tensors: ["w": StoredTensor(encoding: .float32(Tensor(shape: [3], scalars: [1, 2, 3])))])
        let bytes = try CompressedModelFile.serialize(model)
        XCTAssertEqual(Array(bytes.prefix(8)), CompressedModelFile.magic)
        func error(_ b: [UInt8]) -> CompressedFileError? {
            do { _ = try CompressedModelFile.parse(b, source: "x.lcz"); return nil } catch { return error as? CompressedFileError }
        }
        var notMagic = bytes
        notMagic[1] = UInt8(ascii: "X")
        XCTAssertEqual(error(notMagic)?.section, "header")
        var future = bytes
        future[8] = 2
        future = CompressedFileFuzzTests.resealed(future)
        XCTAssertEqual(error(future)?.section, "header")
        XCTAssertTrue(error(future)?.description.contains("version 2.0") ?? false)
        var flipped = bytes
        flipped[20] ^= 4
        let e = error(flipped)
        XCTAssertEqual(e?.section, "checksum")
        XCTAssertEqual(e?.offset, bytes.count - 4)
        XCTAssertEqual(e?.file, "x.lcz")
        // A newer minor version with an extra unknown section is still read.
        var newer = Array(bytes.dropLast(4))
        newer[10] = 7
        newer += Array("XTRA".utf8) + [3, 0, 0, 0, 0, 0, 0, 0] + [1, 2, 3]
        newer = CompressedFileFuzzTests.resealed(newer + [0, 0, 0, 0])
        XCTAssertEqual(try CompressedModelFile.parse(newer, source: "newer").tensors, model.tensors)
    }

    func testInvalidModelsAndPathsAreRefusedWithErrors() throws {
        var graph = SparseCodingTests.emptyGraph()
        graph.inputs = [ValueInfo(name: "x", shape: [.fixed(1)])]
        let clash = CompressedModel(graph: graph, tensors: ["x": StoredTensor(encoding: .float32(Tensor(shape: [1], scalars: [1])))])
        XCTAssertThrowsError(try CompressedModelFile.serialize(clash)) { XCTAssertEqual(($0 as? CompressedFileError)?.tensor, "x") }
        XCTAssertThrowsError(try clash.decodedGraph()) { XCTAssertTrue($0 is CompressedFileError) }
        let missing = URL(fileURLWithPath: "/nonexistent-dir-\(UUID().uuidString)/m.lcz")
        XCTAssertThrowsError(try CompressedModelFile.write(CompressedModel(graph: SparseCodingTests.emptyGraph()), to: missing)) {
            XCTAssertEqual(($0 as? CompressedFileError)?.file, missing.path)
        }
        XCTAssertThrowsError(try CompressedModelFile.read(missing)) { XCTAssertTrue($0 is CompressedFileError) }
        XCTAssertFalse(CompressedModelFile.looksLikeCompressedModel(missing))
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let onnx = dir.appendingPathComponent("m.onnx")
        try ONNXFile.write(SparseCodingTests.emptyGraph(), to: onnx)
        XCTAssertFalse(CompressedModelFile.looksLikeCompressedModel(onnx))
    }

    func testActivationRangesAndMetadataRoundTrip() throws {
        let model = CompressedModel(graph: SparseCodingTests.emptyGraph(),
                                    activationRanges: ["a": -1...1, "b/é": 0...0, "c": -.greatestFiniteMagnitude ... .infinity],
                                    metadata: ["": "empty key", "ключ": "значение", "json": "{\"top1\": 0.5}"])
        let back = try CompressedModelFile.parse(try CompressedModelFile.serialize(model), source: "m")
        XCTAssertEqual(back.activationRanges, model.activationRanges)
        XCTAssertEqual(back.metadata, model.metadata)
        XCTAssertTrue(back.tensors.isEmpty)
    }
}
