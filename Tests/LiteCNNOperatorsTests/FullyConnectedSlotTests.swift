// Fully connected slots: which Gemms `OperatorSlots.find(…, fullyConnected: true)` makes slots of, the low-rank
// operator on them (closed forms against its graph, exact truncated-SVD initialization, gradients), switching and
// fine-tuning with them in a base network, building and selecting with them, and the bank file's 1.2 keys.
import Foundation
import LiteCNN
import XCTest
import _TestSupport

/// A tiny base with a classifier: image `[N, 3, 6, 6]` → stem 3×3 Conv (BN, ReLU) → global pool → flatten `[N, 8]` →
/// `fc1` Gemm 8→10 (`transB` 1, bias) → ReLU → `fc2` Gemm 10→6 (`transB` 0, no bias, no ReLU) → `fc3` Gemm 6→4
/// (`transB` 1, bias) → logits, the graph's output. Every classifier weight has rank 2 (unless `genericWeights`), so
/// low rank with R ≥ 2 is exact. `fc2Alpha` ≠ 1 makes `fc2` a Gemm that is not a slot.
enum FullyConnectedFixtures {
    static let imageShape = [3, 6, 6]

    /// A `[rows, cols]` matrix of rank `rank` (product of two seeded random factors).
    static func lowRankMatrix(_ rows: Int, _ cols: Int, rank: Int, seed: UInt64) -> Tensor {
        let a = randomTensor([rows, rank], seed: seed).scalars, b = randomTensor([rank, cols], seed: seed + 1).scalars
        var m = [Float](repeating: 0, count: rows * cols)
        for i in 0..<rows { for j in 0..<cols { for r in 0..<rank { m[i * cols + j] += a[i * rank + r] * b[r * cols + j] } } }
        return Tensor(shape: [rows, cols], scalars: m, layout: .plain)
    }

