// Low-rank graph rewrites:
// - truncated SVD of fully connected layers (Denton et al., "Exploiting Linear Structure Within Convolutional Networks
//   for Efficient Evaluation", NeurIPS 2014, https://arxiv.org/abs/1404.0736);
// - spatial factorization of a k×k convolution into k×1 then 1×k (Jaderberg, Vedaldi & Zisserman, "Speeding up
//   Convolutional Neural Networks with Low Rank Expansions", BMVC 2014, https://arxiv.org/abs/1405.3866, scheme 2,
//   here initialized in closed form by the SVD of the reshaped kernel as in Tai et al., ICLR 2016,
//   https://arxiv.org/abs/1511.06067);
// - Tucker-2 factorization into 1×1 → k×k → 1×1 (Kim et al., "Compression of Deep Convolutional Neural Networks for
//   Fast and Low Power Mobile Applications", ICLR 2016, https://arxiv.org/abs/1511.06530), by HOSVD.
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor

/// What one low-rank rewrite did to one layer.
public struct LowRankReport: Sendable, Equatable, Codable {
    /// `svd` (Gemm/MatMul), `spatial` (k×1 + 1×k), `tucker2` (1×1 + k×k + 1×1).
    public var method: String
    /// The rewritten node and its weight initializer.
    public var node: String
    public var weight: String
    public var weightShape: [Int]
    /// The chosen rank(s): `[r]`, or `[r_in, r_out]` for Tucker-2.
    public var ranks: [Int]
    /// The largest rank(s) possible for this layer (same order as `ranks`).
    public var fullRanks: [Int]
    /// Fraction of ‖W‖²_F kept by the factorization (Σ kept s² / Σ s² for SVD; ‖core‖²/‖W‖² for Tucker-2).
    public var keptEnergy: Double
    /// Relative Frobenius error ‖W − Ŵ‖/‖W‖ of the factorized weight.
    public var relativeError: Double
    /// Weights + bias of the layer before and after.
    public var parametersBefore: Int
    public var parametersAfter: Int
    /// Multiply-adds of the layer for one image (one row for Gemm/MatMul); nil when the layer's input size could not
    /// be determined (a convolution without `imageShape`).
    public var multiplyAddsBefore: Int?
    public var multiplyAddsAfter: Int?
    /// Names of the nodes that replace `node`, in order.
    public var newNodes: [String]
}

/// Low-rank factorizations of one layer of a `Graph` (ONNX semantics; conv weights OIHW). Each returns a new graph in
/// which the node is replaced, in place, by a chain of nodes computing the factorized layer, plus a `LowRankReport`.
///
/// New initializers are named after the original weight: `features.0.weight` → `features.0.lowrank.0.weight`,
/// `features.0.lowrank.1.weight`, … (made unique if taken); the bias keeps its initializer and moves to the last
/// node; the original weight is removed when no other node reads it. New nodes are `<node>.lowrank.<i>`, new values
/// `<output>.lowrank.<i>`, all unique in the graph.
///
/// Singular vectors come from `SVD.truncated` (exact Jacobi SVD for small layers, the randomized range finder for
/// large fully connected ones). A rank `.energy(f)` picks the smallest rank keeping the fraction `f` of Σs²; for a
/// large layer it grows the computed rank (doubling) until that fraction is reached.
public enum LowRank {
    public enum Rank: Sendable, Equatable { case count(Int), energy(Double) }   // energy: keep Σs² fraction

