// Initial parameters of a pluggable operator from the unit it replaces: data-free factorizations of the slot's weight.
import LiteCNNCompression
import LiteCNNGraph
import LiteCNNTensor

extension PluggableOperator {
    /// The operator of `kind` for `slot`, initialized from the unit it replaces without data.
    ///
    /// `weight` is the slot's convolution weight (OIHW `[C, C_i, k_h, k_w]`), `bias` its bias (`[C]`) or nil,
    /// `batchNorm` the unit's BatchNorm (`C` channels) or nil. β is stored as given for kinds that use it and as 1
    /// otherwise. The convolutions:
    /// - bottleneck: Tucker-2 (HOSVD) of W. `U_in` = the leading R left singular vectors of the mode-1 unfolding
    ///   `[C_i, C·k_h·k_w]`, `U_out` = those of the mode-0 unfolding `[C, C_i·k_h·k_w]` (zero columns when R exceeds
    ///   the rank available); `reduce = U_inᵀ`, `core = W ×₀ U_outᵀ ×₁ U_inᵀ`, `expand = U_out`. Exact when W's
    ///   multilinear ranks are ≤ (R, R).
    /// - lowRank: SVD `M = U·S·Vᵀ` of `M[(c_i, x), (c, y)] = W[c, c_i, y, x]` (`[C_i·k_w, C·k_h]`);
    ///   `row[r, c_i, 0, x] = √s_r·U[(c_i, x), r]`, `column[c, r, y, 0] = √s_r·V[(c, y), r]`. Exact when rank(M) ≤ R.
    /// - multiBranch: the taps each branch has (least squares in weight space): `row[o] = W[o, :, k_h/2, :]` for the
    ///   first `C_a` outputs, `column[o] = W[C_a + o, :, :, k_w/2]` for the others.
    /// - fire: from scratch, He-normal (`std = √(2 / fan_in)`) from a `SeededGenerator(seed:)`; the squeeze BatchNorm
    ///   is scale 1, bias 0, mean 0, variance 1.
    /// - depthwise: per input channel i the best rank-1 factorization `√s·u·√s·vᵀ` of `W[:, i, :, :]` as a
    ///   `[C, k_h·k_w]` matrix: `depthwise[i] = √s·v`, `pointwise[:, i] = √s·u`. Exact when every slice has rank ≤ 1.
    ///
    /// The trailing BatchNorm (sliced per branch for multi-branch and Fire) is the unit's, with the convolution's bias
    /// folded into its mean (`mean − b`) and its variance shifted so that `var + ε` is kept under the slot's
    /// epsilon; without one it is scale 1, bias = the convolution's bias (or 0), mean 0, variance `1 − ε` (ε = 1e-5,
    /// the epsilon the node gets), so it is exactly the identity plus the bias. With these, an operator whose
    /// factorization is exact reproduces the unit.
    ///
    /// On a fully connected slot (only low rank applies; `weight` is `[C, C_i]` when `slot.transB`, else `[C_i, C]`;
    /// `batchNorm` must be nil): the truncated SVD `W ≈ U_R·S_R·V_Rᵀ` of the `[C, C_i]` weight (`SVD.truncated`, exact
    /// below 1024 columns, randomized above) with √S split between the factors, `first = √S_R·V_Rᵀ` `[R, C_i]`,
    /// `second = U_R·√S_R` `[C, R]`, `second.bias` = the slot's bias or zeros. Exact when rank(W) ≤ R (components beyond
    /// min(C_i, C) are zero).
    ///
    /// Throws `PluggableOperatorError` when the operator does not apply to the slot, β is not positive for a kind that
    /// uses it, or `weight`, `bias` or `batchNorm` do not match the slot.
    public static func initialized(kind: OperatorKind, beta: Double, slot: OperatorSlot, weight: Tensor, bias: Tensor?,
                                   batchNorm: BatchNormParameters?, seed: UInt64 = 0) throws -> PluggableOperator {
        let context = "\(kind) operator for slot '\(slot.name)'"
        guard kind.isApplicable(to: slot) else {
            if slot.isFullyConnected {
                throw PluggableOperatorError("\(context): not applicable (a fully connected slot takes only lowrank)")
            }
            throw PluggableOperatorError("\(context): not applicable (needs a same-padded slot with at least 2 output "
                                         + "channels; pads \(slot.pads), kernel \(slot.kernel), dilations \(slot.dilations))")
        }
        guard !kind.usesBeta || (beta.isFinite && beta > 0) else {
            throw PluggableOperatorError("\(context): β must be positive, got \(beta)")
        }
        if slot.isFullyConnected {
            return try fullyConnectedLowRank(beta: beta, slot: slot, weight: weight, bias: bias, batchNorm: batchNorm)
        }
        let (c, ci, kh, kw) = (slot.outputChannels, slot.inputChannels, slot.kernel[0], slot.kernel[1])
        guard weight.shape == [c, ci, kh, kw] else {
            throw PluggableOperatorError("\(context): weight has shape \(weight.shape), expected [\(c), \(ci), \(kh), \(kw)]")
        }
        if let bias, bias.count != c {
            throw PluggableOperatorError("\(context): bias has shape \(bias.shape), expected [\(c)]")
        }
        if let bn = batchNorm, [bn.scale.count, bn.bias.count, bn.mean.count, bn.variance.count] != [c, c, c, c] {
            throw PluggableOperatorError("\(context): BatchNorm arrays have \([bn.scale.count, bn.bias.count, bn.mean.count, bn.variance.count]) "
                                         + "channels, expected \(c)")
        }
        let storedBeta = kind.usesBeta ? beta : 1
        let g = PluggableGeometry(kind: kind, beta: storedBeta, slot: slot)
        let trailing = trailingBatchNorm(slot: slot, bias: bias, batchNorm: batchNorm)
        var tensors: [String: Tensor] = [:]
        func put(_ name: String, _ scalars: [Float]) {
            tensors[name + ".weight"] = Tensor(shape: g.convolution(name).weightShape, scalars: scalars, layout: .plain)
        }
        func put(batchNorm name: String, _ bn: BatchNormParameters) {
            for (field, values) in zip(PluggableGeometry.batchNormFields, [bn.scale, bn.bias, bn.mean, bn.variance]) {
                tensors[name + "." + field] = Tensor(shape: [values.count], scalars: values, layout: .plain)
            }
        }
        let w = weight.scalars
        switch kind {
        case .bottleneck:
            let f = tucker2(w, c: c, ci: ci, taps: kh * kw, rank: g.inner)
            put("reduce", f.reduce); put("core", f.core); put("expand", f.expand)
            put(batchNorm: "bn", trailing)
        case .lowRank:
            let f = separable(w, c: c, ci: ci, kh: kh, kw: kw, rank: g.inner)
            put("row", f.row); put("column", f.column)
            put(batchNorm: "bn", trailing)
        case .depthwise:
            let f = rankOneSlices(w, c: c, ci: ci, taps: kh * kw)
            put("depthwise", f.depthwise); put("pointwise", f.pointwise)
            put(batchNorm: "bn", trailing)
        case .multiBranch:
            let (ca, cb) = (g.firstHalf, g.secondHalf)
            var row = [Float](repeating: 0, count: ca * ci * kw), column = [Float](repeating: 0, count: cb * ci * kh)
            for o in 0..<ca { for i in 0..<ci { for x in 0..<kw {
                row[(o * ci + i) * kw + x] = w[((o * ci + i) * kh + kh / 2) * kw + x]
            } } }
            for o in 0..<cb { for i in 0..<ci { for y in 0..<kh {
                column[(o * ci + i) * kh + y] = w[(((ca + o) * ci + i) * kh + y) * kw + kw / 2]
            } } }
            put("row", row); put("column", column)
            put(batchNorm: "row.bn", trailing.slice(0..<ca)); put(batchNorm: "column.bn", trailing.slice(ca..<c))
        case .fire:
            var generator = SeededGenerator(seed: seed)
            for name in ["squeeze", "expand1x1", "expand3x3"] {
                let conv = g.convolution(name)
                let shape = conv.weightShape, fanIn = shape[1] * shape[2] * shape[3]
                let std = (2 / Float(fanIn)).squareRoot()
                put(name, (0..<shape.reduce(1, *)).map { _ in std * generator.nextNormal() })
            }
            put(batchNorm: "squeeze.bn", .identity(channels: g.inner))
            put(batchNorm: "expand1x1.bn", trailing.slice(0..<g.expand1))
            put(batchNorm: "expand3x3.bn", trailing.slice(g.expand1..<c))
        }
        return PluggableOperator(kind: kind, beta: storedBeta, slot: slot, tensors: tensors)
    }