    static func base(fc2Alpha: Float = 1, allAlphas: Float? = nil, genericWeights: Bool = false) -> Graph {
        var initializers: [String: Constant] = [
            "stem.w": .float(randomTensor([8, 3, 3, 3], seed: 1, range: -0.5...0.5)),
            "stem.g": .float(randomTensor([8], seed: 2, range: 0.8...1.2)), "stem.b": .float(randomTensor([8], seed: 3, range: 0...0.3)),
            "stem.m": .float(randomTensor([8], seed: 4, range: -0.1...0.1)), "stem.v": .float(randomTensor([8], seed: 5, range: 0.5...1.5)),
            "fc1.b": .float(randomTensor([10], seed: 6, range: -0.2...0.2)), "fc3.b": .float(randomTensor([4], seed: 7, range: -0.2...0.2)),
        ]
        func weight(_ rows: Int, _ cols: Int, seed: UInt64) -> Constant {
            .float(genericWeights ? randomTensor([rows, cols], seed: seed) : lowRankMatrix(rows, cols, rank: 2, seed: seed))
        }
        initializers["fc1.w"] = weight(10, 8, seed: 10)      // [C, C_i], transB 1
        initializers["fc2.w"] = weight(10, 6, seed: 20)      // [C_i, C], transB 0
        initializers["fc3.w"] = weight(4, 6, seed: 30)       // [C, C_i], transB 1
        func gemm(_ name: String, _ inputs: [String], _ output: String, transB: Int?, alpha: Float) -> Node {
            var attributes: [String: Attribute] = [:]
            if let transB { attributes["transB"] = .int(transB) }
            if let a = allAlphas ?? (alpha == 1 ? nil : alpha) { attributes["alpha"] = .float(a) }
            return Node(name: name, opType: "Gemm", inputs: inputs, outputs: [output], attributes: attributes)
        }
        let nodes = [
            Node(name: "stem/conv", opType: "Conv", inputs: ["image", "stem.w"], outputs: ["stem.c"],
                 attributes: ["pads": .ints([1, 1, 1, 1]), "kernel_shape": .ints([3, 3])]),
            Node(name: "stem/bn", opType: "BatchNormalization", inputs: ["stem.c", "stem.g", "stem.b", "stem.m", "stem.v"],
                 outputs: ["stem.n"]),
            Node(name: "stem/relu", opType: "Relu", inputs: ["stem.n"], outputs: ["stem.r"]),
            Node(name: "pool", opType: "GlobalAveragePool", inputs: ["stem.r"], outputs: ["pooled"]),
            Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["flat"]),
            gemm("fc1", ["flat", "fc1.w", "fc1.b"], "fc1.y", transB: 1, alpha: 1),
            Node(name: "fc1/relu", opType: "Relu", inputs: ["fc1.y"], outputs: ["fc1.r"]),
            gemm("fc2", ["fc1.r", "fc2.w"], "fc2.y", transB: nil, alpha: fc2Alpha),
            gemm("fc3", ["fc2.y", "fc3.w", "fc3.b"], "logits", transB: 1, alpha: 1),
        ]
        return Graph(inputs: [ValueInfo(name: "image", shape: [.symbolic("N"), .fixed(3), .fixed(6), .fixed(6)])],
                     outputs: [ValueInfo(name: "logits", shape: nil)], nodes: nodes, initializers: initializers)
    }

    static func slots(_ graph: Graph = base()) throws -> [OperatorSlot] {
        try OperatorSlots.find(in: graph, imageShape: imageShape, fullyConnected: true)
    }

    /// NCHW images for the runtime.
    static func images(_ n: Int, seed: UInt64) -> Tensor {
        Tensor(shape: [n, 3, 6, 6], scalars: randomTensor([n * 108], seed: seed).scalars, layout: .nchw)
    }

    /// NHWC labelled batches for building and fine-tuning.
    static func batches(_ count: Int, batch: Int = 8, seed: UInt64 = 11) -> [LabeledBatch] {
        (0..<count).map { b in
            LabeledBatch(images: Tensor(shape: [batch, 6, 6, 3], scalars: randomTensor([batch * 108], seed: seed + UInt64(b)).scalars,
                                        layout: .nhwc),
                         labels: (0..<batch).map { ($0 + b) % 4 })
        }
    }

    /// A float32 bank for `base()` with, for every fully connected slot, the exact operator (R = 2) and, for fc1, an
    /// inexact one (R = 1); no operator on the convolution.
    static func exactBank(_ graph: Graph = base()) throws -> OperatorBank {
        let slots = try self.slots(graph)
        var entries: [BankEntry] = []
        // R = round(β·min(C_i, C)) = 2: fc1 min 8, fc2 min 6, fc3 min 4.
        for (slot, beta) in [(slots[1], 0.25), (slots[2], 1.0 / 3), (slots[3], 0.5), (slots[1], 0.125)] {
            let op = try PluggableOperator.initialized(kind: .lowRank, beta: beta, slot: slot, graph: graph)
            entries.append(BankEntry(op: op, measurement: OperatorMeasurement(
                parameters: op.parameterCount, multiplyAdds: op.multiplyAdds, latencyMs: 0.01, top1: 50,
                distillationError: 0, outputDivergence: 0.001 * Double(entries.count))))
        }
        return OperatorBank(
            baseFingerprint: BaseFingerprint.of(graph), imageShape: imageShape, slots: slots,
            base: BaseMeasurement(top1: 50, multiplyAdds: try StructuredPruning.multiplyAdds(graph, imageShape: imageShape),
                                  parameters: StructuredPruning.parameterCount(graph), latencyMs: 0.1,
                                  slotLatencyMs: [0.05, 0.01, 0.01, 0.01]),
            entries: entries, metadata: ["test": "fc"], precision: .float32, fullyConnectedSlots: true)
    }

    /// `x·Wᵀ + b` (+ ReLU) of a fully connected slot of `graph`, computed by hand; `x` is `[N, C_i]`.
    static func unit(_ slot: OperatorSlot, graph: Graph, _ x: Tensor) -> Tensor {
        guard case let .float(w)? = graph.initializers[slot.weight] else { preconditionFailure() }
        var b = [Float](repeating: 0, count: slot.outputChannels)
        if let name = slot.bias, case let .float(t)? = graph.initializers[name] { b = t.scalars }
        let (n, ci, c) = (x.shape[0], slot.inputChannels, slot.outputChannels)
        var y = [Float](repeating: 0, count: n * c)
        for s in 0..<n { for o in 0..<c {
            var v = b[o]
            for i in 0..<ci { v += x.scalars[s * ci + i] * (slot.transB ? w.scalars[o * ci + i] : w.scalars[i * c + o]) }
            y[s * c + o] = slot.hasReLU ? max(0, v) : v
        } }
        return Tensor(shape: [n, c], scalars: y, layout: .plain)
    }

    static func maxAbs(_ t: Tensor) -> Float { t.scalars.reduce(0) { max($0, abs($1)) } }
    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        precondition(a.count == b.count)
        return zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}

final class FullyConnectedSlotTests: XCTestCase {
    typealias F = FullyConnectedFixtures

    // MARK: Slots

