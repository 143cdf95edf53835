import Foundation
import LiteCNNGraph
import LiteCNNTensor

extension PlanBuilder {
    func set(_ name: String, _ a: Activation) { values[name] = .activation(a) }

    func intsInput(_ index: Int) throws -> [Int]? {
        guard index < node.inputs.count, !node.inputs[index].isEmpty else { return nil }
        guard let c = constant(node.inputs[index]) else {
            throw err("input \(index) ('\(node.inputs[index])') must be computable from constants and shapes")
        }
        return c.ints
    }

    /// Plans one node.
    func planNode(_ cn: CompiledNode) throws {
        let node = cn.node
        // Shape arithmetic and constant subgraphs fold with the real shapes.
        let present = node.inputs.filter { !$0.isEmpty }
        var inputShapes: [[Int]?] = []
        var inputConsts: [ConstValue?] = []
        for name in node.inputs {
            if name.isEmpty { inputShapes.append(nil); inputConsts.append(nil); continue }
            if let view = channelViews[name] { inputShapes.append(view.shape); inputConsts.append(nil); continue }
            switch try value(name) {
            case let .constant(c): inputShapes.append(c.shape); inputConsts.append(c)
            case let .activation(a): inputShapes.append(a.shape); inputConsts.append(nil)
            case let .shuffle(a, g, stage):
                let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
                inputShapes.append(stage == 1 ? [n, g, c / g, h, w] : [n, c / g, g, h, w]); inputConsts.append(nil)
            }
        }
        if node.opType == "Shape" || node.opType == "Size" || (!present.isEmpty && inputConsts.allSatisfy({ $0 != nil || false }) && present.allSatisfy({ constant($0) != nil })) {
            if cn.conv == nil, cn.affine == nil, cn.dense == nil,
               let outs = try foldConstant(node, inputs: inputConsts, inputShapes: inputShapes, opset: opset) {
                for (o, v) in zip(node.outputs, outs) { values[o] = .constant(v) }
                return
            }
        }
        if node.domain == alternativesDomain { return try planSelect() }
        if let conv = cn.conv { return try planConv(conv) }
        if let affine = cn.affine { return try planAffine(affine) }
        if let dense = cn.dense { return try planDense(dense) }
        switch node.opType {
        case "Relu": try planUnary(.relu)
        case "Sigmoid": try planUnary(.sigmoid)
        case "HardSwish": try planUnary(.hardSwish)
        case "HardSigmoid": try planUnary(.hardSigmoid(alpha: node.float("alpha") ?? 0.2, beta: node.float("beta") ?? 0.5))
        case "Clip":
            var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if opset < 11 {
                lo = node.float("min") ?? lo; hi = node.float("max") ?? hi
            } else {
                for (i, isMin) in [(1, true), (2, false)] where i < node.inputs.count && !node.inputs[i].isEmpty {
                    guard let c = constant(node.inputs[i]), c.count == 1 else { throw err("min/max must be constant scalars") }
                    if isMin { lo = Float(c.data[0]) } else { hi = Float(c.data[0]) }
                }
            }
            try planUnary(.clip(lo, hi))
        case "Identity", "Dropout":
            if let view = channelViews[node.inputs[0]] { channelViews[node.outputs[0]] = view; return }
            let v = try value(node.inputs[0])
            values[node.outputs[0]] = v
        case "Cast":
            let to = node.int("to") ?? 1
            guard [1, 10, 11].contains(to) else { throw err("Cast of a float activation to element type \(to) is not supported") }
            if let view = channelViews[node.inputs[0]] { channelViews[node.outputs[0]] = view; return }
            values[node.outputs[0]] = try value(node.inputs[0])
        case "Add": try planBinary(.add)
        case "Sub": try planBinary(.sub)
        case "Mul": try planBinary(.mul)
        case "Div": try planBinary(.div)
        case "Concat": try planConcat()
        case "Split": try planSplit()
        case "Slice": try planSlice()
        case "Pad": try planPad()
        case "Reshape", "Flatten", "Squeeze", "Unsqueeze": try planReshapeLike()
        case "Transpose": try planTranspose()
        case "MaxPool", "AveragePool": try planPool()
        case "GlobalAveragePool":
            let x = try toNHWC(try activation(node.inputs[0]))
            set(node.outputs[0], globalAverage(x))
        case "ReduceMean": try planReduceMean()
        case "Gemm": try planGemm()
        case "MatMul": try planMatMul()
        case "Softmax": try planSoftmax()
        case "Gather": try planGather()
        default:
            throw err("operator cannot run on activations")
        }
    }

    // MARK: Convolution and per-channel ops