    /// Gemm W → two Gemms (rank r), or MatMul with a constant right operand → two MatMuls.
    ///
    /// `Gemm(A, B, C)` with `W = transB ? B : Bᵀ` ([out, in]) ≈ `L·R`, `L = U_r·√S_r` [out, r], `R = √S_r·V_rᵀ`
    /// [r, in]: `Gemm(A, R, transA, transB = 1, alpha)` → `Gemm(H, L, C, transB = 1, beta)`.
    /// `MatMul(X, B)` with B [in, out] ≈ `(V_r√S_r)·(√S_r U_rᵀ)`: `MatMul(X, B₁ [in, r])` → `MatMul(H, B₂ [r, out])`.
    public static func factorizeLinear(_ graph: Graph, node name: String, rank: Rank) throws -> (Graph, LowRankReport) {
        let (index, node) = try findNode(graph, name, ops: ["Gemm", "MatMul"])
        let weightName = node.inputs.count > 1 ? node.inputs[1] : ""
        let b = try floatInitializer(graph, weightName, node: node, rank: 2)
        let isGemm = node.opType == "Gemm"
        let transB = isGemm && (node.int("transB") ?? 0) != 0
        // W [out, in]
        let out = transB ? b.shape[0] : b.shape[1], inF = transB ? b.shape[1] : b.shape[0]
        var w = [Float](repeating: 0, count: out * inF)
        if transB { w = b.scalars } else { for i in 0..<inF { for o in 0..<out { w[o * inF + i] = b.scalars[i * out + o] } } }
        let svd = try rankedSVD(w, rows: out, cols: inF, rank: rank, node: node, opset: graph.opsetVersion)
        let r = svd.s.count
        var left = [Float](repeating: 0, count: out * r), right = [Float](repeating: 0, count: r * inF)
        for j in 0..<r {
            let root = svd.s[j].squareRoot()
            for o in 0..<out { left[o * r + j] = svd.u[o * r + j] * root }
            for i in 0..<inF { right[j * inF + i] = svd.vt[j * inF + i] * root }
        }
        var names = NameAllocator(graph)
        var g = graph
        let w0 = names.initializer(derived(weightName, 0)), w1 = names.initializer(derived(weightName, 1))
        let hidden = names.value(node.outputs[0] + ".lowrank.0")
        let n0 = names.node(node.name + ".lowrank.0"), n1 = names.node(node.name + ".lowrank.1")
        var first: Node, second: Node
        if isGemm {
            g.initializers[w0] = .float(Tensor(shape: [r, inF], scalars: right))
            g.initializers[w1] = .float(Tensor(shape: [out, r], scalars: left))
            var a0: [String: Attribute] = ["transB": .int(1), "alpha": .float(node.float("alpha") ?? 1), "beta": .float(1)]
            if let t = node.int("transA") { a0["transA"] = .int(t) }
            first = Node(name: n0, opType: "Gemm", inputs: [node.inputs[0], w0], outputs: [hidden], attributes: a0)
            var inputs1 = [hidden, w1]
            if node.inputs.count > 2, !node.inputs[2].isEmpty { inputs1.append(node.inputs[2]) }
            second = Node(name: n1, opType: "Gemm", inputs: inputs1, outputs: node.outputs,
                          attributes: ["transB": .int(1), "alpha": .float(1), "beta": .float(node.float("beta") ?? 1)])
        } else {
            // B₁ = Rᵀ [in, r], B₂ = Lᵀ [r, out]
            var b1 = [Float](repeating: 0, count: inF * r), b2 = [Float](repeating: 0, count: r * out)
            for j in 0..<r {
                for i in 0..<inF { b1[i * r + j] = right[j * inF + i] }
                for o in 0..<out { b2[j * out + o] = left[o * r + j] }
            }
            g.initializers[w0] = .float(Tensor(shape: [inF, r], scalars: b1))
            g.initializers[w1] = .float(Tensor(shape: [r, out], scalars: b2))
            first = Node(name: n0, opType: "MatMul", inputs: [node.inputs[0], w0], outputs: [hidden])
            second = Node(name: n1, opType: "MatMul", inputs: [hidden, w1], outputs: node.outputs)
        }
        first.domain = node.domain
        second.domain = node.domain
        g.nodes.replaceSubrange(index...index, with: [first, second])
        removeIfUnused(&g, weightName)
        let biasCount = isGemm && node.inputs.count > 2 && !node.inputs[2].isEmpty
            ? (graph.initializers[node.inputs[2]]?.shape.reduce(1, *) ?? 0) : 0
        let reconstructed = matmul(left, right, out, r, inF)
        let report = LowRankReport(
            method: "svd", node: node.name, weight: weightName, weightShape: b.shape, ranks: [r],
            fullRanks: [min(out, inF)], keptEnergy: svd.keptEnergy, relativeError: relativeError(w, reconstructed),
            parametersBefore: out * inF + biasCount, parametersAfter: r * (out + inF) + biasCount,
            multiplyAddsBefore: out * inF, multiplyAddsAfter: r * (out + inF), newNodes: [n0, n1])
        return (g, report)
    }