    func testFindMakesSlotsOfPlainGemmsOnlyWhenAsked() throws {
        let graph = F.base()
        let off = try OperatorSlots.find(in: graph, imageShape: F.imageShape)
        XCTAssertEqual(off.map(\.name), ["stem/conv"], "the default finds the convolutions only")
        let on = try F.slots(graph)
        XCTAssertEqual(on.map(\.name), ["stem/conv", "fc1", "fc2", "fc3"])
        XCTAssertEqual(on.map(\.index), [0, 1, 2, 3])
        XCTAssertEqual(on[0], off[0], "the convolution slot is the same either way")
        XCTAssertEqual(on.map(\.kind), [.convolution, .fullyConnected, .fullyConnected, .fullyConnected])

        let fc1 = on[1], fc2 = on[2], fc3 = on[3]
        // transB 1, bias, ReLU.
        XCTAssertEqual([fc1.inputChannels, fc1.outputChannels], [8, 10])
        XCTAssertTrue(fc1.transB)
        XCTAssertEqual(fc1.bias, "fc1.b")
        XCTAssertTrue(fc1.hasReLU)
        XCTAssertEqual(fc1.nodes, ["fc1", "fc1/relu"])
        XCTAssertEqual(fc1.input, "flat")
        XCTAssertEqual(fc1.output, "fc1.r")
        XCTAssertEqual(fc1.multiplyAdds, 80)
        XCTAssertEqual(fc1.parameterCount, 90)
        // transB absent (0), no bias, no ReLU.
        XCTAssertEqual([fc2.inputChannels, fc2.outputChannels], [10, 6])
        XCTAssertFalse(fc2.transB)
        XCTAssertNil(fc2.bias)
        XCTAssertFalse(fc2.hasReLU)
        XCTAssertEqual(fc2.nodes, ["fc2"])
        XCTAssertEqual(fc2.output, "fc2.y")
        XCTAssertEqual(fc2.multiplyAdds, 60)
        XCTAssertEqual(fc2.parameterCount, 60)
        // The classifier's last layer writes the graph's output: no ReLU can follow it.
        XCTAssertEqual(fc3.output, "logits")
        XCTAssertFalse(fc3.hasReLU)
        for s in [fc1, fc2, fc3] {
            XCTAssertEqual(s.kernel, [1, 1]); XCTAssertEqual(s.strides, [1, 1]); XCTAssertEqual(s.pads, [0, 0, 0, 0])
            XCTAssertEqual(s.dilations, [1, 1]); XCTAssertEqual(s.inputSize, [1, 1]); XCTAssertEqual(s.outputSize, [1, 1])
            XCTAssertNil(s.batchNorm)
            XCTAssertEqual(s.unitInputShape, [s.inputChannels])
        }
        // The slots' multiply-adds are the graph's: together they are all of it.
        XCTAssertEqual(on.map(\.multiplyAdds).reduce(0, +), try StructuredPruning.multiplyAdds(graph, imageShape: F.imageShape))

        // A Gemm with alpha ≠ 1 is no slot, and the slots after it are numbered on.
        let scaled = try F.slots(F.base(fc2Alpha: 2))
        XCTAssertEqual(scaled.map(\.name), ["stem/conv", "fc1", "fc3"])
        XCTAssertEqual(scaled.map(\.index), [0, 1, 2])
        XCTAssertEqual(try F.slots(F.base(allAlphas: 0.5)).map(\.name), ["stem/conv"])
        // transA = 1 is no slot either.
        var transposed = graph
        let i = transposed.nodes.firstIndex { $0.name == "fc1" }!
        transposed.nodes[i].attributes["transA"] = .int(1)
        transposed.nodes.insert(Node(name: "t", opType: "Transpose", inputs: ["flat"], outputs: ["flatT"],
                                     attributes: ["perm": .ints([1, 0])]), at: i)
        transposed.nodes[i + 1].inputs[0] = "flatT"
        XCTAssertFalse(try F.slots(transposed).map(\.name).contains("fc1"))
        // A bias of shape [1, C] broadcasts like [C]: still a slot, and its operator's bias is the same C values; one of
        // shape [C, 1] is not a per-output bias.
        guard case let .float(b)? = graph.initializers["fc3.b"] else { return XCTFail() }
        var row = graph
        row.initializers["fc3.b"] = .float(Tensor(shape: [1, 4], scalars: b.scalars, layout: .plain))
        let rowSlot = try XCTUnwrap(try F.slots(row).last)
        XCTAssertEqual(rowSlot.name, "fc3")
        let op = try PluggableOperator.initialized(kind: .lowRank, beta: 0.5, slot: rowSlot, graph: row)
        XCTAssertEqual(op.tensors["second.bias"], Tensor(shape: [4], scalars: b.scalars, layout: .plain))
        var column = graph
        column.initializers["fc3.b"] = .float(Tensor(shape: [4, 1], scalars: b.scalars, layout: .plain))
        XCTAssertEqual(try F.slots(column).map(\.name), ["stem/conv", "fc1", "fc2"])
    }

    func testSlotsWithoutTheKindFieldDecodeAsConvolutions() throws {
        let slots = try F.slots()
        for slot in slots {
            XCTAssertEqual(try JSONDecoder().decode(OperatorSlot.self, from: JSONEncoder().encode(slot)), slot)
        }
        var old = try JSONSerialization.jsonObject(with: JSONEncoder().encode(slots[0])) as! [String: Any]
        XCTAssertNotNil(old.removeValue(forKey: "kind"))
        XCTAssertNotNil(old.removeValue(forKey: "transB"))
        let decoded = try JSONDecoder().decode(OperatorSlot.self, from: JSONSerialization.data(withJSONObject: old))
        XCTAssertEqual(decoded, slots[0])
        XCTAssertEqual(decoded.kind, .convolution)
    }

    // MARK: The operator