    func planConv(_ p: ConvParams) throws {
        let x = try toNHWC(try activation(node.inputs[0]))
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        guard c == p.inputChannelsPerGroup * p.groups else {
            throw err("input has \(c) channels, the weight expects \(p.inputChannelsPerGroup) × group \(p.groups)")
        }
        let g = p.geometry(batch: n, h: h, w: w)
        guard g.outputHeight > 0, g.outputWidth > 0 else { throw err("input \(x.shape) is smaller than the kernel window") }
        let outShape = [n, p.outputChannels, g.outputHeight, g.outputWidth]
        var residual: Activation?
        if p.hasResidual {
            let r = try activation(node.inputs[1])
            guard let joint = broadcastShapes(outShape, r.shape), joint == outShape else {
                throw err("the residual \(r.shape) does not broadcast to the convolution's output \(outShape)")
            }
            // Same shape: added in the epilogue. A broadcast skip (never exported by the zoo) takes a separate pass.
            residual = r.shape == outShape ? try toNHWC(r) : r
        }
        let out = newActivation(outShape, nhwc: true)
        let f = plan.frame, (src, dst) = (x.slot, out.slot), epilogue = p.epilogue, post = p.post, count = out.count
        let fusedResidual = residual.flatMap { $0.nhwc && $0.shape == outShape ? $0.slot : nil }
        let reads = [src] + (residual.map { [$0.slot] } ?? [])
        if let r = residual, fusedResidual == nil {
            // Broadcast residual: convolution, then Add with broadcasting, then the activation.
            let conv = newActivation(outShape, nhwc: true)
            let packed = prepared { p.packed(for: g) }, cs = conv.slot
            emit(reads: [src], writes: [cs], label: "Conv") { packed.value.forward(input: f[src], output: f[cs], geometry: g) }
            let sr = broadcastStrides(r.shape, strides: r.logicalStrides, rank: 4), perm = out.perm
            let dims = out.physicalShape, so = contiguousStrides(dims), sc = so, pr = perm.map { sr[$0] }, rs = r.slot
            emit(reads: [cs, rs], writes: [dst], label: "Add") {
                applyBinary(.add, dims: dims, out: f[dst], outStrides: so, a: f[cs], aStrides: sc, b: f[rs], bStrides: pr)
                if epilogue != .none { Kernels.activate(epilogue, src: f[dst], dst: f[dst], count: count) }
                if let post { applyUnary(post, src: f[dst], dst: f[dst], count: count) }
            }
            set(node.outputs[0], out)
            return
        }
        let suffix = fusedResidual == nil ? "" : " + residual"
        if WinogradConvolution.isProfitable(g) {
            // Dense 3×3 stride 1 with enough tiles and channels: F(4×4, 3×3), bias and activation in the output transform
            // (after a residual, the add and the activation take one extra sweep).
            let winograd = prepared { p.winograd(for: g) }
            emit(reads: reads, writes: [dst], label: "Conv \(g.kernelHeight)×\(g.kernelWidth) Winograd" + suffix) {
                winograd.value.forward(input: f[src], output: f[dst], batch: n, height: h, width: w)
                if let rs = fusedResidual { Kernels.addActivate(epilogue, a: f[dst], b: f[rs], dst: f[dst], count: count) }
                if let post { applyUnary(post, src: f[dst], dst: f[dst], count: count) }
            }
            set(node.outputs[0], out)
            return
        }
        let packed = prepared { p.packed(for: g) }
        let kind = g.isDepthwise ? "depthwise" : g.groups > 1 ? "grouped" : "dense"
        let label = "Conv \(g.kernelHeight)×\(g.kernelWidth)/\(g.strideH) \(kind)" + suffix
        if post == nil, branch == nil, PackedConvolution.supportsOutputRowStride(g) {
            // A channel Concat that is this output's only consumer may later redirect the step into its buffer.
            let target = OutputTarget(slot: dst)
            emit(reads: reads, writes: [dst], label: label) {
                let residual = fusedResidual.map { UnsafePointer(f[$0]) }
                if target.rowStride == 0 {
                    packed.value.forward(input: f[src], output: f[dst], geometry: g, activation: epilogue, residual: residual)
                } else {
                    packed.value.forward(input: f[src], output: f[target.slot] + target.offset, outputRowStride: target.rowStride,
                                         geometry: g, activation: epilogue, residual: residual)
                }
            }
            redirectable[dst] = (target, plan.steps.count - 1, node.outputs[0])
            set(node.outputs[0], out)
            return
        }
        emit(reads: reads, writes: [dst], label: label) {
            packed.value.forward(input: f[src], output: f[dst], geometry: g, activation: epilogue,
                                 residual: fusedResidual.map { UnsafePointer(f[$0]) })
            if let post { applyUnary(post, src: f[dst], dst: f[dst], count: count) }
        }
        set(node.outputs[0], out)
    }

    /// Gemm with packed constant weights: `[M, K]` rows as M pixels of a 1×1 convolution.
    func planDense(_ dense: ConvParams) throws {
        // After a pool that only repeats a 1×1 map (VGG, AlexNet at low resolution): the layer over the map itself.
        let repeated = denseOverBroadcast(dense)
        let p = repeated?.layer ?? dense
        let a = try repeated?.input ?? toPlain(try activation(node.inputs[0]))
        guard a.shape.count == 2, a.shape[1] == p.inputChannelsPerGroup else {
            throw err("A \(a.shape) does not have the \(p.inputChannelsPerGroup) columns B needs")
        }
        let g = p.geometry(batch: a.shape[0], h: 1, w: 1)
        let out = newActivation([a.shape[0], p.outputChannels], nhwc: false)
        let packed = prepared { p.packed(for: g) }
        let f = plan.frame, (src, dst) = (a.slot, out.slot), epilogue = p.epilogue, post = p.post, count = out.count
        emit(reads: [src], writes: [dst], label: repeated == nil ? "Gemm packed" : "Gemm packed, repeated input folded") {
            packed.value.forward(input: f[src], output: f[dst], geometry: g, activation: epilogue)
            if let post { applyUnary(post, src: f[dst], dst: f[dst], count: count) }
        }
        set(node.outputs[0], out)
    }

