import Foundation
import LiteCNN
import LiteCNNONNX
import XCTest
import _TestSupport

/// Every PyTorch-exported fixture parses into the graph PyTorch wrote (node count, operator types, initializers,
/// dims, weights), survives a round trip through `serialize`, and refuses to load without its weights file.
final class ONNXFixtureTests: XCTestCase {
    func testFixturesArePresent() {
        XCTAssertGreaterThanOrEqual(ONNXFixtures.cases.count, 12, "onnx_fixtures.json missing or truncated")
    }

    func testParseEveryFixture() throws {
        let dir = try ONNXFixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for c in ONNXFixtures.cases where c.model != "alexnet" {  // alexnet's 244 MB are covered by the parity test
            let url = try ONNXFixtures.materialize(c, in: dir)
            let graph = try ONNXFile.load(contentsOf: url)
            XCTAssertEqual(graph.opsetVersion, c.opset, c.model)
            XCTAssertEqual(graph.nodes.count, c.node_count, c.model)
            XCTAssertEqual(Set(graph.nodes.map(\.opType)), Set(c.op_types), c.model)
            XCTAssertEqual(graph.initializers.count, c.initializer_count, c.model)
            XCTAssertEqual(graph.inputs.map(\.name), ["input"], c.model)
            XCTAssertEqual(graph.inputs.first?.shape, [.symbolic("batch"), .fixed(3), .fixed(c.input_nchw[2]), .fixed(c.input_nchw[3])], c.model)
            XCTAssertEqual(graph.outputs.map(\.name), ["logits"], c.model)
            // Every state_dict initializer (external or inline) holds the formula's values with PyTorch's dims.
            var checked = 0
            for (name, constant) in graph.initializers where !name.hasPrefix("onnx::") {
                guard case let .float(t) = constant else { XCTFail("\(c.model): \(name) is not float"); continue }
                let expected = ClosedFormWeights.tensor(name: name, shape: t.shape)
                XCTAssertEqual(t.scalars, expected.scalars, "\(c.model): \(name)")
                checked += 1
            }
            XCTAssertGreaterThanOrEqual(checked, c.external_initializers, c.model)
            // Round trip: Graph → bytes → Graph is lossless, and writing is deterministic.
            let bytes = try ONNXFile.serialize(graph)
            let again = try ONNXFile.parse(bytes, source: c.file)
            assertSameGraph(again, graph, c.model)
            XCTAssertEqual(try ONNXFile.serialize(again), bytes, c.model)
            try? FileManager.default.removeItem(at: url.deletingPathExtension().appendingPathExtension("weights"))
        }
    }

    func testFixtureWithoutItsWeightsFileIsAnError() throws {
        let c = try XCTUnwrap(ONNXFixtures.cases.first { $0.model == "resnet18" })
        let url = ONNXFixtures.directory.appendingPathComponent(c.file)
        XCTAssertThrowsError(try ONNXFile.load(contentsOf: url)) { error in
            XCTAssertTrue("\(error)".contains("resnet18.weights"), "\(error)")
        }
        XCTAssertThrowsError(try ONNXFile.parse(Data(contentsOf: url))) { error in
            XCTAssertTrue("\(error)".contains("external data"), "\(error)")
        }
    }
}

func assertSameGraph(_ a: Graph, _ b: Graph, _ context: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.name, b.name, context, file: file, line: line)
    XCTAssertEqual(a.opsetVersion, b.opsetVersion, context, file: file, line: line)
    XCTAssertEqual(a.inputs, b.inputs, context, file: file, line: line)
    XCTAssertEqual(a.outputs, b.outputs, context, file: file, line: line)
    XCTAssertEqual(a.nodes, b.nodes, context, file: file, line: line)
    XCTAssertEqual(a.initializers, b.initializers, context, file: file, line: line)
    XCTAssertEqual(a.metadata, b.metadata, context, file: file, line: line)
}