    func testOnlyLowRankAppliesAndItsCostsEqualItsGraph() throws {
        let graph = F.base()
        var checked = 0
        for slot in try F.slots(graph).dropFirst() {
            XCTAssertEqual(OperatorKind.allCases.filter { $0.isApplicable(to: slot) }, [.lowRank], slot.name)
            for kind in OperatorKind.allCases where kind != .lowRank {
                XCTAssertThrowsError(try PluggableOperator.initialized(kind: kind, beta: 0.5, slot: slot, graph: graph)) {
                    XCTAssertTrue("\($0)".contains("only lowrank"), "\($0)")
                }
            }
            let smaller = min(slot.inputChannels, slot.outputChannels)
            for beta in [0.01, 0.125, 0.25, 0.5, 1, 1.5] {
                let op = try PluggableOperator.initialized(kind: .lowRank, beta: beta, slot: slot, graph: graph)
                let r = max(1, Int((beta * Double(smaller)).rounded()))
                let what = "\(slot.name) β \(beta)"
                XCTAssertEqual(op.innerChannels, r, what)
                XCTAssertEqual(op.tensorShapes, ["first.weight": [r, slot.inputChannels],
                                                 "second.weight": [slot.outputChannels, r],
                                                 "second.bias": [slot.outputChannels]], what)
                XCTAssertEqual(op.multiplyAdds, r * (slot.inputChannels + slot.outputChannels), what)
                XCTAssertEqual(op.parameterCount, r * slot.inputChannels + slot.outputChannels * r + slot.outputChannels, what)
                let g = op.standaloneGraph()
                XCTAssertEqual(op.multiplyAdds, try StructuredPruning.multiplyAdds(g, imageShape: [slot.inputChannels]), what)
                XCTAssertEqual(op.parameterCount, StructuredPruning.parameterCount(g), what)
                XCTAssertEqual(Set(g.initializers.keys), Set(op.tensorShapes.keys), what)
                XCTAssertEqual(g.nodes.map(\.opType), ["Gemm", "Gemm"] + (slot.hasReLU ? ["Relu"] : []), what)
                XCTAssertEqual(g.nodes.last?.outputs, ["y"], what)
                let y = try InferenceEngine(graph: g).run(randomTensor([3, slot.inputChannels], seed: 5))
                XCTAssertEqual(y.shape, [3, slot.outputChannels], what)
                checked += 1
            }
        }
        XCTAssertEqual(checked, 18)
        // Known values: fc1 (8 → 10) at β 0.25 has R = 2: 2·18 = 36 multiply-adds, 16 + 20 + 10 = 46 parameters.
        let fc1 = try F.slots(graph)[1]
        XCTAssertEqual(PluggableOperator.multiplyAdds(kind: .lowRank, beta: 0.25, slot: fc1), 36)
        XCTAssertEqual(PluggableOperator.parameterCount(kind: .lowRank, beta: 0.25, slot: fc1), 46)
    }

    func testTruncatedSVDIsExactAtTheWeightsRankAndOnlyThere() throws {
        for generic in [false, true] {
            let graph = F.base(genericWeights: generic)
            for slot in try F.slots(graph).dropFirst() {
                let x = randomTensor([5, slot.inputChannels], seed: 3)
                let expected = F.unit(slot, graph: graph, x)
                let scale = F.maxAbs(expected)
                XCTAssertGreaterThan(scale, 0.1)
                func error(_ beta: Double) throws -> Float {
                    let op = try PluggableOperator.initialized(kind: .lowRank, beta: beta, slot: slot, graph: graph)
                    let y = try InferenceEngine(graph: op.standaloneGraph()).run(x)
                    return F.maxDifference(y, expected) / scale
                }
                let smaller = Double(min(slot.inputChannels, slot.outputChannels))
                // R = 2: exact for the rank-2 weights, not for generic ones; R = min(C_i, C) (β = 1): always exact.
                let atTwo = try error(2 / smaller)
                if generic { XCTAssertGreaterThan(atTwo, 0.02, "\(slot.name): generic weight at R = 2") }
                else { XCTAssertLessThan(atTwo, 1e-5, "\(slot.name): rank-2 weight at R = 2") }
                XCTAssertLessThan(try error(1), 1e-5, "\(slot.name) (generic \(generic)) at full rank")
                XCTAssertLessThan(try error(2), 1e-5, "\(slot.name): ranks beyond min(C_i, C) are zero components")
                // R = 1 of a rank-2 weight is not exact.
                XCTAssertGreaterThan(try error(1 / smaller), 0.02, "\(slot.name) at R = 1")
            }
        }
        // √Σ is split between the factors: both have the same row norms ‖first[r]‖ = ‖second[:, r]‖ = √σ_r.
        let graph = F.base()
        let op = try PluggableOperator.initialized(kind: .lowRank, beta: 0.25, slot: try F.slots(graph)[1], graph: graph)
        let first = op.tensors["first.weight"]!, second = op.tensors["second.weight"]!
        for r in 0..<2 {
            let a = (0..<8).map { first.scalars[r * 8 + $0] }.reduce(0) { $0 + $1 * $1 }
            let b = (0..<10).map { second.scalars[$0 * 2 + r] }.reduce(0) { $0 + $1 * $1 }
            XCTAssertEqual(a, b, accuracy: 1e-4 * max(a, b))
        }
        XCTAssertEqual(op.tensors["second.bias"]?.scalars, { if case let .float(t)? = graph.initializers["fc1.b"] { return t.scalars }; return [] }())
        let noBias = try PluggableOperator.initialized(kind: .lowRank, beta: 1, slot: try F.slots(graph)[2], graph: graph)
        XCTAssertEqual(noBias.tensors["second.bias"]?.scalars, [Float](repeating: 0, count: 6))
    }