    func planAffine(_ affine: (scale: [Float], shift: [Float])) throws {
        let x = try activation(node.inputs[0])
        guard x.shape.count >= 2, x.shape[1] == affine.scale.count else {
            throw err("input \(x.shape) does not have \(affine.scale.count) channels")
        }
        let out = newActivation(x.shape, nhwc: x.nhwc)
        let outer = x.shape[0], channels = x.shape[1], inner = x.shape.dropFirst(2).reduce(1, *), last = x.nhwc
        let sc = constantSlot(ConstValue(data: affine.scale.map(Double.init), shape: [channels], isInt: false), key: node.name + "#scale")
        let sh = constantSlot(ConstValue(data: affine.shift.map(Double.init), shape: [channels], isInt: false), key: node.name + "#shift")
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        emit(reads: [src], writes: [dst]) {
            applyChannelAffine(src: f[src], dst: f[dst], scale: f[sc], shift: f[sh], outer: outer, channels: channels,
                               inner: inner, channelsLast: last)
        }
        set(node.outputs[0], out)
    }

    func planUnary(_ kind: UnaryKind) throws {
        let x = try activation(node.inputs[0])
        let out = newActivation(x.shape, nhwc: x.nhwc)
        let f = plan.frame, (src, dst) = (x.slot, out.slot), count = x.count
        emit(reads: [src], writes: [dst]) { applyUnary(kind, src: f[src], dst: f[dst], count: count) }
        set(node.outputs[0], out)
    }

    func planBinary(_ kind: BinaryKind) throws {
        guard node.inputs.count == 2 else { throw err("needs two inputs") }
        let a = try activation(node.inputs[0]), b = try activation(node.inputs[1])
        guard let shape = broadcastShapes(a.shape, b.shape) else { throw err("shapes \(a.shape) and \(b.shape) do not broadcast") }
        let nhwc = shape.count == 4 && ((a.nhwc && a.shape.count == 4) || (b.nhwc && b.shape.count == 4))
        let out = newActivation(shape, nhwc: nhwc)
        if kind == .mul, nhwc {
            // Squeeze-and-excitation: an NHWC map times a per-image channel gate [N, C, 1, 1].
            for (x, gate) in [(a, b), (b, a)] where x.nhwc && x.shape == shape && gate.shape == [shape[0], shape[1], 1, 1] {
                let f = plan.frame, (ix, ig, io) = (x.slot, gate.slot, out.slot)
                let (n, c, positions) = (shape[0], shape[1], shape[2] * shape[3])
                emit(reads: [ix, ig], writes: [io], label: "Mul channel gate") {
                    Kernels.scaleChannels(input: f[ix], scale: f[ig], output: f[io], batch: n, positions: positions, channels: c)
                }
                set(node.outputs[0], out)
                return
            }
        }
        let perm = out.perm
        let sa = broadcastStrides(a.shape, strides: a.logicalStrides, rank: shape.count)
        let sb = broadcastStrides(b.shape, strides: b.logicalStrides, rank: shape.count)
        let dims = out.physicalShape, so = contiguousStrides(dims)
        let pa = perm.map { sa[$0] }, pb = perm.map { sb[$0] }
        let f = plan.frame, (ia, ib, io) = (a.slot, b.slot, out.slot)
        emit(reads: [ia, ib], writes: [io]) {
            applyBinary(kind, dims: dims, out: f[io], outStrides: so, a: f[ia], aStrides: pa, b: f[ib], bStrides: pb)
        }
        set(node.outputs[0], out)
    }

    // MARK: Data movement

    /// Copies `x` (any layout) into the region of `out` that starts at logical `origin`, iterating in `out`'s physical order.
    func copyInto(_ out: Activation, origin: [Int], from x: Activation, dims: [Int]? = nil, srcOrigin: Int = 0, srcStrides: [Int]? = nil) {
        let ds = out.logicalStrides
        let ss = srcStrides ?? x.logicalStrides
        let d = dims ?? x.shape
        let perm = out.perm
        let offset = zip(origin, ds).map { $0 * $1 }.reduce(0, +)
        let pd = perm.map { d[$0] }, pss = perm.map { ss[$0] }, pds = perm.map { ds[$0] }
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        emit(reads: [src], writes: [dst]) {
            stridedCopy(dims: pd, src: f[src] + srcOrigin, srcStrides: pss, dst: f[dst] + offset, dstStrides: pds)
        }
    }

    /// `Select` (domain `ai.litecnn`): the output is the input that the run's selection names for the node's group.
    /// Inputs of other alternatives were not computed in this run; only the selected one is read.
    func planSelect() throws {
        guard let group = node.int("group") else { throw err("a Select needs an integer attribute group") }
        let parts = try node.inputs.map { try activation($0) }
        guard let first = parts.first, parts.allSatisfy({ $0.shape == first.shape }) else {
            throw err("the alternatives have different shapes \(parts.map(\.shape))")
        }
        let out = newActivation(first.shape, nhwc: first.nhwc)
        let sources = try parts.map { first.nhwc ? try toNHWC($0) : toPlain($0) }.map(\.slot)
        let f = plan.frame, dst = out.slot, count = out.count
        emit(reads: sources, writes: [dst]) {
            f[dst].update(from: f[sources[f.selection[group]]], count: count)
        }
        set(node.outputs[0], out)
    }

