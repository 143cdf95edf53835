// Pluggable operators: closed-form costs and shapes against the graphs they build (odd shapes, every kind), exact
// data-free initializations against the unit they replace (and a generic weight that must not be exact), gradient
// checks of each operator as a trainable graph, several operators in one graph, applicability and tensor adoption.
import LiteCNN
import XCTest
import _TestSupport

final class PluggableOperatorTests: XCTestCase {
    // MARK: Helpers

    /// The slot of a hand-built unit (`unitGraph`): input "x" `[N, C_i, H, W]`, output "y", kernel `k`, stride,
    /// pads `[t, l, b, r]` (same padding when nil), dilation, found by `OperatorSlots.find`.
    static func slot(ci: Int, co: Int, h: Int, w: Int, k: [Int], stride: [Int] = [1, 1], pads: [Int]? = nil,
                     dilation: [Int] = [1, 1], batchNorm: Bool, relu: Bool, convBias: Bool = false) -> OperatorSlot {
        let pads = pads ?? [dilation[0] * (k[0] - 1) / 2, dilation[1] * (k[1] - 1) / 2,
                            dilation[0] * (k[0] - 1) / 2, dilation[1] * (k[1] - 1) / 2]
        let graph = unitGraph(kernel: k, strides: stride, pads: pads, dilations: dilation, relu: relu, ci: ci, h: h, w: w,
                              weight: Tensor(shape: [co, ci] + k, repeating: 0.5, layout: .plain),
                              bias: convBias ? Tensor(shape: [co], repeating: 0) : nil,
                              batchNorm: batchNorm ? unitBatchNorm(co, seed: 0) : nil)
        let slots = try! OperatorSlots.find(in: graph, imageShape: [ci, h, w])
        precondition(slots.count == 1 && slots[0].pads == pads && slots[0].hasReLU == relu
                     && slots[0].hasBatchNorm == batchNorm && (slots[0].bias != nil) == convBias, "slot \(slots)")
        return slots[0]
    }

    static func unitBatchNorm(_ c: Int, seed: UInt64) -> BatchNormParameters {
        BatchNormParameters(scale: randomTensor([c], seed: seed, range: 0.5...1.5).scalars,
                            bias: randomTensor([c], seed: seed + 1).scalars,
                            mean: randomTensor([c], seed: seed + 2, range: -0.3...0.3).scalars,
                            variance: randomTensor([c], seed: seed + 3, range: 0.5...2).scalars, epsilon: 1e-3)
    }

    /// The unit the slot describes, built by hand: Conv (+ bias) [+ BatchNormalization] [+ Relu], "x" → "y".
    static func unitGraph(_ slot: OperatorSlot, weight: Tensor, bias: Tensor?, batchNorm: BatchNormParameters?) -> Graph {
        unitGraph(kernel: slot.kernel, strides: slot.strides, pads: slot.pads, dilations: slot.dilations, relu: slot.hasReLU,
                  ci: slot.inputChannels, h: slot.inputSize[0], w: slot.inputSize[1], weight: weight, bias: bias,
                  batchNorm: batchNorm)
    }