    /// The output-subspace factorization (`fullyConnectedLowRank(weight:inputs:dataFree:)`) is exact on inputs that
    /// lie in a subspace of dimension ≤ R even when the weight has full rank (where the weight's SVD is not), and
    /// fills the components it has no samples for from the data-free operator.
    func testTheOutputSubspaceFactorizationIsExactOnInputsOfLowDimension() throws {
        let graph = F.base(genericWeights: true)
        for slot in try F.slots(graph).dropFirst() {
            guard case let .float(weight)? = graph.initializers[slot.weight] else { return XCTFail("no weight") }
            let basis = randomTensor([2, slot.inputChannels], seed: 40).scalars
            func inputs(_ n: Int, seed: UInt64) -> Tensor {
                let a = randomTensor([n, 2], seed: seed).scalars
                var x = [Float](repeating: 0, count: n * slot.inputChannels)
                for i in 0..<n { for j in 0..<slot.inputChannels { x[i * slot.inputChannels + j] = a[2 * i] * basis[j] + a[2 * i + 1] * basis[slot.inputChannels + j] } }
                return Tensor(shape: [n, slot.inputChannels], scalars: x, layout: .plain)
            }
            let beta = 2 / Double(min(slot.inputChannels, slot.outputChannels))
            let dataFree = try PluggableOperator.initialized(kind: .lowRank, beta: beta, slot: slot, graph: graph)
            let calibration = [inputs(6, seed: 41), inputs(5, seed: 42)]
            let fromData = try XCTUnwrap(PluggableOperator.fullyConnectedLowRank(weight: weight, inputs: calibration,
                                                                                 dataFree: dataFree))
            XCTAssertEqual(fromData.tensorShapes, dataFree.tensorShapes)
            let x = inputs(7, seed: 43), expected = F.unit(slot, graph: graph, x), scale = F.maxAbs(expected)
            func error(_ op: PluggableOperator) throws -> Float {
                F.maxDifference(try InferenceEngine(graph: op.standaloneGraph()).run(x), expected) / scale
            }
            XCTAssertLessThan(try error(fromData), 1e-4, "\(slot.name): inputs of dimension 2 at R = 2")
            XCTAssertGreaterThan(try error(dataFree), 0.02, "\(slot.name): the full-rank weight's SVD at R = 2")
            // One sample for R = 4: one component from the data; the others read the data-free operator's leading
            // input projections and write nothing yet, so the operator is still exact on that sample's line.
            let wide = try PluggableOperator.initialized(kind: .lowRank, beta: 2 * beta, slot: slot, graph: graph)
            let sample = inputs(1, seed: 44)
            let one = try XCTUnwrap(PluggableOperator.fullyConnectedLowRank(weight: weight, inputs: [sample], dataFree: wide))
            let ci = slot.inputChannels
            XCTAssertEqual(Array(one.tensors["first.weight"]!.scalars[ci..<(4 * ci)]),
                           Array(wide.tensors["first.weight"]!.scalars[0..<(3 * ci)]))
            let second = one.tensors["second.weight"]!.scalars
            XCTAssertTrue((0..<slot.outputChannels).allSatisfy { o in (1..<4).allSatisfy { second[o * 4 + $0] == 0 } })
            let line = Tensor(shape: [2, ci], scalars: sample.scalars.map { 3 * $0 } + sample.scalars.map { -0.5 * $0 },
                              layout: .plain)
            let onLine = F.unit(slot, graph: graph, line)
            XCTAssertLessThan(F.maxDifference(try InferenceEngine(graph: one.standaloneGraph()).run(line), onLine),
                              1e-4 * max(1, F.maxAbs(onLine)), "\(slot.name): exact on the sample's line")
            XCTAssertNil(PluggableOperator.fullyConnectedLowRank(weight: weight, inputs: [randomTensor([3, ci + 1], seed: 45)],
                                                                 dataFree: dataFree), "inputs of another width")
        }
    }