    /// `initialized(kind:beta:slot:weight:bias:batchNorm:seed:)` with the slot's weight, bias and BatchNorm read from
    /// `graph` (the base graph the slot was found in, by the initializer names the slot records). Throws naming the
    /// initializer when one is missing or not float.
    public static func initialized(kind: OperatorKind, beta: Double, slot: OperatorSlot, graph: Graph,
                                   seed: UInt64 = 0) throws -> PluggableOperator {
        func tensor(_ name: String) throws -> Tensor {
            guard case let .float(t)? = graph.initializers[name] else {
                throw PluggableOperatorError("slot '\(slot.name)': graph '\(graph.name)' has no float initializer '\(name)'")
            }
            return t
        }
        var bn: BatchNormParameters?
        if let names = slot.batchNorm, names.count == 4 {
            let t = try names.map(tensor)
            bn = BatchNormParameters(scale: t[0].scalars, bias: t[1].scalars, mean: t[2].scalars, variance: t[3].scalars,
                                     epsilon: slot.batchNormEpsilon ?? 1e-5)
        }
        return try initialized(kind: kind, beta: beta, slot: slot, weight: tensor(slot.weight),
                               bias: slot.bias.map(tensor), batchNorm: bn, seed: seed)
    }

    /// Low rank on a fully connected slot (see `initialized`): the truncated SVD of the `[C, C_i]` weight.
    static func fullyConnectedLowRank(beta: Double, slot: OperatorSlot, weight: Tensor, bias: Tensor?,
                                      batchNorm: BatchNormParameters?) throws -> PluggableOperator {
        let context = "lowrank operator for fully connected slot '\(slot.name)'"
        let (c, ci) = (slot.outputChannels, slot.inputChannels)
        let expected = slot.transB ? [c, ci] : [ci, c]
        guard weight.shape == expected else {
            throw PluggableOperatorError("\(context): weight has shape \(weight.shape), expected \(expected) (transB \(slot.transB ? 1 : 0))")
        }
        if let bias, bias.count != c {
            throw PluggableOperatorError("\(context): bias has shape \(bias.shape), expected [\(c)]")
        }
        guard batchNorm == nil else { throw PluggableOperatorError("\(context): a fully connected unit has no BatchNorm") }
        let w = fullyConnectedRows(weight, slot: slot)
        let rank = innerChannels(kind: .lowRank, beta: beta, slot: slot), k = min(rank, c, ci)
        let svd = SVD.truncated(w, rows: c, cols: ci, rank: k)
        var first = [Float](repeating: 0, count: rank * ci), second = [Float](repeating: 0, count: c * rank)
        for r in 0..<k {
            let root = max(0, svd.s[r]).squareRoot()
            for i in 0..<ci { first[r * ci + i] = root * svd.vt[r * ci + i] }
            for o in 0..<c { second[o * rank + r] = root * svd.u[o * k + r] }
        }
        let b = bias?.scalars ?? [Float](repeating: 0, count: c)
        return PluggableOperator(kind: .lowRank, beta: beta, slot: slot, tensors: [
            "first.weight": Tensor(shape: [rank, ci], scalars: first, layout: .plain),
            "second.weight": Tensor(shape: [c, rank], scalars: second, layout: .plain),
            "second.bias": Tensor(shape: [c], scalars: b, layout: .plain)])
    }