    /// Channel Concat of NHWC values (axis 1, rank 4) without copying what need not be copied: a part made by a
    /// convolution whose only consumer is this Concat (not a graph output, not read twice) is written by that
    /// convolution straight into its channel slice (rows of the total channel count); a channel view (shuffle, slice)
    /// is gathered from its source in one pass; other parts are copied. Returns false when the fast path does not apply.
    func planChannelConcat() throws -> Bool {
        let names = node.inputs.filter { !$0.isEmpty }
        guard !names.isEmpty, (node.int("axis") ?? 1) == 1 || node.int("axis") == -3 else { return false }
        enum Part { case view(ChannelView), act(Activation) }
        var parts: [Part] = []
        for name in names {
            if let view = channelViews[name] { parts.append(.view(view)); continue }
            guard case let .activation(a)? = values[name], a.nhwc, a.shape.count == 4 else { return false }
            parts.append(.act(a))
        }
        let shapes = parts.map { p -> [Int] in if case let .view(v) = p { return v.shape }; if case let .act(a) = p { return a.shape }; return [] }
        let first = shapes[0]
        guard shapes.allSatisfy({ $0[0] == first[0] && $0[2] == first[2] && $0[3] == first[3] }) else { return false }
        let total = shapes.reduce(0) { $0 + $1[1] }
        let out = newActivation([first[0], total, first[2], first[3]], nhwc: true)
        var offset = 0
        for (i, part) in parts.enumerated() {
            let c = shapes[i][1]
            defer { offset += c }
            switch part {
            case let .view(v):
                gatherChannels(v, into: out, channelOffset: offset)
            case let .act(a):
                let name = names[i]
                if branch == nil, let rec = redirectable[a.slot], rec.name == name, rec.target.rowStride == 0,
                   graph.consumers[name] == 1, !graph.outputNames.contains(name), names.filter({ $0 == name }).count == 1,
                   plan.stepGroups[rec.step] == -1 {
                    rec.target.slot = out.slot
                    rec.target.offset = offset
                    rec.target.rowStride = total
                    redirectable[a.slot] = nil
                    retargetWrite(from: a.slot, to: out.slot, at: rec.step)
                } else {
                    gatherChannels(ChannelView(source: a, channels: Array(0..<c)), into: out, channelOffset: offset)
                }
            }
        }
        set(node.outputs[0], out)
        return true
    }

    func planConcat() throws {
        if try planChannelConcat() { return }
        var parts = try node.inputs.filter { !$0.isEmpty }.map { try activation($0) }
        guard let first = parts.first else { throw err("no inputs") }
        let r = first.shape.count
        guard let axis = normalizeAxis(node.int("axis") ?? 1, rank: r) else { throw err("axis out of range for rank \(r)") }
        var shape = first.shape
        shape[axis] = 0
        for p in parts {
            guard p.shape.count == r, (0..<r).allSatisfy({ $0 == axis || p.shape[$0] == first.shape[$0] }) else {
                throw err("inputs \(parts.map(\.shape)) do not concatenate on axis \(axis)")
            }
            shape[axis] += p.shape[axis]
        }
        let nhwc = r == 4 && parts.allSatisfy { $0.nhwc || $0.layoutFree } && parts.contains { $0.nhwc }
        if !nhwc { parts = parts.map { toPlain($0) } }
        let out = newActivation(shape, nhwc: nhwc)
        var origin = [Int](repeating: 0, count: r)
        for p in parts {
            let src = nhwc ? try toNHWC(p) : p
            copyInto(out, origin: origin, from: src)
            origin[axis] += p.shape[axis]
        }
        set(node.outputs[0], out)
    }

