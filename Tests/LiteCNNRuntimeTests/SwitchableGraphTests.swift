import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor
import _TestSupport
import XCTest

/// Graphs with alternatives (`ai.litecnn` `Select` + `litecnn_alternative` tags): every selection computes exactly what
/// the plain graph of that selection computes, switching never tears a run, and malformed alternatives are refused.
final class SwitchableGraphTests: XCTestCase {
    /// input [N,3,9,9] → conv+relu → group 0 (3 alternatives, one with its own layout-sensitive Concat) → residual Add →
    /// group 1 (2 alternatives, one strided) → global pool → flatten.
    func switchableGraph() -> Graph {
        let m = GraphMaker(seed: 11)
        let x = m.op1("Relu", [m.conv("input", 3, 6, ["pads": .ints([1, 1, 1, 1])])])
        func tagged(_ g: Int, _ a: Int, _ body: () -> String) -> String {
            let start = m.nodes.count
            let out = body()
            for i in start..<m.nodes.count { m.nodes[i].attributes[alternativeAttribute] = .ints([g, a]) }
            return out
        }
        let a0 = tagged(0, 0) { m.op1("Relu", [m.batchNorm(m.conv(x, 6, 6, bias: false, ["pads": .ints([1, 1, 1, 1])]), 6)]) }
        let a1 = tagged(0, 1) {
            let row = m.conv(x, 6, 6, k: [1, 3], ["pads": .ints([0, 1, 0, 1])])
            return m.conv(row, 6, 6, k: [3, 1], ["pads": .ints([1, 0, 1, 0])])
        }
        let a2 = tagged(0, 2) {
            let left = m.conv(x, 6, 2, k: [1, 1]), right = m.conv(x, 6, 4, k: [3, 3], ["pads": .ints([1, 1, 1, 1])])
            return m.op1("Concat", [left, right], ["axis": .int(1)])
        }
        let s0 = m.name("select")
        m.nodes.append(Node(name: m.name("Select_node"), opType: "Select", domain: alternativesDomain, inputs: [a0, a1, a2],
                            outputs: [s0], attributes: ["group": .int(0)]))
        let sum = m.op1("Add", [s0, x])
        let b0 = tagged(1, 0) { m.conv(sum, 6, 8, ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])]) }
        let b1 = tagged(1, 1) { m.op1("Relu", [m.conv(sum, 6, 8, k: [1, 1], ["strides": .ints([2, 2])])]) }
        let s1 = m.name("select")
        m.nodes.append(Node(name: m.name("Select_node"), opType: "Select", domain: alternativesDomain, inputs: [b0, b1],
                            outputs: [s1], attributes: ["group": .int(1)]))
        let y = m.op1("Flatten", [m.op1("GlobalAveragePool", [s1])])
        return m.graph(input: [.symbolic("N"), .fixed(3), .fixed(9), .fixed(9)], output: y)
    }

    /// The same graph with every Select replaced by an Identity of the chosen input and the tags removed.
    func plain(_ graph: Graph, selection: [Int]) -> Graph {
        var g = graph
        g.nodes = graph.nodes.map { node in
            var n = node
            n.attributes[alternativeAttribute] = nil
            if n.domain == alternativesDomain {
                let group = n.int("group")!
                n = Node(name: n.name, opType: "Identity", inputs: [n.inputs[selection[group]]], outputs: n.outputs)
            }
            return n
        }
        return g
    }

    func testEverySelectionMatchesItsPlainGraph() throws {
        let graph = switchableGraph()
        let engine = try InferenceEngine(graph: graph)
        XCTAssertEqual(engine.alternativeCounts, [3, 2])
        XCTAssertEqual(engine.selection, [0, 0])
        let input = randomInput([2, 3, 9, 9])
        var outputs: [[Float]] = []
        for a in 0..<3 {
            for b in 0..<2 {
                try engine.select([a, b])
                let got = try engine.run(input)
                let want = try InferenceEngine(graph: plain(graph, selection: [a, b])).run(input)
                XCTAssertEqual(got.shape, [2, 8])
                let scale = want.scalars.map(abs).max()!
                let diff = zip(got.scalars, want.scalars).map { abs($0 - $1) }.max()!
                XCTAssertLessThanOrEqual(diff, 1e-5 * scale, "selection [\(a), \(b)]")
                outputs.append(got.scalars)
            }
        }
        // Every selection computes something different: the test would notice a Select that ignored the selection.
        for i in outputs.indices { for j in outputs.indices where j > i { XCTAssertNotEqual(outputs[i], outputs[j]) } }
    }

    func testSkippedAlternativesCostNothing() throws {
        let engine = try InferenceEngine(graph: switchableGraph())
        let input = randomInput([1, 3, 9, 9])
        try engine.select([1, 0])
        let steps = try engine.profile(input, runs: 1)
        // Steps of unselected alternatives report zero time; the selected ones ran.
        let convs = steps.filter { $0.op.hasPrefix("Conv") }
        XCTAssertTrue(convs.contains { $0.milliseconds == 0 })
        XCTAssertTrue(convs.contains { $0.milliseconds > 0 })
    }

    func testSwitchingUnderConcurrentRunsNeverMixesSelections() throws {
        let graph = switchableGraph()
        let engine = try InferenceEngine(graph: graph)
        let input = randomInput([1, 3, 9, 9])
        let selections = [[0, 0], [2, 1]]
        let references = try selections.map { try InferenceEngine(graph: plain(graph, selection: $0)).run(input).scalars }
        XCTAssertNotEqual(references[0], references[1])
        let (counts, _) = try Tally.runWhileSwitching(
            iterations: 300, references: references,
            matches: { ref, y in zip(ref, y).allSatisfy { abs($0 - $1) <= 1e-5 * max(1, abs($0)) } },
            run: { try engine.run(input).scalars }, minimumSwitches: 20, switchTo: { try engine.select(selections[$0]) })
        XCTAssertEqual(counts.failures, 0)
        XCTAssertEqual(counts.torn, 0, "a run mixed two selections")
        XCTAssertGreaterThanOrEqual(counts.seen.reduce(0, +), 600, "every run matched a reference")
        XCTAssertGreaterThan(counts.seen[0], 0)
        XCTAssertGreaterThan(counts.seen[1], 0)
    }

    func testInvalidSelectionsAndAlternativesAreRefused() throws {
        let graph = switchableGraph()
        let engine = try InferenceEngine(graph: graph)
        XCTAssertThrowsError(try engine.select([0])) { XCTAssertTrue("\($0)".contains("2 groups"), "\($0)") }
        XCTAssertThrowsError(try engine.select([3, 0])) { XCTAssertTrue("\($0)".contains("group 0"), "\($0)") }
        XCTAssertThrowsError(try engine.select([0, -1]))
        XCTAssertEqual(engine.selection, [0, 0], "a refused selection changes nothing")

        var noGroup = graph
        let i = noGroup.nodes.firstIndex { $0.domain == alternativesDomain }!
        noGroup.nodes[i].attributes["group"] = nil
        XCTAssertThrowsError(try InferenceEngine(graph: noGroup)) { XCTAssertTrue("\($0)".contains("group"), "\($0)") }

        var badTag = graph
        let j = badTag.nodes.firstIndex { $0.ints(alternativeAttribute) != nil }!
        badTag.nodes[j].attributes[alternativeAttribute] = .ints([0, 7])
        XCTAssertThrowsError(try InferenceEngine(graph: badTag)) { XCTAssertTrue("\($0)".contains("litecnn_alternative"), "\($0)") }

        var duplicate = graph
        let k = duplicate.nodes.lastIndex { $0.domain == alternativesDomain }!
        duplicate.nodes[k].attributes["group"] = .int(0)
        XCTAssertThrowsError(try InferenceEngine(graph: duplicate)) { XCTAssertTrue("\($0)".contains("two Select"), "\($0)") }
    }
}