    /// A fully connected slot's weight as `[C, C_i]` rows (transposed when the Gemm has `transB = 0`).
    static func fullyConnectedRows(_ weight: Tensor, slot: OperatorSlot) -> [Float] {
        guard !slot.transB else { return weight.scalars }
        let (c, ci) = (slot.outputChannels, slot.inputChannels)
        var w = [Float](repeating: 0, count: c * ci)
        for i in 0..<ci { for o in 0..<c { w[o * ci + i] = weight.scalars[i * c + o] } }
        return w
    }

    /// Low rank on a fully connected slot from data: the output-subspace factorization of the slot's `weight` (as in
    /// `initialized`) on calibration inputs `inputs` (each `[N, C_i]`); nil when they hold no sample or do not match.
    ///
    /// With `Z = X·Wᵀ` the slot's outputs before bias on the `n` samples (`[n, C]`) and `P` (`[C, k]`) the leading
    /// `k = min(R, n, C)` right singular vectors of Z: `second[:, :k] = P`, `first[:k] = Pᵀ·W`, so the operator
    /// computes `P·Pᵀ·W·x + b`, the projection of the slot's output onto the subspace its calibration outputs span
    /// most: the rank-k map closest to W on the data (the linear case of Zhang, Zou, He & Sun, "Accelerating Very Deep
    /// Convolutional Networks for Classification and Detection", TPAMI 2016), where the SVD of W is closest on all
    /// inputs alike. It is exact whenever the inputs lie in a subspace of dimension ≤ k: VGG-16's first classifier
    /// layer at 32×32 reads a 512-channel map repeated 49 times, which rank 512 reproduces and its weight's SVD does
    /// not. With fewer samples than R, components `k..<R` read `dataFree`'s leading input projections and write
    /// nothing yet (zero columns of `second`), for distillation to train. The bias is the slot's.
    public static func fullyConnectedLowRank(weight: Tensor, inputs: [Tensor], dataFree: PluggableOperator)
        -> PluggableOperator? {
        let slot = dataFree.slot
        let (c, ci, rank) = (slot.outputChannels, slot.inputChannels, dataFree.innerChannels)
        let n = inputs.reduce(0) { $0 + ($1.shape.first ?? 0) }
        guard slot.isFullyConnected, dataFree.kind == .lowRank, n > 0, weight.count == c * ci,
              inputs.allSatisfy({ $0.shape.count == 2 && $0.shape[1] == ci }),
              let first0 = dataFree.tensors["first.weight"]?.scalars, first0.count == rank * ci
        else { return nil }
        let w = fullyConnectedRows(weight, slot: slot)
        let x = inputs.flatMap(\.scalars)
        var z = [Float](repeating: 0, count: n * c)
        x.withUnsafeBufferPointer { xp in w.withUnsafeBufferPointer { wp in z.withUnsafeMutableBufferPointer { zp in
            Kernels.gemm(transB: true, m: n, n: c, k: ci, a: xp.baseAddress!, lda: ci, b: wp.baseAddress!, ldb: ci,
                         c: zp.baseAddress!, ldc: c)
        } } }
        let k = min(rank, n, c)
        let pt = SVD.truncated(z, rows: n, cols: c, rank: k).vt  // [k, C]: Pᵀ
        var first = [Float](repeating: 0, count: rank * ci), second = [Float](repeating: 0, count: c * rank)
        pt.withUnsafeBufferPointer { pp in w.withUnsafeBufferPointer { wp in first.withUnsafeMutableBufferPointer { fp in
            Kernels.gemm(m: k, n: ci, k: c, a: pp.baseAddress!, lda: c, b: wp.baseAddress!, ldb: ci,
                         c: fp.baseAddress!, ldc: ci)
        } } }
        for r in 0..<k { for o in 0..<c { second[o * rank + r] = pt[r * c + o] } }
        // Components the samples do not reach start with the data-free input projections and a zero output column:
        // the operator is still P·Pᵀ·W on the data, and distillation can grow them (a zero input row as well would
        // leave both without gradient).
        for r in k..<rank {
            for i in 0..<ci { first[r * ci + i] = first0[(r - k) * ci + i] }
        }
        var op = dataFree
        op.tensors["first.weight"] = Tensor(shape: [rank, ci], scalars: first, layout: .plain)
        op.tensors["second.weight"] = Tensor(shape: [c, rank], scalars: second, layout: .plain)
        return op
    }