    func testGradientsOfTheFullyConnectedOperator() throws {
        let graph = F.base(genericWeights: true)
        // fc2 has no ReLU (finite differences are meaningless at a kink).
        let slot = try F.slots(graph)[2]
        let op = try PluggableOperator.initialized(kind: .lowRank, beta: 0.5, slot: slot, graph: graph)
        let net = try GraphNetwork(graph: op.standaloneGraph(), imageShape: slot.unitInputShape)
        XCTAssertEqual(Set(net.namedParameters().filter { $0.parameter.isTrainable }.map(\.name)), Set(op.tensorShapes.keys))
        let report = checkGradients(net, input: randomTensor([3, 10], seed: 8), epsilon: 1e-3, tolerance: 1e-2, samples: 32)
        XCTAssertGreaterThan(report.checked, 60)
    }

    // MARK: In the network

    func testAnExactOperatorLeavesTheNetworkOutputUnchangedAndSwitchesLikeTheConfiguredGraph() throws {
        let base = F.base(), bank = try F.exactBank(base)
        let model = try SwitchableModel(base: base, bank: bank)
        let x = F.images(3, seed: 21)
        let reference = try InferenceEngine(graph: base).run(x)
        XCTAssertLessThanOrEqual(F.maxDifference(try model.run(x), reference), 1e-6 * max(1, F.maxAbs(reference)), "the base configuration is the base")
        var exact = OperatorConfiguration.base(slotCount: 4)
        exact.choices[1] = 0; exact.choices[2] = 1; exact.choices[3] = 2
        try model.apply(exact)
        let swapped = try model.run(x)
        XCTAssertEqual(swapped.shape, reference.shape)
        XCTAssertLessThanOrEqual(F.maxDifference(swapped, reference), 1e-4 * max(1, F.maxAbs(reference)))
        let configured = try InferenceEngine(graph: model.configuredGraph()).run(x)
        XCTAssertLessThanOrEqual(F.maxDifference(configured, swapped), 1e-5 * max(1, F.maxAbs(reference)))
        // The replaced Gemm weights are gone from the configured graph; the rank-1 operator changes the output.
        XCTAssertNil(try model.configuredGraph().initializers["fc1.w"])
        var inexact = exact
        inexact.choices[1] = 3
        try model.apply(inexact)
        XCTAssertGreaterThan(F.maxDifference(try model.run(x), reference), 1e-3 * F.maxAbs(reference))
        // Latency of every fully connected unit and operator, measured in the running network.
        try model.calibrateLatency(runs: 3)
        XCTAssertEqual(model.bank.base.slotLatencyMs?.count, 4)
        for e in model.bank.entries { XCTAssertGreaterThan(try XCTUnwrap(e.measurement.latencyMs), 0) }
        XCTAssertTrue(model.bank.base.slotLatencyMs!.dropFirst().allSatisfy { $0 > 0 })
    }

    func testTheSwitchableNetworkTrainsFullyConnectedOperatorsAndLeavesTheBaseAlone() throws {
        let base = F.base(), bank = try F.exactBank(base)
        let (graph, groups) = try SwitchableGraph.switchable(base: base, bank: bank)
        XCTAssertEqual(groups.map(\.slot), [1, 2, 3])
        let network = try GraphNetwork(graph: graph, imageShape: F.imageShape)
        let x = F.batches(1, batch: 3)[0].images
        for selection in [[0, 0, 0], [1, 1, 1], [2, 0, 1]] {
            var configuration = OperatorConfiguration.base(slotCount: 4)
            for (g, group) in groups.enumerated() where selection[g] > 0 { configuration.choices[group.slot] = group.entries[selection[g] - 1] }
            let reference = try GraphNetwork(graph: SwitchableGraph.configured(configuration, base: base, bank: bank),
                                             imageShape: F.imageShape)
            network.selection = selection
            network.eval(); reference.eval()
            XCTAssertEqual(network.forward(x).scalars, reference.forward(x).scalars, "selection \(selection)")
        }
        var tuned = bank
        var options = OperatorFineTuningOptions()
        options.steps = 6
        options.budgetShares = []
        options.randomShare = 1
        options.swapShare = 1...1
        options.learningRate = 1e-2
        // By default the operators of fully connected slots keep their distillation.
        var kept = bank
        _ = try OperatorFineTuning.fineTune(&kept, base: base, batches: F.batches(2), options: options)
        XCTAssertEqual(kept.entries.map(\.op.tensors), bank.entries.map(\.op.tensors), "fully connected operators frozen")
        options.trainsFullyConnected = true
        let report = try OperatorFineTuning.fineTune(&tuned, base: base, batches: F.batches(2), options: options)
        XCTAssertEqual(report.steps, 6)
        XCTAssertNotEqual(tuned.entries.map(\.op.tensors), bank.entries.map(\.op.tensors), "the operators moved")
        for e in tuned.entries { XCTAssertEqual(Set(e.op.tensors.keys), Set(e.op.tensorShapes.keys)) }
        XCTAssertNoThrow(try tuned.validate(against: base), "the base is untouched")
        XCTAssertNoThrow(try OperatorBankFile.parse(OperatorBankFile.serialize(tuned)))
    }

    // MARK: Building and selecting