    /// Conv k_h×k_w → (k_h×1 then 1×k_w) with the stride/padding split across them (Jaderberg et al. scheme 2).
    ///
    /// The OIHW weight is reshaped to M[(c, y), (o, x)] = W[o, c, y, x] ([C_in·k_h, C_out·k_w]); its rank-r SVD
    /// gives the vertical filters V[j, c, y, 0] = U[(c, y), j]·√s_j (C_in → r, stride (s_h, 1), pads top/bottom,
    /// dilation (d_h, 1), no bias) and the horizontal filters H[o, j, 0, x] = √s_j·Vᵀ[j, (o, x)] (r → C_out,
    /// stride (1, s_w), pads left/right, dilation (1, d_w), the original bias). The first convolution has no bias, so
    /// its output is 0 where the second one pads: the rewrite is exact when rank(M) ≤ r.
    /// `imageShape` ([C, H, W] of the graph input) lets the report count multiply-adds.
    public static func factorizeSpatial(_ graph: Graph, node name: String, rank: Rank,
                                        imageShape: [Int]? = nil) throws -> (Graph, LowRankReport) {
        let (index, node) = try findNode(graph, name, ops: ["Conv"])
        let conv = try ConvInfo(graph, node)
        guard conv.kh > 1 && conv.kw > 1 else {
            throw GraphError("spatial factorization needs a k_h×k_w kernel with both sides > 1, got \(conv.kh)×\(conv.kw)",
                             at: node, opset: graph.opsetVersion)
        }
        let (o, c, kh, kw) = (conv.outC, conv.inC, conv.kh, conv.kw)
        let rows = c * kh, cols = o * kw
        var m = [Float](repeating: 0, count: rows * cols)
        let w = conv.weight.scalars
        for oo in 0..<o { for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
            m[(cc * kh + y) * cols + oo * kw + x] = w[((oo * c + cc) * kh + y) * kw + x]
        } } } }
        let svd = try rankedSVD(m, rows: rows, cols: cols, rank: rank, node: node, opset: graph.opsetVersion)
        let r = svd.s.count
        var vertical = [Float](repeating: 0, count: r * c * kh), horizontal = [Float](repeating: 0, count: o * r * kw)
        for j in 0..<r {
            let root = svd.s[j].squareRoot()
            for cc in 0..<c { for y in 0..<kh { vertical[(j * c + cc) * kh + y] = svd.u[(cc * kh + y) * r + j] * root } }
            for oo in 0..<o { for x in 0..<kw { horizontal[(oo * r + j) * kw + x] = svd.vt[j * cols + oo * kw + x] * root } }
        }
        var names = NameAllocator(graph)
        var g = graph
        let w0 = names.initializer(derived(conv.weightName, 0)), w1 = names.initializer(derived(conv.weightName, 1))
        let hidden = names.value(node.outputs[0] + ".lowrank.0")
        let n0 = names.node(node.name + ".lowrank.0"), n1 = names.node(node.name + ".lowrank.1")
        g.initializers[w0] = .float(Tensor(shape: [r, c, kh, 1], scalars: vertical, layout: .plain))
        g.initializers[w1] = .float(Tensor(shape: [o, r, 1, kw], scalars: horizontal, layout: .plain))
        var first = Node(name: n0, opType: "Conv", inputs: [node.inputs[0], w0], outputs: [hidden], attributes: [
            "kernel_shape": .ints([kh, 1]), "strides": .ints([conv.strides[0], 1]), "dilations": .ints([conv.dilations[0], 1]),
            "pads": .ints([conv.pads[0], 0, conv.pads[2], 0]), "group": .int(1)])
        var second = Node(name: n1, opType: "Conv", inputs: [hidden, w1] + (conv.biasName.map { [$0] } ?? []),
                          outputs: node.outputs, attributes: [
            "kernel_shape": .ints([1, kw]), "strides": .ints([1, conv.strides[1]]), "dilations": .ints([1, conv.dilations[1]]),
            "pads": .ints([0, conv.pads[1], 0, conv.pads[3]]), "group": .int(1)])
        first.domain = node.domain
        second.domain = node.domain
        g.nodes.replaceSubrange(index...index, with: [first, second])
        removeIfUnused(&g, conv.weightName)

        // Reconstructed kernel for the error: W'[o, c, y, x] = Σ_j V[j, c, y]·H[o, j, x].
        var rebuilt = [Float](repeating: 0, count: w.count)
        for oo in 0..<o { for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
            var s: Float = 0
            for j in 0..<r { s += vertical[(j * c + cc) * kh + y] * horizontal[(oo * r + j) * kw + x] }
            rebuilt[((oo * c + cc) * kh + y) * kw + x] = s
        } } } }
        var macsBefore: Int?, macsAfter: Int?
        if let imageShape, let (h, wIn) = inputSpatialSize(graph, value: node.inputs[0], imageShape: imageShape) {
            let ho = conv.outputSize(h, axis: 0), wo = conv.outputSize(wIn, axis: 1)
            macsBefore = o * c * kh * kw * ho * wo
            macsAfter = r * c * kh * ho * wIn + o * r * kw * ho * wo
        }
        let report = LowRankReport(
            method: "spatial", node: node.name, weight: conv.weightName, weightShape: conv.weight.shape, ranks: [r],
            fullRanks: [min(rows, cols)], keptEnergy: svd.keptEnergy, relativeError: relativeError(w, rebuilt),
            parametersBefore: w.count + conv.biasCount, parametersAfter: r * c * kh + o * r * kw + conv.biasCount,
            multiplyAddsBefore: macsBefore, multiplyAddsAfter: macsAfter, newNodes: [n0, n1])
        return (g, report)
    }

    /// Conv → Tucker-2: 1×1 (C_in→r_in) → k×k (r_in→r_out) → 1×1 (r_out→C_out, with the bias).
    ///
    /// HOSVD: U_out = the leading r_out left singular vectors of the mode-0 unfolding W₍₀₎ [C_out, C_in·k_h·k_w],
    /// U_in = those of the mode-1 unfolding W₍₁₎ [C_in, C_out·k_h·k_w]; core G = W ×₀ U_outᵀ ×₁ U_inᵀ
    /// [r_out, r_in, k_h, k_w]. Nodes: Conv 1×1 with weight U_inᵀ [r_in, C_in, 1, 1] (no bias) → Conv with G and the
    /// original strides, pads and dilations (no bias) → Conv 1×1 with U_out [C_out, r_out, 1, 1] and the bias. Exact
    /// when the multilinear ranks of W are ≤ (r_out, r_in). Only `group == 1` convolutions.
    public static func tucker2(_ graph: Graph, node name: String, inputRank: Rank, outputRank: Rank,
                               imageShape: [Int]? = nil) throws -> (Graph, LowRankReport) {
        let (index, node) = try findNode(graph, name, ops: ["Conv"])
        let conv = try ConvInfo(graph, node)
        let (o, c, kh, kw) = (conv.outC, conv.inC, conv.kh, conv.kw)
        let area = kh * kw
        let w = conv.weight.scalars
        // Mode-0 unfolding is W itself ([O, C·k·k] row-major). Mode-1: [C, O·k·k].
        var mode1 = [Float](repeating: 0, count: w.count)
        for oo in 0..<o { for cc in 0..<c { for p in 0..<area { mode1[(cc * o + oo) * area + p] = w[(oo * c + cc) * area + p] } } }
        let outSVD = try rankedSVD(w, rows: o, cols: c * area, rank: outputRank, node: node, opset: graph.opsetVersion,
                                   leftOnly: true)
        let inSVD = try rankedSVD(mode1, rows: c, cols: o * area, rank: inputRank, node: node, opset: graph.opsetVersion,
                                  leftOnly: true)
        let ro = outSVD.s.count, ri = inSVD.s.count
        let uOut = outSVD.u, uIn = inSVD.u                    // [O, ro], [C, ri] row-major
        // T[o, b, p] = Σ_c U_in[c, b]·W[o, c, p];  G[a, b, p] = Σ_o U_out[o, a]·T[o, b, p]   (Double)
        var t = [Double](repeating: 0, count: o * ri * area)
        for oo in 0..<o { for cc in 0..<c { for b in 0..<ri {
            let f = Double(uIn[cc * ri + b])
            if f == 0 { continue }
            for p in 0..<area { t[(oo * ri + b) * area + p] += f * Double(w[(oo * c + cc) * area + p]) }
        } } }
        var core = [Double](repeating: 0, count: ro * ri * area)
        for oo in 0..<o { for a in 0..<ro {
            let f = Double(uOut[oo * ro + a])
            if f == 0 { continue }
            for q in 0..<(ri * area) { core[a * ri * area + q] += f * t[oo * ri * area + q] }
        } }
        let coreF = core.map(Float.init)
        var first = [Float](repeating: 0, count: ri * c)
        for b in 0..<ri { for cc in 0..<c { first[b * c + cc] = uIn[cc * ri + b] } }
        var names = NameAllocator(graph)
        var g = graph
        let w0 = names.initializer(derived(conv.weightName, 0)), w1 = names.initializer(derived(conv.weightName, 1))
        let w2 = names.initializer(derived(conv.weightName, 2))
        let h0 = names.value(node.outputs[0] + ".lowrank.0"), h1 = names.value(node.outputs[0] + ".lowrank.1")
        let n0 = names.node(node.name + ".lowrank.0"), n1 = names.node(node.name + ".lowrank.1")
        let n2 = names.node(node.name + ".lowrank.2")
        g.initializers[w0] = .float(Tensor(shape: [ri, c, 1, 1], scalars: first, layout: .plain))
        g.initializers[w1] = .float(Tensor(shape: [ro, ri, kh, kw], scalars: coreF, layout: .plain))
        g.initializers[w2] = .float(Tensor(shape: [o, ro, 1, 1], scalars: uOut, layout: .plain))
        let pointwise: [String: Attribute] = ["kernel_shape": .ints([1, 1]), "strides": .ints([1, 1]),
                                              "pads": .ints([0, 0, 0, 0]), "dilations": .ints([1, 1]), "group": .int(1)]
        var nodes = [
            Node(name: n0, opType: "Conv", inputs: [node.inputs[0], w0], outputs: [h0], attributes: pointwise),
            Node(name: n1, opType: "Conv", inputs: [h0, w1], outputs: [h1], attributes: [
                "kernel_shape": .ints([kh, kw]), "strides": .ints(conv.strides), "pads": .ints(conv.pads),
                "dilations": .ints(conv.dilations), "group": .int(1)]),
            Node(name: n2, opType: "Conv", inputs: [h1, w2] + (conv.biasName.map { [$0] } ?? []), outputs: node.outputs,
                 attributes: pointwise),
        ]
        for i in nodes.indices { nodes[i].domain = node.domain }
        g.nodes.replaceSubrange(index...index, with: nodes)
        removeIfUnused(&g, conv.weightName)

        // Ŵ = G ×₀ U_out ×₁ U_in
        var rebuilt = [Float](repeating: 0, count: w.count)
        var tmp = [Double](repeating: 0, count: o * ri * area)       // Σ_a U_out[o, a] G[a, b, p]
        for oo in 0..<o { for a in 0..<ro {
            let f = Double(uOut[oo * ro + a])
            for q in 0..<(ri * area) { tmp[oo * ri * area + q] += f * Double(coreF[a * ri * area + q]) }
        } }
        for oo in 0..<o { for cc in 0..<c { for p in 0..<area {
            var s = 0.0
            for b in 0..<ri { s += Double(uIn[cc * ri + b]) * tmp[(oo * ri + b) * area + p] }
            rebuilt[(oo * c + cc) * area + p] = Float(s)
        } } }
        let total = w.reduce(0.0) { $0 + Double($1) * Double($1) }
        let kept = total > 0 ? core.reduce(0.0) { $0 + $1 * $1 } / total : 1
        var macsBefore: Int?, macsAfter: Int?
        if let imageShape, let (h, wIn) = inputSpatialSize(graph, value: node.inputs[0], imageShape: imageShape) {
            let ho = conv.outputSize(h, axis: 0), wo = conv.outputSize(wIn, axis: 1)
            macsBefore = o * c * area * ho * wo
            macsAfter = ri * c * h * wIn + ro * ri * area * ho * wo + o * ro * ho * wo
        }
        let report = LowRankReport(
            method: "tucker2", node: node.name, weight: conv.weightName, weightShape: conv.weight.shape, ranks: [ri, ro],
            fullRanks: [min(c, o * area), min(o, c * area)], keptEnergy: min(1, kept), relativeError: relativeError(w, rebuilt),
            parametersBefore: w.count + conv.biasCount, parametersAfter: ri * c + ro * ri * area + o * ro + conv.biasCount,
            multiplyAddsBefore: macsBefore, multiplyAddsAfter: macsAfter, newNodes: [n0, n1, n2])
        return (g, report)
    }

    /// The rank a `Rank` asks for, given descending singular values (throws on a count outside 1…s.count or an
    /// energy outside (0, 1]).
    public static func resolve(_ rank: Rank, singularValues s: [Float]) throws -> Int {
        switch rank {
        case let .count(r):
            guard r >= 1 && r <= s.count else { throw GraphError("rank \(r) outside 1…\(s.count)") }
            return r
        case let .energy(f):
            guard f > 0 && f <= 1 else { throw GraphError("energy fraction \(f) outside (0, 1]") }
            return max(1, SVD.rank(keepingEnergy: f, of: s))
        }
    }

    // MARK: Internals

    /// Rank-r SVD of a row-major matrix: U rows×r, S r, Vt r×cols (Vt empty with `leftOnly`), and the kept energy.
    static func rankedSVD(_ a: [Float], rows: Int, cols: Int, rank: Rank, node: Node, opset: Int,
                          leftOnly: Bool = false) throws -> (u: [Float], s: [Float], vt: [Float], keptEnergy: Double) {
        let k = min(rows, cols)
        let total = a.reduce(0.0) { $0 + Double($1) * Double($1) }
        func energy(_ s: [Float]) -> Double { total > 0 ? min(1, s.reduce(0.0) { $0 + Double($1) * Double($1) } / total) : 1 }
        func fail(_ message: String) -> GraphError { GraphError(message, at: node, opset: opset) }
        switch rank {
        case let .count(r):
            guard r >= 1 && r <= k else { throw fail("rank \(r) outside 1…\(k) for a \(rows)×\(cols) weight matrix") }
            let f = SVD.truncated(a, rows: rows, cols: cols, rank: r, leftOnly: leftOnly)
            return (f.u, f.s, leftOnly ? [] : f.vt, energy(f.s))
        case let .energy(fraction):
            guard fraction > 0 && fraction <= 1 else { throw fail("energy fraction \(fraction) outside (0, 1]") }
            if total == 0 {
                let f = SVD.truncated(a, rows: rows, cols: cols, rank: 1, leftOnly: leftOnly)
                return (f.u, f.s, leftOnly ? [] : f.vt, 1)
            }
            // Grow the computed rank until the fraction is reached (one exact SVD for small matrices). With the
            // whole spectrum the total is Σs² itself (so `.energy(1)` is exactly the full rank); with a partial one it
            // is ‖A‖²_F.
            var guess = fraction >= 1 ? k : min(k, 256)
            while true {
                let f = SVD.truncated(a, rows: rows, cols: cols, rank: guess, leftOnly: leftOnly)
                let kept = f.s.reduce(0.0) { $0 + Double($1) * Double($1) }
                let reference = guess == k ? kept : total
                if kept >= fraction * reference || guess == k {
                    var acc = 0.0, r = guess
                    for (i, v) in f.s.enumerated() {
                        acc += Double(v) * Double(v)
                        if acc >= fraction * reference { r = i + 1; break }
                    }
                    r = max(1, r)
                    var u = [Float](repeating: 0, count: rows * r)
                    for i in 0..<rows { for j in 0..<r { u[i * r + j] = f.u[i * guess + j] } }
                    let s = Array(f.s.prefix(r))
                    return (u, s, leftOnly ? [] : Array(f.vt.prefix(r * cols)), energy(s))
                }
                guess = min(k, guess * 2)
            }
        }
    }

    static func findNode(_ graph: Graph, _ name: String, ops: Set<String>) throws -> (Int, Node) {
        guard let index = graph.nodes.firstIndex(where: { $0.name == name }) else {
            throw GraphError("no node named '\(name)' in graph '\(graph.name)'", opset: graph.opsetVersion)
        }
        let node = graph.nodes[index]
        guard ops.contains(node.opType), node.domain.isEmpty || node.domain == "ai.onnx" else {
            throw GraphError("low-rank factorization applies to \(ops.sorted().joined(separator: "/")), not \(node.opType)",
                             at: node, opset: graph.opsetVersion)
        }
        return (index, node)
    }

    static func floatInitializer(_ graph: Graph, _ name: String, node: Node, rank: Int) throws -> Tensor {
        guard !name.isEmpty, case let .float(t)? = graph.initializers[name] else {
            throw GraphError("weight '\(name)' is not a float initializer (the weight must be a constant)",
                             at: node, opset: graph.opsetVersion)
        }
        guard t.rank == rank, !t.shape.contains(0) else {
            throw GraphError("weight '\(name)' has shape \(t.shape), expected a non-empty rank-\(rank) tensor",
                             at: node, opset: graph.opsetVersion)
        }
        return t
    }

    /// `features.0.weight` → `features.0.lowrank.<i>.weight`; other names get `.lowrank.<i>` appended.
    static func derived(_ weight: String, _ i: Int) -> String {
        weight.hasSuffix(".weight") ? String(weight.dropLast(7)) + ".lowrank.\(i).weight" : weight + ".lowrank.\(i)"
    }

    static func removeIfUnused(_ g: inout Graph, _ name: String) {
        if g.nodes.contains(where: { $0.inputs.contains(name) }) || g.outputs.contains(where: { $0.name == name }) { return }
        g.initializers[name] = nil
    }

    static func matmul(_ a: [Float], _ b: [Float], _ m: Int, _ k: Int, _ n: Int) -> [Float] {
        var c = [Float](repeating: 0, count: m * n)
        for i in 0..<m { for t in 0..<k {
            let f = a[i * k + t]
            if f == 0 { continue }
            for j in 0..<n { c[i * n + j] += f * b[t * n + j] }
        } }
        return c
    }

    static func relativeError(_ w: [Float], _ approx: [Float]) -> Double {
        var num = 0.0, den = 0.0
        for i in 0..<w.count {
            let d = Double(w[i]) - Double(approx[i])
            num += d * d
            den += Double(w[i]) * Double(w[i])
        }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }

    /// [H, W] of a rank-4 value for a graph input of `imageShape` ([C, H, W]), by running the graph truncated at that
    /// value through the inference engine on one zero image; nil when that fails.
    static func inputSpatialSize(_ graph: Graph, value: String, imageShape: [Int]) -> (Int, Int)? {
        guard imageShape.count == 3, imageShape.allSatisfy({ $0 > 0 }), let input = graph.inputs.first else { return nil }
        if input.name == value { return (imageShape[1], imageShape[2]) }
        var g = graph
        g.outputs = [ValueInfo(name: value, shape: nil)]
        guard let engine = try? InferenceEngine(graph: g),
              let y = try? engine.run(Tensor(shape: [1] + imageShape, layout: .nchw)), y.rank == 4 else { return nil }
        return (y.shape[2], y.shape[3])
    }

    /// A convolution node's weight, bias and attributes, validated.
    struct ConvInfo {
        let weightName: String
        let weight: Tensor
        let biasName: String?
        let biasCount: Int
        let outC: Int, inC: Int, kh: Int, kw: Int
        let strides: [Int], pads: [Int], dilations: [Int]

        init(_ graph: Graph, _ node: Node) throws {
            let opset = graph.opsetVersion
            weightName = node.inputs.count > 1 ? node.inputs[1] : ""
            weight = try LowRank.floatInitializer(graph, weightName, node: node, rank: 4)
            (outC, inC, kh, kw) = (weight.shape[0], weight.shape[1], weight.shape[2], weight.shape[3])
            let group = node.int("group") ?? 1
            guard group == 1 else {
                throw GraphError("low-rank factorization supports only group == 1 convolutions, this one has group = \(group)",
                                 at: node, opset: opset)
            }
            if let autoPad = node.string("auto_pad"), autoPad != "NOTSET", autoPad != "VALID" {
                throw GraphError("auto_pad \(autoPad) is not supported; export the graph with explicit pads", at: node, opset: opset)
            }
            if let k = node.ints("kernel_shape"), k != [kh, kw] {
                throw GraphError("kernel_shape \(k) does not match the weight's \(weight.shape)", at: node, opset: opset)
            }
            strides = node.ints("strides") ?? [1, 1]
            dilations = node.ints("dilations") ?? [1, 1]
            pads = node.ints("pads") ?? [0, 0, 0, 0]
            guard strides.count == 2, dilations.count == 2, pads.count == 4,
                  strides.allSatisfy({ $0 >= 1 }), dilations.allSatisfy({ $0 >= 1 }), pads.allSatisfy({ $0 >= 0 }) else {
                throw GraphError("a 2-D convolution needs 2 strides, 2 dilations and 4 non-negative pads, got strides \(strides), dilations \(dilations), pads \(pads)",
                                 at: node, opset: opset)
            }
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard case let .float(b)? = graph.initializers[node.inputs[2]], b.count == outC else {
                    throw GraphError("bias '\(node.inputs[2])' must be a float initializer of \(outC) values", at: node, opset: opset)
                }
                biasName = node.inputs[2]
                biasCount = b.count
            } else {
                biasName = nil
                biasCount = 0
            }
        }

        /// ONNX output size along spatial axis 0 (height) or 1 (width).
        func outputSize(_ input: Int, axis: Int) -> Int {
            let k = axis == 0 ? kh : kw
            return (input + pads[axis] + pads[axis + 2] - dilations[axis] * (k - 1) - 1) / strides[axis] + 1
        }
    }

    /// Unique node, value and initializer names for a graph.
    struct NameAllocator {
        var nodes: Set<String>
        var values: Set<String>

        init(_ graph: Graph) {
            nodes = Set(graph.nodes.map(\.name))
            var v = Set(graph.initializers.keys)
            for i in graph.inputs { v.insert(i.name) }
            for o in graph.outputs { v.insert(o.name) }
            for n in graph.nodes { v.formUnion(n.outputs); v.formUnion(n.inputs) }
            values = v
        }

        mutating func node(_ base: String) -> String { Self.unique(base, in: &nodes) }
        mutating func value(_ base: String) -> String { Self.unique(base, in: &values) }
        mutating func initializer(_ base: String) -> String { Self.unique(base, in: &values) }

        private static func unique(_ base: String, in set: inout Set<String>) -> String {
            var name = base, i = 1
            while set.contains(name) { name = "\(base)_\(i)"; i += 1 }
            set.insert(name)
            return name
        }
    }
}