    /// The unit's BatchNorm as the operator's trailing one (node epsilon `slot.batchNormEpsilon ?? 1e-5`).
    static func trailingBatchNorm(slot: OperatorSlot, bias: Tensor?, batchNorm: BatchNormParameters?) -> BatchNormParameters {
        let c = slot.outputChannels
        let epsilon = slot.batchNormEpsilon ?? 1e-5
        let b = bias?.scalars ?? [Float](repeating: 0, count: c)
        guard var bn = batchNorm else {
            return BatchNormParameters(scale: .init(repeating: 1, count: c), bias: b, mean: .init(repeating: 0, count: c),
                                       variance: .init(repeating: 1 - epsilon, count: c), epsilon: epsilon)
        }
        // BN(conv + b) = BN'(conv) with mean' = mean − b; var' + ε_node = var + ε_unit.
        for o in 0..<c {
            bn.mean[o] -= b[o]
            bn.variance[o] += bn.epsilon - epsilon
        }
        bn.epsilon = epsilon
        return bn
    }

    /// Tucker-2 factors of `w` (`[c, ci, taps]` row-major) with both ranks `rank`: reduce `[rank, ci]`, core
    /// `[rank, rank, taps]`, expand `[c, rank]`, row-major; factor columns beyond the available rank are zero.
    static func tucker2(_ w: [Float], c: Int, ci: Int, taps: Int, rank: Int)
        -> (reduce: [Float], core: [Float], expand: [Float]) {
        // Mode 0: W itself as [c, ci·taps]. Mode 1: [ci, c·taps].
        let out = SVD.decompose(w, rows: c, cols: ci * taps)
        var mode1 = [Float](repeating: 0, count: w.count)
        for o in 0..<c { for i in 0..<ci { for t in 0..<taps { mode1[i * c * taps + o * taps + t] = w[(o * ci + i) * taps + t] } } }
        let input = SVD.decompose(mode1, rows: ci, cols: c * taps)
        let kOut = out.s.count, kIn = input.s.count
        var uOut = [Double](repeating: 0, count: c * rank), uIn = [Double](repeating: 0, count: ci * rank)
        for o in 0..<c { for r in 0..<min(rank, kOut) { uOut[o * rank + r] = Double(out.u[o * kOut + r]) } }
        for i in 0..<ci { for r in 0..<min(rank, kIn) { uIn[i * rank + r] = Double(input.u[i * kIn + r]) } }
        // t[o, ri, tap] = Σ_i U_in[i, ri]·W[o, i, tap]; core[ro, ri, tap] = Σ_o U_out[o, ro]·t[o, ri, tap].
        var t = [Double](repeating: 0, count: c * rank * taps)
        for o in 0..<c { for i in 0..<ci { for ri in 0..<rank {
            let u = uIn[i * rank + ri]
            guard u != 0 else { continue }
            for tap in 0..<taps { t[(o * rank + ri) * taps + tap] += u * Double(w[(o * ci + i) * taps + tap]) }
        } } }
        var core = [Double](repeating: 0, count: rank * rank * taps)
        for o in 0..<c { for ro in 0..<rank {
            let u = uOut[o * rank + ro]
            guard u != 0 else { continue }
            for j in 0..<(rank * taps) { core[ro * rank * taps + j] += u * t[o * rank * taps + j] }
        } }
        var reduce = [Float](repeating: 0, count: rank * ci)
        for r in 0..<rank { for i in 0..<ci { reduce[r * ci + i] = Float(uIn[i * rank + r]) } }
        return (reduce, core.map(Float.init), uOut.map(Float.init))
    }

