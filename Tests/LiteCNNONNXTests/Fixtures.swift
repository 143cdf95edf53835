import Foundation
import LiteCNN
import LiteCNNONNX
import SwiftProtobuf
import XCTest
import _TestSupport

/// The PyTorch-exported fixtures of `scripts/make_onnx_fixtures.py`: small `.onnx` graph files whose large
/// initializers live in an external `NAME.weights` file that is NOT committed. `materialize` regenerates it
/// byte-exactly from each external initializer's name (a state_dict name) with `ClosedFormWeights` — the formula of
/// `scripts/make_model_goldens.py` — into a temporary directory beside a copy of the graph file.
enum ONNXFixtures {
    struct Case: Decodable {
        var model: String
        var file: String
        var opset: Int
        var classes: Int
        var input_nchw: [Int]
        var output: [Float]
        var output_shape: [Int]
        var node_count: Int
        var initializer_count: Int
        var external_initializers: Int
        var op_types: [String]
    }

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static let cases: [Case] = {
        struct Root: Decodable { var cases: [Case] }
        guard let data = try? Data(contentsOf: directory.appendingPathComponent("onnx_fixtures.json")),
              let root = try? JSONDecoder().decode(Root.self, from: data) else { return [] }
        return root.cases
    }()

    /// A fresh temporary directory (removed by the caller).
    static func temporaryDirectory() throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-onnx-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Copies the fixture's graph into `dir` and writes its external weights file there; returns the graph's URL.
    static func materialize(_ c: Case, in dir: URL) throws -> URL {
        let source = directory.appendingPathComponent(c.file)
        let bytes = try Data(contentsOf: source)
        let model = try Onnx_ModelProto(serializedBytes: bytes)
        var files: [String: Data] = [:]
        for t in model.graph.initializer where t.dataLocation == .external {
            var info: [String: String] = [:]
            for e in t.externalData { info[e.key] = e.value }
            let location = try XCTUnwrap(info["location"])
            let offset = Int(info["offset"] ?? "0")!
            let tensor = ClosedFormWeights.tensor(name: t.name, shape: t.dims.map { Int($0) })
            var blob = files[location] ?? Data()
            if blob.count < offset + 4 * tensor.count { blob.append(Data(count: offset + 4 * tensor.count - blob.count)) }
            tensor.scalars.withUnsafeBytes { raw in
                // Little-endian float32, as onnx writes raw data (this test runs on little-endian hosts only).
                blob.replaceSubrange(offset..<(offset + raw.count), with: raw)
            }
            XCTAssertEqual(Int(info["length"] ?? "-1"), 4 * tensor.count, "\(c.model): \(t.name)")
            files[location] = blob
        }
        for (location, blob) in files { try blob.write(to: dir.appendingPathComponent(location)) }
        let url = dir.appendingPathComponent(c.file)
        try bytes.write(to: url)
        return url
    }
}