    static func unitGraph(kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], relu: Bool, ci: Int, h: Int, w: Int,
                          weight: Tensor, bias: Tensor?, batchNorm: BatchNormParameters?) -> Graph {
        let n = ValueInfo.Dimension.symbolic("N")
        var initializers: [String: Constant] = ["conv.weight": .float(weight)]
        var convInputs = ["x", "conv.weight"]
        if let bias { initializers["conv.bias"] = .float(bias); convInputs.append("conv.bias") }
        var nodes = [Node(name: "conv", opType: "Conv", inputs: convInputs, outputs: ["conv.y"], attributes: [
            "kernel_shape": .ints(kernel), "strides": .ints(strides), "pads": .ints(pads),
            "dilations": .ints(dilations), "group": .int(1)])]
        if let bn = batchNorm {
            for (name, values) in zip(["bn.scale", "bn.bias", "bn.mean", "bn.var"], [bn.scale, bn.bias, bn.mean, bn.variance]) {
                initializers[name] = .float(Tensor(shape: [values.count], scalars: values))
            }
            nodes.append(Node(name: "bn", opType: "BatchNormalization",
                              inputs: ["conv.y", "bn.scale", "bn.bias", "bn.mean", "bn.var"], outputs: ["bn.y"],
                              attributes: ["epsilon": .float(bn.epsilon)]))
        }
        if relu { nodes.append(Node(name: "relu", opType: "Relu", inputs: [nodes.last!.outputs[0]], outputs: ["relu.y"])) }
        nodes[nodes.count - 1].outputs = ["y"]
        return Graph(inputs: [ValueInfo(name: "x", shape: [n, .fixed(ci), .fixed(h), .fixed(w)])],
                     outputs: [ValueInfo(name: "y", shape: nil)], nodes: nodes, initializers: initializers)
    }

    static func run(_ graph: Graph, _ x: Tensor) throws -> Tensor { try InferenceEngine(graph: graph).run(x) }

    static func maxAbs(_ t: Tensor) -> Float { t.scalars.reduce(0) { max($0, abs($1)) } }
    static func maxDifference(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.scalars, b.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }

    /// Odd shapes: C_i = 5, C = 7, 9×11, k 3 and 5, stride 1 and 2, with and without BatchNorm and ReLU, one dilated
    /// slot and one slot that is not same-padded.
    static var oddSlots: [OperatorSlot] {
        var slots: [OperatorSlot] = []
        for k in [3, 5] { for s in [1, 2] { for bn in [true, false] {
            slots.append(slot(ci: 5, co: 7, h: 9, w: 11, k: [k, k], stride: [s, s], batchNorm: bn, relu: (k + s) % 2 == 0 || !bn,
                              convBias: !bn))
        } } }
        slots.append(slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], stride: [2, 1], dilation: [2, 2], batchNorm: true, relu: true))
        slots.append(slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 5], stride: [1, 2], pads: [0, 1, 1, 2], batchNorm: false, relu: false,
                          convBias: true))
        return slots
    }

    // MARK: Closed forms against graphs

    func testFormulasMatchStandaloneGraphsOverOddShapes() throws {
        var checked = 0
        for (n, slot) in Self.oddSlots.enumerated() {
            let weight = randomTensor([7, 5] + slot.kernel, seed: UInt64(n)), bias = randomTensor([7], seed: 99)
            for kind in OperatorKind.allCases {
                guard kind.isApplicable(to: slot) else {
                    XCTAssertFalse(slot.isSamePadded, "\(kind) refused a same-padded slot")
                    continue
                }
                for beta in kind.usesBeta ? [kind.defaultBeta, 0.3] : [1] {
                    let op = try PluggableOperator.initialized(
                        kind: kind, beta: beta, slot: slot, weight: weight, bias: slot.bias == nil ? nil : bias,
                        batchNorm: slot.hasBatchNorm ? Self.unitBatchNorm(7, seed: 5) : nil, seed: 3)
                    let graph = op.standaloneGraph()
                    let what = "\(kind) β \(beta) k \(slot.kernel) s \(slot.strides) d \(slot.dilations) pads \(slot.pads)"
                    XCTAssertEqual(op.multiplyAdds, try StructuredPruning.multiplyAdds(graph, imageShape: [5, 9, 11]), what)
                    XCTAssertEqual(op.parameterCount, StructuredPruning.parameterCount(graph), what)
                    XCTAssertEqual(Set(graph.initializers.keys), Set(op.tensorShapes.keys), what)
                    for (name, shape) in op.tensorShapes { XCTAssertEqual(graph.initializers[name]?.shape, shape, "\(what) \(name)") }
                    XCTAssertEqual(graph.nodes.last?.outputs, ["y"], what)
                    XCTAssertEqual(graph.nodes.filter { $0.opType == "Relu" }.count > 0, slot.hasReLU || kind == .fire, what)
                    let y = try Self.run(graph, randomTensor([1, 5, 9, 11], seed: 1))
                    XCTAssertEqual(y.shape, [1, 7] + slot.outputSize, what)
                    checked += 1
                }
            }
        }
        // (kind, β) pairs: 2 each for bottleneck, low rank and Fire, 1 each for multi-branch and depthwise = 8 on each of
        // the 9 same-padded slots; the other slot takes the 5 of bottleneck, low rank and depthwise.
        XCTAssertEqual(checked, 9 * 8 + 5)
    }

    func testInnerWidthsAndKnownCounts() {
        let s = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], batchNorm: true, relu: true)
        XCTAssertEqual(PluggableOperator.innerChannels(kind: .bottleneck, beta: 0.5, slot: s), 4)   // round(3.5) = 4
        XCTAssertEqual(PluggableOperator.innerChannels(kind: .lowRank, beta: 0.01, slot: s), 1)
        XCTAssertEqual(PluggableOperator.innerChannels(kind: .fire, beta: 0.125, slot: s), 1)
        XCTAssertEqual(PluggableOperator.innerChannels(kind: .depthwise, beta: 1, slot: s), 5)
        // Depthwise on 9×11: 99·5·9 + 99·7·5 + 2·7 parameters 5·9 + 35 + 14.
        XCTAssertEqual(PluggableOperator.multiplyAdds(kind: .depthwise, beta: 1, slot: s), 99 * 45 + 99 * 35)
        XCTAssertEqual(PluggableOperator.parameterCount(kind: .depthwise, beta: 1, slot: s), 45 + 35 + 14)
        XCTAssertEqual(PluggableOperator.tensorShapes(kind: .fire, beta: 0.25, slot: s), [
            "squeeze.weight": [2, 5, 1, 1], "expand1x1.weight": [3, 2, 1, 1], "expand3x3.weight": [4, 2, 3, 3],
            "squeeze.bn.scale": [2], "squeeze.bn.bias": [2], "squeeze.bn.mean": [2], "squeeze.bn.var": [2],
            "expand1x1.bn.scale": [3], "expand1x1.bn.bias": [3], "expand1x1.bn.mean": [3], "expand1x1.bn.var": [3],
            "expand3x3.bn.scale": [4], "expand3x3.bn.bias": [4], "expand3x3.bn.mean": [4], "expand3x3.bn.var": [4]])
        XCTAssertEqual(PluggableOperator.tensorShapes(kind: .multiBranch, beta: 1, slot: s)["column.weight"], [3, 5, 3, 1])
        XCTAssertEqual(PluggableOperator.tensorShapes(kind: .lowRank, beta: 0.5, slot: s)["row.weight"], [4, 5, 1, 3])
    }

    // MARK: Exact initializations

    /// Weights with the structure each factorization captures exactly (rank 3 ≤ R = 4 for β = 0.5, C = 7).
    static func structuredWeight(_ kind: OperatorKind, c: Int, ci: Int, k: Int, seed: UInt64) -> Tensor {
        let taps = k * k
        var w = [Float](repeating: 0, count: c * ci * taps)
        switch kind {
        case .lowRank:   // M[(ci, x), (c, y)] = A·B, rank 3
            let a = randomTensor([ci * k, 3], seed: seed).scalars, b = randomTensor([3, c * k], seed: seed + 1).scalars
            for o in 0..<c { for i in 0..<ci { for y in 0..<k { for x in 0..<k {
                var s: Float = 0
                for r in 0..<3 { s += a[(i * k + x) * 3 + r] * b[r * c * k + o * k + y] }
                w[((o * ci + i) * k + y) * k + x] = s
            } } } }
        case .bottleneck:   // W = G ×₀ A ×₁ B, multilinear ranks (3, 3)
            let g = randomTensor([3, 3, taps], seed: seed).scalars
            let a = randomTensor([c, 3], seed: seed + 1).scalars, b = randomTensor([ci, 3], seed: seed + 2).scalars
            for o in 0..<c { for i in 0..<ci { for t in 0..<taps {
                var s: Float = 0
                for p in 0..<3 { for q in 0..<3 { s += a[o * 3 + p] * b[i * 3 + q] * g[(p * 3 + q) * taps + t] } }
                w[(o * ci + i) * taps + t] = s
            } } }
        case .depthwise:   // every W[:, i] = u_i·v_iᵀ
            let u = randomTensor([ci, c], seed: seed).scalars, v = randomTensor([ci, taps], seed: seed + 1).scalars
            for o in 0..<c { for i in 0..<ci { for t in 0..<taps { w[(o * ci + i) * taps + t] = u[i * c + o] * v[i * taps + t] } } }
        case .multiBranch:   // the first ⌈C/2⌉ filters use only the centre row, the others only the centre column
            let r = randomTensor([c, ci, k], seed: seed).scalars
            for o in 0..<c { for i in 0..<ci { for j in 0..<k {
                let (y, x) = o < (c + 1) / 2 ? (k / 2, j) : (j, k / 2)
                w[((o * ci + i) * k + y) * k + x] = r[(o * ci + i) * k + j]
            } } }
        case .fire:
            preconditionFailure("Fire starts from scratch")
        }
        return Tensor(shape: [c, ci, k, k], scalars: w, layout: .plain)
    }

    func testExactInitializationsReproduceTheUnit() throws {
        let cases: [(k: Int, stride: Int, dilation: Int, batchNorm: Bool, relu: Bool)] = [
            (3, 1, 1, true, true), (5, 2, 1, false, true), (3, 2, 2, true, false), (3, 1, 1, false, false)]
        for kind in [OperatorKind.bottleneck, .lowRank, .depthwise, .multiBranch] {
            for (n, c) in cases.enumerated() {
                let slot = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [c.k, c.k], stride: [c.stride, c.stride],
                                     dilation: [c.dilation, c.dilation], batchNorm: c.batchNorm, relu: c.relu,
                                     convBias: n % 2 == 0)
                let weight = Self.structuredWeight(kind, c: 7, ci: 5, k: c.k, seed: UInt64(10 * n + 1))
                let bias = slot.bias == nil ? nil : randomTensor([7], seed: 77)
                let bn = c.batchNorm ? Self.unitBatchNorm(7, seed: UInt64(n)) : nil
                let unit = Self.unitGraph(slot, weight: weight, bias: bias, batchNorm: bn)
                // The slot found in the unit's graph is the hand-made one, and initializing from the graph is the same.
                let found = try OperatorSlots.find(in: unit, imageShape: [5, 9, 11])
                XCTAssertEqual(found.count, 1)
                XCTAssertEqual(found.first?.pads, slot.pads)
                XCTAssertEqual(found.first?.outputSize, slot.outputSize)
                XCTAssertEqual(found.first?.hasReLU, slot.hasReLU)
                let op = try PluggableOperator.initialized(kind: kind, beta: 0.5, slot: found[0], graph: unit)
                let x = randomTensor([2, 5, 9, 11], seed: UInt64(n + 40))
                let expected = try Self.run(unit, x), actual = try Self.run(op.standaloneGraph(), x)
                XCTAssertEqual(actual.shape, expected.shape)
                let scale = Self.maxAbs(expected)
                XCTAssertGreaterThan(scale, 0.1)
                XCTAssertLessThanOrEqual(Self.maxDifference(actual, expected), 1e-4 * scale, "\(kind) case \(n)")
            }
        }
    }

    func testGenericWeightIsNotExactForSmallBeta() throws {
        let slot = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], batchNorm: false, relu: false)
        let weight = randomTensor([7, 5, 3, 3], seed: 123)
        let unit = Self.unitGraph(slot, weight: weight, bias: nil, batchNorm: nil)
        let x = randomTensor([1, 5, 9, 11], seed: 4)
        let expected = try Self.run(unit, x)
        for kind in [OperatorKind.bottleneck, .lowRank, .depthwise, .multiBranch] {
            let op = try PluggableOperator.initialized(kind: kind, beta: 0.15, slot: slot, weight: weight, bias: nil, batchNorm: nil)
            let error = Self.maxDifference(try Self.run(op.standaloneGraph(), x), expected)
            XCTAssertGreaterThan(error, 0.05 * Self.maxAbs(expected), "\(kind) should not be exact on a generic weight")
        }
        // β = 1 gives R = 7, at least both multilinear ranks (7, 5) of any weight (U_in padded with 2 zero columns): the
        // bottleneck is exact again.
        let full = try PluggableOperator.initialized(kind: .bottleneck, beta: 1, slot: slot, weight: weight, bias: nil, batchNorm: nil)
        XCTAssertLessThanOrEqual(Self.maxDifference(try Self.run(full.standaloneGraph(), x), expected), 1e-4 * Self.maxAbs(expected))
    }

    func testFireIsSeededAndKeepsTheUnitBatchNormSlices() throws {
        let slot = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], stride: [2, 2], batchNorm: true, relu: true)
        let bn = Self.unitBatchNorm(7, seed: 8)
        let weight = randomTensor([7, 5, 3, 3], seed: 1)
        let a = try PluggableOperator.initialized(kind: .fire, beta: 0.125, slot: slot, weight: weight, bias: nil, batchNorm: bn, seed: 1)
        let b = try PluggableOperator.initialized(kind: .fire, beta: 0.125, slot: slot, weight: weight, bias: nil, batchNorm: bn, seed: 1)
        let c = try PluggableOperator.initialized(kind: .fire, beta: 0.125, slot: slot, weight: weight, bias: nil, batchNorm: bn, seed: 2)
        XCTAssertEqual(a, b)
        XCTAssertNotEqual(a.tensors["squeeze.weight"], c.tensors["squeeze.weight"])
        XCTAssertEqual(a.tensors["squeeze.weight"]?.shape, [1, 5, 1, 1])
        XCTAssertEqual(a.tensors["expand1x1.bn.scale"]?.scalars, Array(bn.scale[0..<3]))
        XCTAssertEqual(a.tensors["expand3x3.bn.mean"]?.scalars, Array(bn.mean[3..<7]))
        XCTAssertEqual(a.tensors["squeeze.bn.var"]?.scalars, [1])
        // He-normal: the 3×3 expand (fan-in 9) has standard deviation √(2/9) ≈ 0.47.
        let e3 = a.tensors["expand3x3.weight"]!.scalars
        let std = (e3.map { $0 * $0 }.reduce(0, +) / Float(e3.count)).squareRoot()
        XCTAssertEqual(std, (2 / 9 as Float).squareRoot(), accuracy: 0.2)
    }

    // MARK: Training

    /// Every operator as a trainable `GraphNetwork` (BatchNorm in training mode) against finite differences.
    ///
    /// Finite differences are meaningless at a ReLU kink, and with BatchNorm in training mode every parameter moves
    /// every pre-activation of its channel, so a ReLU whose input crosses 0 within ±ε breaks the check by chance. So
    /// the slot has no final ReLU, and Fire's squeeze ReLU (always present) gets its BatchNorm bias raised to 4 so
    /// its inputs stay positive. Fire also gets β = 0.5 (S = 2): with a one-channel squeeze each expand BatchNorm sees
    /// a single input channel and is nearly scale-invariant in its weight, too curved for finite differences. The
    /// forward path with every ReLU is checked against the unit in `testExactInitializationsReproduceTheUnit`.
    func testGradientsOfEveryOperator() throws {
        for (n, kind) in OperatorKind.allCases.enumerated() {
            let slot = Self.slot(ci: 3, co: 4, h: 5, w: 5, k: [3, 3], batchNorm: true, relu: false)
            let seed = UInt64(n + 10)
            var op = try PluggableOperator.initialized(kind: kind, beta: kind == .fire ? 0.5 : kind.defaultBeta, slot: slot,
                                                       weight: randomTensor([4, 3, 3, 3], seed: seed), bias: nil,
                                                       batchNorm: Self.unitBatchNorm(4, seed: 2), seed: seed)
            if kind == .fire { op.tensors["squeeze.bn.bias"] = Tensor(shape: [2], repeating: 4) }
            let net = try GraphNetwork(graph: op.standaloneGraph(), imageShape: [3, 5, 5])
            let trainable = Set(net.namedParameters().filter { $0.parameter.isTrainable }.map(\.name))
            XCTAssertEqual(trainable, Set(op.tensorShapes.keys.filter { !$0.hasSuffix(".mean") && !$0.hasSuffix(".var") }),
                           "\(kind) parameters")
            let report = checkGradients(net, input: randomTensor([2, 5, 5, 3], seed: seed + 30), epsilon: 1e-3,
                                        tolerance: 1e-2, samples: 32)
            XCTAssertGreaterThan(report.checked, 60, "\(kind)")
        }
    }

    func testAdoptTensorsReadsTrainedValuesBack() throws {
        let slot = Self.slot(ci: 3, co: 4, h: 5, w: 5, k: [3, 3], batchNorm: true, relu: true)
        var op = try PluggableOperator.initialized(kind: .lowRank, beta: 0.5, slot: slot,
                                                   weight: randomTensor([4, 3, 3, 3], seed: 1), bias: nil,
                                                   batchNorm: Self.unitBatchNorm(4, seed: 2))
        let net = try GraphNetwork(graph: op.standaloneGraph(), imageShape: [3, 5, 5])
        for (_, p) in net.namedParameters() { for i in 0..<p.count { p.value.scalars[i] += 0.25 } }
        let exported = net.exportGraph()
        let before = op.tensors
        try op.adoptTensors(from: exported)
        XCTAssertEqual(op.tensors["row.weight"]!.scalars, before["row.weight"]!.scalars.map { $0 + 0.25 })
        XCTAssertEqual(op.tensors["bn.bias"]!.scalars, before["bn.bias"]!.scalars.map { $0 + 0.25 })
        XCTAssertEqual(op.tensors["bn.mean"]!.scalars, before["bn.mean"]!.scalars.map { $0 + 0.25 }, "buffers too")

        var missing = exported
        missing.initializers["column.weight"] = nil
        XCTAssertThrowsError(try op.adoptTensors(from: missing)) { XCTAssertTrue("\($0)".contains("column.weight"), "\($0)") }
        var wrong = exported
        wrong.initializers["bn.var"] = .float(Tensor(shape: [5], repeating: 1))
        XCTAssertThrowsError(try op.adoptTensors(from: wrong)) { XCTAssertTrue("\($0)".contains("bn.var"), "\($0)") }
        XCTAssertEqual(op.tensors["row.weight"]!.scalars, before["row.weight"]!.scalars.map { $0 + 0.25 }, "unchanged on a throw")
    }

    /// Distillation can grow a convolution that a BatchNorm follows until the variance exceeds float16's range; the
    /// power-of-two rescaling brings every variance to at most 2¹⁴ and leaves the function unchanged (up to ε).
    func testBatchNormVariancesAreRescaledIntoHalfRangeWithoutChangingTheFunction() throws {
        let slot = Self.slot(ci: 3, co: 6, h: 5, w: 5, k: [3, 3], batchNorm: true, relu: true)
        for kind in OperatorKind.allCases {
            var op = try PluggableOperator.initialized(kind: kind, beta: 0.5, slot: slot,
                                                       weight: randomTensor([6, 3, 3, 3], seed: 1), bias: nil,
                                                       batchNorm: Self.unitBatchNorm(6, seed: 2))
            // Grow the convolution before each BatchNorm by 2¹⁰ on channel 0: variance × 2²⁰, mean × 2¹⁰.
            for name in op.tensors.keys where name.hasSuffix(".var") {
                let bn = String(name.dropLast(4))
                let conv = bn == "bn" ? (["bottleneck": "expand", "lowrank": "column", "depthwise": "pointwise"][kind.rawValue] ?? "")
                                      : String(bn.dropLast(3))
                let w = try XCTUnwrap(op.tensors[conv + ".weight"], "\(kind) \(conv)")
                let per = w.count / w.shape[0]
                for i in 0..<per { op.tensors[conv + ".weight"]!.scalars[i] *= 1024 }
                op.tensors[bn + ".mean"]!.scalars[0] *= 1024
                op.tensors[bn + ".var"]!.scalars[0] *= 1024 * 1024
            }
            XCTAssertTrue(op.tensors.values.contains { $0.scalars.contains { $0 > 65504 } }, "\(kind): the test must overflow half")
            let fixed = op.withBatchNormVariancesBelowHalfRange()
            for (name, t) in fixed.tensors where name.hasSuffix(".var") {
                XCTAssertLessThanOrEqual(t.scalars.max()!, 16384, "\(kind) \(name)")
            }
            let x = randomTensor([2, 5, 5, 3], seed: 3)
            let before = try GraphNetwork(graph: op.standaloneGraph(), imageShape: [3, 5, 5])
            let after = try GraphNetwork(graph: fixed.standaloneGraph(), imageShape: [3, 5, 5])
            let a = before.forward(x), b = after.forward(x)
            let scale = a.scalars.map(abs).max()!
            for i in 0..<a.count { XCTAssertEqual(a.scalars[i], b.scalars[i], accuracy: 1e-4 * scale, "\(kind) [\(i)]") }
            XCTAssertEqual(fixed.withBatchNormVariancesBelowHalfRange().tensors, fixed.tensors, "\(kind): a second pass changes nothing")
        }
    }

    // MARK: Several operators in one graph

    func testPrefixedOperatorsCoexistInOneGraph() throws {
        let first = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], stride: [2, 2], batchNorm: true, relu: true)
        let second = Self.slot(ci: 7, co: 6, h: 5, w: 6, k: [3, 3], batchNorm: false, relu: true)
        let a = try PluggableOperator.initialized(kind: .fire, beta: 0.25, slot: first, weight: randomTensor([7, 5, 3, 3], seed: 1),
                                                  bias: nil, batchNorm: Self.unitBatchNorm(7, seed: 3))
        let b = try PluggableOperator.initialized(kind: .multiBranch, beta: 1, slot: second,
                                                  weight: randomTensor([6, 7, 3, 3], seed: 2), bias: nil, batchNorm: nil)
        let c = try PluggableOperator.initialized(kind: .bottleneck, beta: 0.5, slot: second,
                                                  weight: randomTensor([6, 7, 3, 3], seed: 4), bias: nil, batchNorm: nil)
        let partA = a.nodes(input: "x", output: "mid", prefix: "s0.")
        let partB = b.nodes(input: "mid", output: "left", prefix: "s1.")
        let partC = c.nodes(input: "mid", output: "y2", prefix: "s2.")
        // Two more of the same kind under other prefixes must not collide either.
        let partD = b.nodes(input: "mid", output: "right", prefix: "s3.")
        let parts = [partA, partB, partC, partD]
        let nodes = parts.flatMap(\.nodes)
        XCTAssertEqual(Set(nodes.map(\.name)).count, nodes.count, "node names")
        XCTAssertEqual(Set(nodes.flatMap(\.outputs)).count, nodes.count, "values")
        let initializerCount = parts.map(\.initializers.count).reduce(0, +)
        var initializers: [String: Constant] = [:]
        for p in parts { initializers.merge(p.initializers) { x, _ in x } }
        XCTAssertEqual(initializers.count, initializerCount, "initializer names")
        XCTAssertTrue(initializers.keys.allSatisfy { $0.hasPrefix("s0.") || $0.hasPrefix("s1.") || $0.hasPrefix("s2.") || $0.hasPrefix("s3.") })
        let concat = Node(name: "join", opType: "Concat", inputs: ["left", "y2", "right"], outputs: ["y"], attributes: ["axis": .int(1)])
        let graph = Graph(inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(5), .fixed(9), .fixed(11)])],
                          outputs: [ValueInfo(name: "y", shape: nil)], nodes: nodes + [concat], initializers: initializers)
        let x = randomTensor([1, 5, 9, 11], seed: 6)
        let y = try Self.run(graph, x)
        XCTAssertEqual(y.shape, [1, 18, 5, 6])
        // Equal to the operators run one after the other.
        let mid = try Self.run(a.standaloneGraph(), x)
        let left = try Self.run(b.standaloneGraph(), mid), middle = try Self.run(c.standaloneGraph(), mid)
        let expected = Tensor(shape: [1, 18, 5, 6], scalars: left.scalars + middle.scalars + left.scalars)
        XCTAssertLessThanOrEqual(Self.maxDifference(y, expected), 1e-5 * max(1, Self.maxAbs(expected)))
    }

    // MARK: Applicability

    func testApplicabilityAndBadArguments() throws {
        let valid = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], pads: [0, 0, 0, 0], batchNorm: true, relu: true)
        XCTAssertFalse(valid.isSamePadded)
        XCTAssertFalse(OperatorKind.multiBranch.isApplicable(to: valid))
        XCTAssertFalse(OperatorKind.fire.isApplicable(to: valid))
        for kind in [OperatorKind.bottleneck, .lowRank, .depthwise] { XCTAssertTrue(kind.isApplicable(to: valid)) }
        let asymmetric = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], pads: [0, 0, 2, 2], batchNorm: true, relu: true)
        XCTAssertFalse(OperatorKind.fire.isApplicable(to: asymmetric))
        let same = Self.slot(ci: 5, co: 7, h: 9, w: 11, k: [3, 3], batchNorm: true, relu: true)
        for kind in OperatorKind.allCases { XCTAssertTrue(kind.isApplicable(to: same), "\(kind)") }
        XCTAssertEqual(OperatorKind.allCases.filter(\.usesBeta), [.bottleneck, .lowRank, .fire])
        XCTAssertEqual(OperatorKind.fire.defaultBeta, 0.25)

        let w = randomTensor([7, 5, 3, 3], seed: 1), bn = Self.unitBatchNorm(7, seed: 1)
        XCTAssertThrowsError(try PluggableOperator.initialized(kind: .multiBranch, beta: 1, slot: valid, weight: w, bias: nil,
                                                               batchNorm: bn)) { XCTAssertTrue("\($0)".contains("not applicable"), "\($0)") }
        XCTAssertThrowsError(try PluggableOperator.initialized(kind: .lowRank, beta: 0.5, slot: same,
                                                               weight: randomTensor([7, 5, 5, 5], seed: 1), bias: nil,
                                                               batchNorm: bn)) { XCTAssertTrue("\($0)".contains("weight"), "\($0)") }
        XCTAssertThrowsError(try PluggableOperator.initialized(kind: .lowRank, beta: 0, slot: same, weight: w, bias: nil, batchNorm: bn))
        let depthwise = try PluggableOperator.initialized(kind: .depthwise, beta: 0.3, slot: same, weight: w, bias: nil, batchNorm: bn)
        XCTAssertEqual(depthwise.beta, 1, "β is stored as 1 for kinds that do not use it")
    }
}