    func testBuildingWithFullyConnectedSlotsReachesBudgetsTheConvolutionsAloneCannot() throws {
        let base = F.base()
        var options = BankBuildOptions()
        options.operators = [.lowRank, .depthwise]
        options.betas = [0.5]
        options.fullyConnectedBetas = [0.25, 0.5]
        options.distillationSteps = 15
        options.latencyRuns = 1
        XCTAssertEqual(try BankBuilder(base: base, imageShape: F.imageShape, options: options).slots.count, 1, "off by default")
        options.fullyConnected = true
        let builder = try BankBuilder(base: base, imageShape: F.imageShape, options: options)
        XCTAssertEqual(builder.slots.count, 4)
        let bank = try builder.build(calibration: F.batches(3), evaluation: F.batches(1, seed: 90))
        XCTAssertTrue(bank.fullyConnectedSlots)
        XCTAssertEqual(bank.precision, .float16)
        // The convolution: low rank β 0.5 and depthwise; each fully connected slot: low rank at β 0.25 and 0.5.
        XCTAssertEqual(bank.entries.map(\.op.slot.index), [0, 0, 1, 1, 2, 2, 3, 3])
        XCTAssertEqual(bank.entries.map(\.op.kind), [.lowRank, .depthwise] + Array(repeating: .lowRank, count: 6))
        XCTAssertEqual(bank.entries.dropFirst(2).map(\.op.beta), [0.25, 0.5, 0.25, 0.5, 0.25, 0.5])
        XCTAssertEqual(bank.base.slotLatencyMs?.count, 4)
        for e in bank.entries {
            XCTAssertEqual(e.measurement.multiplyAdds, e.op.multiplyAdds)
            XCTAssertEqual(e.measurement.parameters, e.op.parameterCount)
            XCTAssertNotNil(e.measurement.latencyMs)
            XCTAssertNotNil(e.measurement.outputDivergence)
        }
        // R ≥ 2 on rank-2 weights: exact up to float16 rounding, distillation keeps it.
        for e in bank.entries where e.op.slot.isFullyConnected && e.op.innerChannels >= 2 {
            XCTAssertLessThan(try XCTUnwrap(e.measurement.distillationError), 1e-4, "\(e.op.slot.name) \(e.op.label)")
        }
        XCTAssertEqual(try OperatorBankFile.parse(OperatorBankFile.serialize(bank)), bank)

        // A budget below what the convolution alone can reach is met with the classifier's operators.
        let conv = bank.slots[0]
        let convOnly = bank.base.multiplyAdds - conv.multiplyAdds
            + bank.entries.filter { $0.op.slot.index == 0 }.map(\.measurement.multiplyAdds).min()!
        let budget = Budget.multiplyAdds(convOnly - 1)
        let chosen = try OperatorSelection.select(bank: bank, budget: budget)
        XCTAssertLessThanOrEqual(OperatorSelection.predict(chosen, bank: bank).multiplyAdds, convOnly - 1)
        XCTAssertTrue(chosen.choices.dropFirst().contains { $0 != nil })
        XCTAssertThrowsError(try OperatorSelection.select(bank: bank, budget: budget, kinds: [.depthwise]))
        // The uniform baseline puts low rank β 0.5 on the convolution and on every fully connected slot.
        let uniform = OperatorSelection.uniform(bank: bank, kind: .lowRank, beta: 0.5)
        XCTAssertEqual(uniform.choices.map { $0.map { bank.entries[$0].op.slot.index } }, [0, 1, 2, 3])
        XCTAssertEqual(OperatorSelection.uniform(bank: bank, kind: .depthwise, beta: 1).choices.compactMap { $0 }.count, 1,
                       "depthwise leaves the classifier as it is")
        // The sweep runs with them.
        let model = try SwitchableModel(base: base, bank: bank)
        let sweep = try OperatorSweep.run(model: model, name: "fc", evaluation: F.batches(1, seed: 91), fractions: [0.5], latencyRuns: 1)
        XCTAssertEqual(sweep.selected.count, 1)
        XCTAssertEqual(sweep.selected[0].operators?.count, 4)
        XCTAssertLessThanOrEqual(Double(sweep.selected[0].multiplyAdds), 0.5 * Double(bank.base.multiplyAdds))
    }

    // MARK: The bank file