    /// Spatially separable factors of `w` (`[c, ci, kh, kw]`) of rank `rank`: row `[rank, ci, 1, kw]` and column
    /// `[c, rank, kh, 1]`, from the SVD of `M[(ci, x), (c, y)]`; components beyond the available rank are zero.
    static func separable(_ w: [Float], c: Int, ci: Int, kh: Int, kw: Int, rank: Int) -> (row: [Float], column: [Float]) {
        let rows = ci * kw, cols = c * kh
        var m = [Float](repeating: 0, count: rows * cols)
        for o in 0..<c { for i in 0..<ci { for y in 0..<kh { for x in 0..<kw {
            m[(i * kw + x) * cols + o * kh + y] = w[((o * ci + i) * kh + y) * kw + x]
        } } } }
        let svd = SVD.decompose(m, rows: rows, cols: cols)
        let k = svd.s.count
        var row = [Float](repeating: 0, count: rank * ci * kw), column = [Float](repeating: 0, count: c * rank * kh)
        for r in 0..<min(rank, k) {
            let root = max(0, svd.s[r]).squareRoot()
            for i in 0..<ci { for x in 0..<kw { row[(r * ci + i) * kw + x] = root * svd.u[(i * kw + x) * k + r] } }
            for o in 0..<c { for y in 0..<kh { column[(o * rank + r) * kh + y] = root * svd.vt[r * cols + o * kh + y] } }
        }
        return (row, column)
    }

    /// Depthwise-separable factors of `w` (`[c, ci, taps]`): per input channel the leading singular triple of the
    /// `[c, taps]` slice; depthwise `[ci, 1, taps]`, pointwise `[c, ci]`.
    static func rankOneSlices(_ w: [Float], c: Int, ci: Int, taps: Int) -> (depthwise: [Float], pointwise: [Float]) {
        var depthwise = [Float](repeating: 0, count: ci * taps), pointwise = [Float](repeating: 0, count: c * ci)
        for i in 0..<ci {
            var slice = [Float](repeating: 0, count: c * taps)
            for o in 0..<c { for t in 0..<taps { slice[o * taps + t] = w[(o * ci + i) * taps + t] } }
            let svd = SVD.decompose(slice, rows: c, cols: taps)
            let k = svd.s.count
            guard k > 0 else { continue }
            let root = max(0, svd.s[0]).squareRoot()
            for t in 0..<taps { depthwise[i * taps + t] = root * svd.vt[t] }
            for o in 0..<c { pointwise[o * ci + i] = root * svd.u[o * k] }
        }
        return (depthwise, pointwise)
    }
}