    func planSplit() throws {
        let view: ChannelView? = {
            guard branch == nil, let v = channelViews[node.inputs[0]], normalizeAxis(node.int("axis") ?? 0, rank: 4) == 1 else { return nil }
            return v
        }()
        // With a view, `x` only describes the logical shape (the view path below never reads its slot).
        let x = try view.map { Activation(shape: $0.shape, nhwc: true, slot: $0.source.slot) } ?? activation(node.inputs[0])
        let r = x.shape.count
        guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: r) else { throw err("axis out of range") }
        let dim = x.shape[axis], k = node.outputs.count
        var sizes: [Int]
        if opset >= 13, let s = try intsInput(1) { sizes = s } else if opset < 13, let s = node.ints("split") { sizes = s } else {
            let parts = node.int("num_outputs") ?? k
            let chunk = (dim + parts - 1) / max(1, parts)
            if opset < 18 && dim % max(1, k) != 0 { throw err("axis size \(dim) does not split evenly into \(k)") }
            sizes = (0..<parts).map { min(chunk, max(0, dim - $0 * chunk)) }
        }
        guard sizes.count == k, sizes.reduce(0, +) == dim, sizes.allSatisfy({ $0 >= 0 }) else {
            throw err("split sizes \(sizes) do not cover axis size \(dim) with \(k) outputs")
        }
        if branch == nil, axis == 1, r == 4, x.nhwc {
            // Channel split of NHWC data: every output is a view (see `ChannelView`).
            let base = view ?? ChannelView(source: x, channels: Array(0..<dim))
            var start = 0
            for (name, size) in zip(node.outputs, sizes) {
                if !name.isEmpty { channelViews[name] = ChannelView(source: base.source, channels: Array(base.channels[start..<(start + size)])) }
                start += size
            }
            return
        }
        var start = 0
        for (name, size) in zip(node.outputs, sizes) {
            var shape = x.shape
            shape[axis] = size
            let out = newActivation(shape, nhwc: x.nhwc)
            let ls = x.logicalStrides
            copyInto(out, origin: [Int](repeating: 0, count: r), from: x, dims: shape, srcOrigin: start * ls[axis], srcStrides: ls)
            start += size
            if !name.isEmpty { set(name, out) }
        }
    }

    func planSlice() throws {
        let view = branch == nil ? channelViews[node.inputs[0]] : nil
        // With a view, `x` only describes the logical shape until the view path below is ruled out.
        var x = try view.map { Activation(shape: $0.shape, nhwc: true, slot: $0.source.slot) } ?? activation(node.inputs[0])
        let r = x.shape.count
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if opset >= 10 {
            guard let s = try intsInput(1), let e = try intsInput(2) else { throw err("missing starts/ends") }
            starts = s; ends = e; axes = try intsInput(3); steps = try intsInput(4)
        } else {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []; axes = node.ints("axes"); steps = nil
        }
        let ax = axes ?? Array(0..<starts.count)
        guard ax.count == starts.count, ends.count == starts.count, (steps?.count ?? starts.count) == starts.count else {
            throw err("starts/ends/axes/steps lengths differ")
        }
        if branch == nil, r == 4, x.nhwc {
            // A slice along channels only, of NHWC data: a view (see `ChannelView`).
            var channels = view?.channels ?? Array(0..<x.shape[1])
            var onlyChannels = true
            for i in 0..<ax.count {
                guard let a = normalizeAxis(ax[i], rank: r) else { throw err("axis \(ax[i]) out of range") }
                let st = steps?[i] ?? 1
                guard st != 0 else { throw err("step 0") }
                let rr = sliceRange(start: starts[i], end: ends[i], step: st, dim: x.shape[a])
                if a == 1 {
                    channels = (0..<rr.count).map { channels[rr.start + $0 * rr.step] }
                } else if rr.count != x.shape[a] || rr.start != 0 || rr.step != 1 {
                    onlyChannels = false
                }
            }
            if onlyChannels {
                let source = view?.source ?? x
                channelViews[node.outputs[0]] = ChannelView(source: source, channels: channels)
                return
            }
        }
        if view != nil { x = try activation(node.inputs[0]) }
        let ls = x.logicalStrides
        var shape = x.shape, strides = ls, origin = 0
        for i in 0..<ax.count {
            guard let a = normalizeAxis(ax[i], rank: r) else { throw err("axis \(ax[i]) out of range") }
            let st = steps?[i] ?? 1
            guard st != 0 else { throw err("step 0") }
            let rr = sliceRange(start: starts[i], end: ends[i], step: st, dim: x.shape[a])
            shape[a] = rr.count
            strides[a] = ls[a] * rr.step
            origin += rr.start * ls[a]
        }
        let out = newActivation(shape, nhwc: x.nhwc)
        if out.count > 0 {
            copyInto(out, origin: [Int](repeating: 0, count: r), from: x, dims: shape, srcOrigin: origin, srcStrides: strides)
        }
        set(node.outputs[0], out)
    }

    func planPad() throws {
        let x = try activation(node.inputs[0])
        let r = x.shape.count
        var pads: [Int], value: Float = 0
        if opset >= 11 {
            guard let p = try intsInput(1) else { throw err("missing pads") }
            pads = p
            if node.inputs.count > 2, !node.inputs[2].isEmpty {
                guard let c = constant(node.inputs[2]), c.count == 1 else { throw err("constant_value must be a constant scalar") }
                value = Float(c.data[0])
            }
            if let axes = try intsInput(3) {
                var full = [Int](repeating: 0, count: 2 * r)
                for (i, a) in axes.enumerated() {
                    guard let n = normalizeAxis(a, rank: r) else { throw err("axis \(a) out of range") }
                    full[n] = pads[i]; full[n + r] = pads[i + axes.count]
                }
                pads = full
            }
        } else {
            pads = node.ints("pads") ?? []
            value = node.float("value") ?? 0
        }
        guard pads.count == 2 * r, pads.allSatisfy({ $0 >= 0 }) else { throw err("pads \(pads) must be \(2 * r) non-negative values") }
        let shape = (0..<r).map { x.shape[$0] + pads[$0] + pads[$0 + r] }
        let out = newActivation(shape, nhwc: x.nhwc)
        let f = plan.frame, dst = out.slot, count = out.count
        emit(reads: [], writes: [dst]) { f[dst].update(repeating: value, count: count) }
        copyInto(out, origin: Array(pads[0..<r]), from: x)
        set(node.outputs[0], out)
    }

    func planReshapeLike() throws {
        let v = try value(node.inputs[0])
        let inShape: [Int]
        switch v {
        case let .activation(a): inShape = a.shape
        case let .shuffle(a, g, stage):
            let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
            inShape = stage == 1 ? [n, g, c / g, h, w] : [n, c / g, g, h, w]
        case let .constant(c): inShape = c.shape
        }
        let r = inShape.count
        var shape: [Int]
        switch node.opType {
        case "Reshape":
            guard let target = try intsInput(1) else { throw err("missing shape") }
            guard let s = resolveReshape(inShape, target: target, allowZero: (node.int("allowzero") ?? 0) != 0) else {
                throw err("cannot reshape \(inShape) to \(target)")
            }
            shape = s
        case "Flatten":
            guard let axis = normalizeAxis(node.int("axis") ?? 1, rank: r + 1) else { throw err("axis out of range") }
            shape = [inShape[..<axis].reduce(1, *), inShape[axis...].reduce(1, *)]
        case "Squeeze":
            let axesIn = opset >= 13 ? try intsInput(1) : node.ints("axes")
            let axes = try (axesIn ?? (0..<r).filter { inShape[$0] == 1 }).map { a -> Int in
                guard let n = normalizeAxis(a, rank: r), inShape[n] == 1 else { throw err("cannot squeeze axis \(a) of \(inShape)") }
                return n
            }
            shape = inShape.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
        default: // Unsqueeze
            guard let axesIn = opset >= 13 ? try intsInput(1) : node.ints("axes") else { throw err("missing axes") }
            let rr = r + axesIn.count
            let axes = try axesIn.map { a -> Int in guard let n = normalizeAxis(a, rank: rr) else { throw err("axis \(a) out of range") }; return n }
            shape = []
            var src = 0
            for i in 0..<rr { if axes.contains(i) { shape.append(1) } else { shape.append(inShape[src]); src += 1 } }
        }
        // Channel shuffle: Reshape [N,C,H,W] → [N,g,C/g,H,W] → Transpose(0,2,1,3,4) → Reshape [N,C,H,W].
        if node.opType == "Reshape" {
            if case let .activation(a) = v, a.nhwc, a.shape.count == 4, shape.count == 5, shape[0] == a.shape[0],
               shape[1] * shape[2] == a.shape[1], shape[3] == a.shape[2], shape[4] == a.shape[3],
               graph.consumers[node.outputs[0]] == 1, let t = graph.consumerNodes[node.outputs[0]]?.first,
               graph.nodes[t].node.opType == "Transpose", graph.nodes[t].node.ints("perm") == [0, 2, 1, 3, 4] {
                values[node.outputs[0]] = .shuffle(a, groups: shape[1], stage: 1)
                return
            }
            if case let .shuffle(a, g, 2) = v, shape == a.shape {
                // Output channel j·g + i is input channel i·(C/g) + j: a view of the input, gathered once (by a
                // Concat or a Slice's consumer) instead of shuffled here.
                let per = a.shape[1] / g
                let view = ChannelView(source: a, channels: (0..<a.shape[1]).map { ($0 % g) * per + $0 / g })
                if branch == nil {
                    channelViews[node.outputs[0]] = view
                } else {
                    set(node.outputs[0], materialize(view))
                }
                return
            }
        }
        let x = toPlain(try activation(node.inputs[0]))
        set(node.outputs[0], Activation(shape: shape, nhwc: false, slot: alias(x.slot)))
    }

    func planTranspose() throws {
        let v = try value(node.inputs[0])
        let perm0 = node.ints("perm")
        if case let .shuffle(a, g, 1) = v, perm0 == [0, 2, 1, 3, 4] {
            values[node.outputs[0]] = .shuffle(a, groups: g, stage: 2)
            return
        }
        let x = try activation(node.inputs[0])
        let perm = perm0 ?? Array((0..<x.shape.count).reversed())
        guard perm.sorted() == Array(0..<x.shape.count) else { throw err("perm \(perm) does not fit rank \(x.shape.count)") }
        if x.nhwc && perm == [0, 2, 3, 1] {
            // NHWC memory is already the transposed tensor [N, H, W, C] in row-major order.
            set(node.outputs[0], Activation(shape: perm.map { x.shape[$0] }, nhwc: false, slot: alias(x.slot)))
            return
        }
        set(node.outputs[0], transpose(x, perm: perm))
    }

    func planGather() throws {
        let x = toPlain(try activation(node.inputs[0]))
        guard let indicesValue = constant(node.inputs[1]), indicesValue.isInt || true else { throw err("indices must be constant") }
        let r = x.shape.count
        guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: r) else { throw err("axis out of range") }
        let dim = x.shape[axis]
        let indices = try indicesValue.ints.map { i -> Int in
            let j = i < 0 ? i + dim : i
            guard j >= 0 && j < dim else { throw err("index \(i) out of range for axis size \(dim)") }
            return j
        }
        let shape = Array(x.shape[..<axis]) + indicesValue.shape + Array(x.shape[(axis + 1)...])
        let out = newActivation(shape, nhwc: false)
        let outer = x.shape[..<axis].reduce(1, *), inner = x.shape[(axis + 1)...].reduce(1, *)
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        emit(reads: [src], writes: [dst]) {
            let s = f[src], d = f[dst]
            for o in 0..<outer { for (k, i) in indices.enumerated() {
                (d + (o * indices.count + k) * inner).update(from: s + (o * dim + i) * inner, count: inner)
            } }
        }
        set(node.outputs[0], out)
    }

    // MARK: Pooling and reductions

    func globalAverage(_ x: Activation) -> Activation {
        let out = newActivation([x.shape[0], x.shape[1], 1, 1], nhwc: true)
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        let (n, c, pixels) = (x.shape[0], x.shape[1], x.shape[2] * x.shape[3])
        emit(reads: [src], writes: [dst]) { globalAveragePoolNHWC(batch: n, pixels: pixels, channels: c, src: f[src], dst: f[dst]) }
        return out
    }

    func planPool() throws {
        let x = try toNHWC(try activation(node.inputs[0]))
        let k = node.ints("kernel_shape") ?? []
        let s = node.ints("strides") ?? [1, 1], d = node.ints("dilations") ?? [1, 1]
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        let p = samePads(autoPad: autoPad, explicit: node.ints("pads") ?? [0, 0, 0, 0], input: [h, w], kernel: k, strides: s, dilations: d)
        let ceilMode = (node.int("ceil_mode") ?? 0) != 0
        func outSize(_ i: Int, _ inSize: Int, _ pb: Int, _ pe: Int) -> Int {
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" { return (inSize + s[i] - 1) / s[i] }
            let span = inSize + pb + pe - d[i] * (k[i] - 1) - 1
            if span < 0 { return 0 }
            var o = (ceilMode ? (span + s[i] - 1) / s[i] : span / s[i]) + 1
            if ceilMode && (o - 1) * s[i] >= inSize + pb { o -= 1 }
            return o
        }
        let oh = outSize(0, h, p[0], p[2]), ow = outSize(1, w, p[1], p[3])
        guard oh > 0, ow > 0 else { throw err("input \(x.shape) is smaller than the pooling window") }
        let g = PoolGeometry(batch: n, inputHeight: h, inputWidth: w, channels: c, kernelH: k[0], kernelW: k[1], strideH: s[0],
                             strideW: s[1], dilationH: d[0], dilationW: d[1], padTop: p[0], padLeft: p[1], padBottom: p[2],
                             padRight: p[3], outputHeight: oh, outputWidth: ow)
        let out = newActivation([n, c, oh, ow], nhwc: true)
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        if node.opType == "MaxPool" {
            emit(reads: [src], writes: [dst]) { maxPoolNHWC(g, src: f[src], dst: f[dst]) }
        } else {
            let include = (node.int("count_include_pad") ?? 0) != 0
            emit(reads: [src], writes: [dst]) { averagePoolNHWC(g, countIncludePad: include, src: f[src], dst: f[dst]) }
        }
        set(node.outputs[0], out)
    }

    func planReduceMean() throws {
        let x0 = try activation(node.inputs[0])
        let r = x0.shape.count
        let axesIn = opset >= 18 ? try intsInput(1) : node.ints("axes")
        let keep = (node.int("keepdims") ?? 1) != 0
        let axes = try Set((axesIn ?? Array(0..<r)).map { a -> Int in
            guard let n = normalizeAxis(a, rank: r) else { throw err("axis \(a) out of range") }; return n
        })
        let kept = (0..<r).map { axes.contains($0) ? 1 : x0.shape[$0] }
        let finalShape = keep ? kept : (0..<r).filter { !axes.contains($0) }.map { x0.shape[$0] }
        if r == 4 && axes == [2, 3] && x0.nhwc {
            let out = globalAverage(x0)
            set(node.outputs[0], keep ? out : Activation(shape: finalShape, nhwc: false, slot: alias(out.slot)))
            return
        }
        let x = toPlain(x0)
        let out = newActivation(kept, nhwc: false)
        let dims = x.shape, ss = contiguousStrides(x.shape)
        let os = contiguousStrides(kept).enumerated().map { axes.contains($0.offset) ? 0 : $0.element }
        let count = out.count, scale = Float(out.count) / Float(max(1, x.count))
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        emit(reads: [src], writes: [dst]) {
            let o = f[dst], s = f[src]
            o.update(repeating: 0, count: count)
            let loop = StridedLoop(dims: dims, strides: [os, ss])
            let n = loop.inner, so = loop.innerStrides[0], si = loop.innerStrides[1]
            for row in 0..<loop.rows {
                let off = loop.offsets(row)
                let d = o + off.0, e = s + off.1
                if so == 0 { var acc: Float = 0; for i in 0..<n { acc += e[i * si] }; d[0] += acc } else { for i in 0..<n { d[i * so] += e[i * si] } }
            }
            for i in 0..<count { o[i] *= scale }
        }
        set(node.outputs[0], Activation(shape: finalShape, nhwc: false, slot: keep ? out.slot : alias(out.slot)))
    }

    // MARK: Dense

    func planGemm() throws {
        let a = toPlain(try activation(node.inputs[0])), b = toPlain(try activation(node.inputs[1]))
        guard a.shape.count == 2, b.shape.count == 2 else { throw err("A \(a.shape) and B \(b.shape) must be 2-D") }
        let ta = (node.int("transA") ?? 0) != 0, tb = (node.int("transB") ?? 0) != 0
        let alpha = node.float("alpha") ?? 1, beta = node.float("beta") ?? 1
        let m = ta ? a.shape[1] : a.shape[0], k = ta ? a.shape[0] : a.shape[1]
        let kb = tb ? b.shape[1] : b.shape[0], n = tb ? b.shape[0] : b.shape[1]
        guard k == kb else { throw err("inner sizes differ: A \(a.shape) (transA \(ta)), B \(b.shape) (transB \(tb))") }
        let out = newActivation([m, n], nhwc: false)
        let f = plan.frame, (ia, ib, io) = (a.slot, b.slot, out.slot)
        let lda = a.shape[1], ldb = b.shape[1]
        var biasSlot: Int? = nil
        var cAct: Activation? = nil
        if node.inputs.count > 2, !node.inputs[2].isEmpty, beta != 0 {
            if let c = constant(node.inputs[2]), c.count == n || c.count == 1, c.shape.count <= 1 || c.shape.reduce(1, *) == c.shape.last! {
                let values = c.count == n ? c.data : [Double](repeating: c.data[0], count: n)
                biasSlot = constantSlot(ConstValue(data: values.map { $0 * Double(beta) }, shape: [n], isInt: false), key: node.name + "#bias")
            } else {
                let c = toPlain(try activation(node.inputs[2]))
                guard let bs = broadcastShapes(c.shape, [m, n]), bs == [m, n] else { throw err("C \(c.shape) does not broadcast to [\(m), \(n)]") }
                cAct = c
            }
        }
        if let c = cAct {
            let cs = broadcastStrides(c.shape, strides: c.logicalStrides, rank: 2)
            let ic = c.slot
            emit(reads: [ia, ib, ic], writes: [io]) {
                stridedCopy(dims: [m, n], src: f[ic], srcStrides: cs, dst: f[io], dstStrides: [n, 1])
                Kernels.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: f[ia], lda: lda, b: f[ib], ldb: ldb,
                             beta: beta, c: f[io], ldc: n)
            }
        } else {
            let bias = biasSlot
            emit(reads: [ia, ib] + (bias.map { [$0] } ?? []), writes: [io]) {
                Kernels.gemm(transA: ta, transB: tb, m: m, n: n, k: k, alpha: alpha, a: f[ia], lda: lda, b: f[ib], ldb: ldb,
                             beta: 0, c: f[io], ldc: n, bias: bias.map { UnsafePointer(f[$0]) }, activation: .none)
            }
        }
        set(node.outputs[0], out)
    }

    func planMatMul() throws {
        let a = toPlain(try activation(node.inputs[0])), b = toPlain(try activation(node.inputs[1]))
        guard a.shape.count >= 2, b.shape.count >= 2 else { throw err("1-D operands are not supported: A \(a.shape), B \(b.shape)") }
        let m = a.shape[a.shape.count - 2], k = a.shape.last!, kb = b.shape[b.shape.count - 2], n = b.shape.last!
        guard k == kb else { throw err("inner sizes differ: A \(a.shape), B \(b.shape)") }
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        let f = plan.frame, (ia, ib) = (a.slot, b.slot)
        if batchB.reduce(1, *) == 1 {
            let rows = batchA.reduce(1, *) * m
            let out = newActivation(batchA + [m, n], nhwc: false)
            let io = out.slot
            emit(reads: [ia, ib], writes: [io]) {
                Kernels.gemm(m: rows, n: n, k: k, a: f[ia], lda: k, b: f[ib], ldb: n, c: f[io], ldc: n)
            }
            set(node.outputs[0], Activation(shape: batchA.count >= batchB.count ? out.shape : batchB + [m, n], nhwc: false, slot: io))
            return
        }
        guard batchA == batchB else { throw err("batch broadcasting of A \(a.shape) and B \(b.shape) is not supported") }
        let batches = batchA.reduce(1, *)
        let out = newActivation(batchA + [m, n], nhwc: false)
        let io = out.slot
        emit(reads: [ia, ib], writes: [io]) {
            for i in 0..<batches {
                Kernels.gemm(m: m, n: n, k: k, a: f[ia] + i * m * k, lda: k, b: f[ib] + i * k * n, ldb: n, c: f[io] + i * m * n, ldc: n)
            }
        }
        set(node.outputs[0], out)
    }

    func planSoftmax() throws {
        let x = toPlain(try activation(node.inputs[0]))
        let r = x.shape.count
        guard let axis = normalizeAxis(node.int("axis") ?? (opset >= 13 ? -1 : 1), rank: r) else { throw err("axis out of range") }
        let outer = x.shape[..<axis].reduce(1, *)
        let axisLen = opset >= 13 ? x.shape[axis] : x.shape[axis...].reduce(1, *)
        let inner = opset >= 13 ? x.shape[(axis + 1)...].reduce(1, *) : 1
        let out = newActivation(x.shape, nhwc: false)
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        emit(reads: [src], writes: [dst]) { softmax(outer: outer, axis: axisLen, inner: inner, src: f[src], dst: f[dst]) }
        set(node.outputs[0], out)
    }
}