    func testABankWithFullyConnectedSlotsIsVersion12AndRoundTrips() throws {
        typealias B = BankTestFixtures
        let base = F.base(), bank = try F.exactBank(base)
        let bytes = OperatorBankFile.serialize(bank)
        XCTAssertEqual(Array(bytes[4..<8]), [1, 0, 2, 0], "version 1.2")
        XCTAssertEqual(try OperatorBankFile.parse(bytes), bank)
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("fc-bank-\(UUID().uuidString).lcb")
        defer { try? FileManager.default.removeItem(at: url) }
        try OperatorBankFile.write(bank, to: url)
        XCTAssertEqual(try OperatorBankFile.read(from: url), bank)

        let (json, payload) = B.parts(bytes)
        XCTAssertEqual(json["fully_connected_slots"] as? Bool, true)
        let slots = json["slots"] as! [[String: Any]]
        XCTAssertNil(slots[0]["kind"], "convolution slots are written as before")
        XCTAssertNil(slots[0]["trans_b"])
        XCTAssertEqual(slots[1]["kind"] as? String, "fully_connected")
        XCTAssertEqual(slots[1]["trans_b"] as? Bool, true)
        XCTAssertEqual(slots[2]["trans_b"] as? Bool, false)

        // Without the flag the fully connected slots are refused, naming the slot.
        var unflagged = json
        unflagged["fully_connected_slots"] = nil
        let e1 = B.parseError(B.assemble(unflagged, payload, version: (1, 2)))
        XCTAssertEqual(e1?.section, "header")
        XCTAssertTrue(e1?.message.contains("slot 1 'fc1' is fully connected but the bank does not include fully connected slots") ?? false,
                      "\(String(describing: e1))")
        var unknown = json
        var s = slots
        s[2]["kind"] = "recurrent"
        unknown["slots"] = s
        let e2 = B.parseError(B.assemble(unknown, payload, version: (1, 2)))
        XCTAssertTrue(e2?.message.contains("slot 2 'fc2': unknown kind 'recurrent'") ?? false, "\(String(describing: e2))")
        var convolutional = json
        s = slots
        s[1]["kind"] = nil
        s[1]["trans_b"] = nil
        convolutional["slots"] = s
        // Read as a 1×1 convolution, the fully connected operator's tensors do not fit: refused, never misread.
        let e3 = B.parseError(B.assemble(convolutional, payload, version: (1, 2)))
        XCTAssertTrue(e3?.message.contains("missing tensor") ?? false, "\(String(describing: e3))")
        var inMemory = bank
        inMemory.fullyConnectedSlots = false
        XCTAssertThrowsError(try OperatorBankFile.check(inMemory)) { XCTAssertTrue("\($0)".contains("is fully connected"), "\($0)") }
    }

    func testValidationFindsTheSlotsTheWayTheBankWasBuilt() throws {
        let base = F.base(), bank = try F.exactBank(base)
        XCTAssertNoThrow(try bank.validate(against: base))
        // A base whose Gemms are not slots (alpha 0.5) lacks the bank's fully connected slots.
        let lacking = F.base(allAlphas: 0.5)
        var fingerprinted = bank
        fingerprinted.baseFingerprint = BaseFingerprint.of(lacking)
        XCTAssertThrowsError(try fingerprinted.validate(against: lacking)) {
            XCTAssertTrue("\($0)".contains("missing fully connected slot 1 'fc1'"), "\($0)")
        }
        XCTAssertThrowsError(try SwitchableModel(base: lacking, bank: fingerprinted))
        // fc2 stored the other way round: the slot differs in transB.
        var flipped = base
        guard case let .float(w)? = base.initializers["fc2.w"] else { return XCTFail() }
        var t = [Float](repeating: 0, count: 60)
        for i in 0..<10 { for o in 0..<6 { t[o * 10 + i] = w.scalars[i * 6 + o] } }
        flipped.initializers["fc2.w"] = .float(Tensor(shape: [6, 10], scalars: t, layout: .plain))
        let k = flipped.nodes.firstIndex { $0.name == "fc2" }!
        flipped.nodes[k].attributes["transB"] = .int(1)
        XCTAssertThrowsError(try bank.validate(against: flipped)) { XCTAssertTrue("\($0)".contains("differs in transB"), "\($0)") }

        // An old-style bank (convolution slots, no flag) of the same base still validates: it finds the slots without
        // the option, and is written as 1.1 without any of 1.2's keys.
        var old = OperatorBank(baseFingerprint: bank.baseFingerprint, imageShape: bank.imageShape, slots: [bank.slots[0]],
                               base: bank.base, entries: [], precision: .float32)
        old.base.slotLatencyMs = [0.05]
        old.entries = [BankEntry(op: try PluggableOperator.initialized(kind: .lowRank, beta: 0.5, slot: bank.slots[0], graph: base),
                                 measurement: OperatorMeasurement(parameters: 1, multiplyAdds: 1))]
        XCTAssertNoThrow(try old.validate(against: base))
        let bytes = OperatorBankFile.serialize(old)
        XCTAssertEqual(Array(bytes[4..<8]), [1, 0, 1, 0], "version 1.1")
        let (json, payload) = BankTestFixtures.parts(bytes)
        XCTAssertNil(json["fully_connected_slots"])
        XCTAssertNil((json["slots"] as! [[String: Any]])[0]["kind"])
        for version in [(UInt16(1), UInt16(0)), (1, 1), (1, 2)] {
            let read = try OperatorBankFile.parse(BankTestFixtures.assemble(json, payload, version: version))
            XCTAssertFalse(read.fullyConnectedSlots)
            XCTAssertEqual(read, old)
            XCTAssertNoThrow(try SwitchableModel(base: base, bank: read))
        }
    }
}
