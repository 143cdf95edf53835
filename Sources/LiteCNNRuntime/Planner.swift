import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// A planned activation: logical (ONNX) shape, physical layout (NHWC for 4-D when `nhwc`), and its buffer slot.
struct Activation {
    var shape: [Int]
    var nhwc: Bool
    var slot: Int
    var count: Int { shape.reduce(1, *) }
    /// Physical dimension i holds logical dimension `perm[i]`.
    var perm: [Int] { nhwc ? [0, 2, 3, 1] : Array(0..<shape.count) }
    var physicalShape: [Int] { perm.map { shape[$0] } }
    /// Memory stride of each *logical* dimension.
    var logicalStrides: [Int] {
        let ps = contiguousStrides(physicalShape)
        var s = [Int](repeating: 0, count: shape.count)
        for (i, d) in perm.enumerated() { s[d] = ps[i] }
        return s
    }
    /// NHWC with one spatial position or one channel: identical in memory to NCHW.
    var layoutFree: Bool { shape.count != 4 || shape[1] == 1 || shape[2] * shape[3] == 1 }
}

enum PlanValue {
    case constant(ConstValue)
    case activation(Activation)
    /// The first half of a channel shuffle seen so far: Reshape [N,g,C/g,H,W] (stage 1), then Transpose (stage 2).
    case shuffle(Activation, groups: Int, stage: Int)
}

/// A lazy channel selection of an NHWC activation: logical channel `k` of the value (logical shape
/// `[N, channels.count, H, W]`) is physical channel `channels[k]` of `source` (NHWC `[N, H, W, C]`). Channel shuffles and
/// Slice/Split along channels make views instead of copies; a Concat copies a view's channels straight from its source,
/// and any other consumer materializes it with one gather pass (`PlanBuilder.value`).
struct ChannelView {
    var source: Activation
    var channels: [Int]
    var shape: [Int] { [source.shape[0], channels.count, source.shape[2], source.shape[3]] }
}

/// Where a convolution step writes its NHWC output, read when the step runs: its own buffer (`rowStride == 0`), or,
/// once a channel Concat adopts it, `rowStride`-float rows of the Concat's buffer starting at channel `offset`.
final class OutputTarget: @unchecked Sendable {
    var slot: Int
    var offset = 0
    var rowStride = 0
    init(slot: Int) { self.slot = slot }
}

/// Buffer pointers of one plan, filled once the memory plan is known; steps read them at run time.
final class Frame: @unchecked Sendable {
    var pointers: UnsafeMutablePointer<UnsafeMutablePointer<Float>> = .allocate(capacity: 1)
    /// The alternative each group runs in the current run (switchable graphs), set before the steps run.
    var selection: [Int] = []
    deinit { pointers.deallocate() }
    @inline(__always) subscript(_ slot: Int) -> UnsafeMutablePointer<Float> { pointers[slot] }
}

/// A compiled graph specialized to one input shape: steps to run in order over one arena.
final class Plan: @unchecked Sendable {
    let frame = Frame()
    var steps: [() -> Void] = []
    /// For each step, the operator and node it came from (`"Conv /features/0/Conv"`; layout copies say so).
    var stepLabels: [(op: String, node: String)] = []
    /// For each step, the group and alternative it belongs to (`-1` for steps that always run).
    var stepGroups: [Int] = []
    var stepAlternatives: [Int] = []
    var hasAlternatives = false
    var arena: UnsafeMutablePointer<Float>?
    var constantStorage: [UnsafeMutablePointer<Float>] = []
    var input: Activation!
    var outputs: [PlanValue] = []
    var peakActivationBytes = 0
    /// Whether every step treats the images of the batch independently (no operator reduces, concatenates, reshapes
    /// or transposes across axis 0), so that sub-batches can run as separate plans on separate threads.
    var batchSplittable = false

    deinit {
        arena.map(deallocateCacheAligned)
        for c in constantStorage { deallocateCacheAligned(c) }
    }
}

/// A value made while planning by a job that runs in parallel with the others (weight packing), read by steps.
final class Prepared<Value>: @unchecked Sendable {
    var value: Value!
}

private struct Slot {
    var count: Int
    var alias: Int?
    var constant: UnsafeMutablePointer<Float>?
    var def = Int.max
    var lastUse = Int.min
}

/// Builds a `Plan`: evaluates shape arithmetic with the real shapes, picks layouts, emits steps, assigns buffers.
final class PlanBuilder {
    let graph: CompiledGraph
    let plan = Plan()
    private var slots: [Slot] = []
    var values: [String: PlanValue] = [:]
    private var constantSlots: [String: Int] = [:]
    private var plainCache: [Int: Activation] = [:]
    private var nhwcCache: [Int: Activation] = [:]
    var node: Node!
    /// The alternative of the node being planned; its steps (layout copies included) run only when it is selected, so
    /// layout conversions made inside an alternative are neither cached nor reused.
    var branch: (group: Int, alternative: Int)?
    var opset: Int { graph.opset }
    /// Values that are lazy channel selections (not in `values` until materialized).
    var channelViews: [String: ChannelView] = [:]
    /// Convolution steps that may write straight into a channel Concat's buffer, by output slot.
    var redirectable: [Int: (target: OutputTarget, step: Int, name: String)] = [:]
    /// Values that repeat another activation along some axes (see `BroadcastValue`), by name.
    var broadcasts: [String: BroadcastValue] = [:]
    /// Weight packing and transforms, run over the worker pool once every node is planned.
    private var preparationJobs: [() -> Void] = []

    init(graph: CompiledGraph) { self.graph = graph }

    func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }

    // MARK: Slots

    func newSlot(_ count: Int) -> Int { slots.append(Slot(count: count)); return slots.count - 1 }
    func alias(_ s: Int) -> Int { slots.append(Slot(count: slots[s].count, alias: s)); return slots.count - 1 }
    func root(_ s: Int) -> Int { var r = s; while let a = slots[r].alias { r = a }; return r }

    /// Appends a step; `reads`/`writes` fix the buffers' lifetimes.
    func emit(reads: [Int], writes: [Int], label: String? = nil, _ body: @escaping () -> Void) {
        let index = plan.steps.count
        plan.stepLabels.append((op: label ?? node?.opType ?? "Output", node: node?.name ?? ""))
        plan.stepGroups.append(branch?.group ?? -1)
        plan.stepAlternatives.append(branch?.alternative ?? -1)
        for s in reads { let r = root(s); slots[r].lastUse = max(slots[r].lastUse, index) }
        for s in writes { let r = root(s); slots[r].def = min(slots[r].def, index) }
        plan.steps.append(body)
    }

    /// `make()` runs before the plan is used, in parallel with the other preparations; steps read `.value`.
    func prepared<Value>(_ make: @escaping () -> Value) -> Prepared<Value> {
        let box = Prepared<Value>()
        preparationJobs.append { box.value = make() }
        return box
    }

    func constantSlot(_ v: ConstValue, key: String) -> Int {
        if let s = constantSlots[key] { return s }
        let p = allocateCacheAligned(floats: v.count)
        if v.count > 0 { v.floats.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: v.count) } }
        plan.constantStorage.append(p)
        slots.append(Slot(count: v.count, constant: p))
        constantSlots[key] = slots.count - 1
        return slots.count - 1
    }

    // MARK: Values

    func value(_ name: String) throws -> PlanValue {
        if let view = channelViews[name] {
            let a = materialize(view)
            if branch == nil { channelViews[name] = nil; values[name] = .activation(a) }
            return .activation(a)
        }
        guard let v = values[name] ?? graph.constants[name].map({ PlanValue.constant($0) }) else {
            throw err("input '\(name)' has no value")
        }
        return v
    }

    /// The value as a buffer (constants materialized; pending shuffles run as reshape/transpose).
    func activation(_ name: String) throws -> Activation {
        switch try value(name) {
        case let .activation(a): return a
        case let .constant(c): return Activation(shape: c.shape, nhwc: false, slot: constantSlot(c, key: name))
        case let .shuffle(a, g, stage):
            let x = toPlain(a)
            let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
            let five = Activation(shape: [n, g, c / g, h, w], nhwc: false, slot: alias(x.slot))
            return stage == 1 ? five : transpose(five, perm: [0, 2, 1, 3, 4])
        }
    }

    func constant(_ name: String) -> ConstValue? {
        if name.isEmpty { return nil }
        if case let .constant(c)? = values[name] ?? graph.constants[name].map({ PlanValue.constant($0) }) { return c }
        return nil
    }

    func newActivation(_ shape: [Int], nhwc: Bool) -> Activation {
        Activation(shape: shape, nhwc: nhwc && shape.count == 4, slot: newSlot(shape.reduce(1, *)))
    }

    /// One gather pass: the view's channels copied into a new NHWC activation.
    func materialize(_ view: ChannelView) -> Activation {
        let out = newActivation(view.shape, nhwc: true)
        gatherChannels(view, into: out, channelOffset: 0, label: "Channel gather")
        return out
    }

    /// Emits `out[n, h, w, channelOffset + k] = view[n, k, h, w]` (both NHWC) for every channel of the view.
    func gatherChannels(_ view: ChannelView, into out: Activation, channelOffset: Int, label: String? = nil) {
        let src = view.source
        let pixels = src.shape[0] * src.shape[2] * src.shape[3], srcC = src.shape[1], dstC = out.shape[1]
        let map = view.channels.map { Int32($0) }, count = map.count
        if count == 0 || pixels == 0 { return }
        let f = plan.frame, (s, d) = (src.slot, out.slot)
        emit(reads: [s], writes: [d], label: label) {
            map.withUnsafeBufferPointer { m in
                let base = m.baseAddress!
                WorkerPool.shared.parallelRanges(pixels, minimumChunk: max(1, 16_384 / max(1, count))) { r in
                    PoolKernels.gatherChannels(src: f[s] + r.lowerBound * srcC, srcStride: srcC,
                                               dst: f[d] + r.lowerBound * dstC + channelOffset, dstStride: dstC,
                                               pixels: r.count, map: base, count: count)
                }
            }
        }
    }

    /// Moves the write of `step` from slot `old` (never read) to slot `new`, whose lifetime then starts at `step`
    /// (a convolution adopted by a Concat). `old` gets no memory.
    func retargetWrite(from old: Int, to new: Int, at step: Int) {
        let r = root(new)
        slots[r].def = min(slots[r].def, step)
        let o = root(old)
        if slots[o].lastUse == Int.min { slots[o].def = Int.max }
    }

    // MARK: Layout conversion

    func toPlain(_ a: Activation) -> Activation {
        if !a.nhwc { return a }
        if a.layoutFree { return Activation(shape: a.shape, nhwc: false, slot: alias(a.slot)) }
        if branch == nil, let c = plainCache[a.slot] { return c }
        let out = newActivation(a.shape, nhwc: false)
        let f = plan.frame, (src, dst) = (a.slot, out.slot)
        let dims = a.shape, ss = a.logicalStrides, ds = contiguousStrides(a.shape)
        emit(reads: [src], writes: [dst], label: "NHWC→NCHW") {
            stridedCopy(dims: dims, src: f[src], srcStrides: ss, dst: f[dst], dstStrides: ds)
        }
        if branch == nil { plainCache[a.slot] = out }
        return out
    }

    func toNHWC(_ a: Activation) throws -> Activation {
        guard a.shape.count == 4 else { throw err("expects a 4-D input, got shape \(a.shape)") }
        if a.nhwc { return a }
        if a.layoutFree { return Activation(shape: a.shape, nhwc: true, slot: alias(a.slot)) }
        if branch == nil, let c = nhwcCache[a.slot] { return c }
        let out = newActivation(a.shape, nhwc: true)
        let f = plan.frame, (src, dst) = (a.slot, out.slot)
        let ls = contiguousStrides(a.shape)
        let dims = out.physicalShape, ss = [ls[0], ls[2], ls[3], ls[1]], ds = contiguousStrides(dims)
        emit(reads: [src], writes: [dst], label: "NCHW→NHWC") {
            stridedCopy(dims: dims, src: f[src], srcStrides: ss, dst: f[dst], dstStrides: ds)
        }
        if branch == nil { nhwcCache[a.slot] = out }
        return out
    }

    /// Plain transpose.
    func transpose(_ x: Activation, perm: [Int]) -> Activation {
        let ls = x.logicalStrides
        let out = newActivation(perm.map { x.shape[$0] }, nhwc: false)
        let f = plan.frame, (src, dst) = (x.slot, out.slot)
        let dims = out.shape, ss = perm.map { ls[$0] }, ds = contiguousStrides(out.shape)
        emit(reads: [src], writes: [dst]) { stridedCopy(dims: dims, src: f[src], srcStrides: ss, dst: f[dst], dstStrides: ds) }
        return out
    }

    // MARK: Build

    func build(inputShape: [Int]) throws -> Plan {
        let inputAct = Activation(shape: inputShape, nhwc: inputShape.count == 4, slot: newSlot(inputShape.reduce(1, *)))
        slots[inputAct.slot].def = -1
        values[graph.inputName] = .activation(inputAct)
        plan.input = inputAct
        let batch = inputShape.first ?? 0
        var perImage = inputShape.count >= 1 && batch >= 2
        var index = 0
        while index < graph.nodes.count {
            let cn = graph.nodes[index]
            node = cn.node
            branch = alternativeTag(cn.node)
            var planned = [cn.node]
            if try planPointwiseDepthwise(at: index) {
                planned.append(graph.nodes[index + 1].node)
            } else {
                try planNode(cn)
            }
            for n in planned {
                noteBroadcast(n)
                if perImage && !treatsImagesIndependently(n, batch: batch) { perImage = false }
            }
            index += planned.count
        }
        plan.batchSplittable = perImage
        node = nil
        branch = nil
        for name in graph.outputNames {
            if channelViews[name] != nil { _ = try value(name) }
            guard let v = values[name] ?? graph.constants[name].map({ PlanValue.constant($0) }) else {
                throw GraphError("graph output '\(name)' has no value", opset: opset)
            }
            if case .shuffle = v {
                let a = try activation(name)
                values[name] = .activation(a)
            }
            let final = values[name] ?? v
            if case let .activation(a) = final { slots[root(a.slot)].lastUse = Int.max }
            plan.outputs.append(final)
        }
        plan.hasAlternatives = plan.stepGroups.contains { $0 >= 0 }
        let jobs = preparationJobs
        WorkerPool.shared.parallelFor(jobs.count) { jobs[$0]() }
        allocate()
        return plan
    }

    /// Whether `node`, just planned, keeps the images of a batch of `batch` apart: every activation it reads or writes
    /// has `batch` as its first dimension, and it neither reduces, concatenates, slices, gathers nor transposes
    /// axis 0, nor multiplies two activations together. Nodes folded to constants always qualify. Conservative: an
    /// operator not listed here counts as mixing.
    private func treatsImagesIndependently(_ node: Node, batch: Int) -> Bool {
        var activationInputs: [Int] = []
        for (i, name) in node.inputs.enumerated() where !name.isEmpty {
            if let view = channelViews[name] {
                guard view.shape.first == batch else { return false }
                activationInputs.append(i)
                continue
            }
            switch values[name] {
            case let .activation(a)?:
                guard a.shape.first == batch else { return false }
                activationInputs.append(i)
            case let .shuffle(a, _, _)?:
                guard a.shape.first == batch else { return false }
                activationInputs.append(i)
            default: break
            }
        }
        for name in node.outputs where !name.isEmpty {
            if let view = channelViews[name] {
                if view.shape.first != batch { return false }
                continue
            }
            switch values[name] {
            case let .activation(a)?: if a.shape.first != batch { return false }
            case let .shuffle(a, _, _)?: if a.shape.first != batch { return false }
            default: break
            }
        }
        if activationInputs.isEmpty { return true }
        // Shape arithmetic folds to constants of this plan's own batch; Select passes one input on unchanged.
        if node.opType == "Shape" || node.opType == "Size" || node.domain == alternativesDomain { return true }
        let rank: Int = {
            if channelViews[node.inputs[activationInputs[0]]] != nil { return 4 }
            switch values[node.inputs[activationInputs[0]]] {
            case let .activation(a)?: return a.shape.count
            case .shuffle?: return 4
            default: return 0
            }
        }()
        func touchesAxisZero(_ axes: [Int]?) -> Bool {
            guard let axes else { return true }
            return axes.contains { $0 == 0 || $0 == -rank }
        }
        switch node.opType {
        case "Conv", "BatchNormalization", "Relu", "Sigmoid", "HardSwish", "HardSigmoid", "Clip", "Identity", "Dropout",
             "Cast", "Add", "Sub", "Mul", "Div", "Pad", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "MaxPool",
             "AveragePool", "GlobalAveragePool":
            // Elementwise ops read two activations only when both start with the batch (checked above).
            return true
        case "Concat", "Split", "Softmax", "Gather":
            let defaultAxis = node.opType == "Softmax" ? (opset >= 13 ? -1 : 1) : 0
            return !touchesAxisZero([node.int("axis") ?? defaultAxis])
        case "Slice":
            let axes = node.inputs.count > 3 && !node.inputs[3].isEmpty ? constant(node.inputs[3])?.ints : Array(0..<rank)
            return !touchesAxisZero(axes)
        case "ReduceMean":
            var axes = node.ints("axes")
            if axes == nil, node.inputs.count > 1, !node.inputs[1].isEmpty { axes = constant(node.inputs[1])?.ints }
            return !touchesAxisZero(axes)
        case "Transpose":
            return (node.ints("perm")?.first ?? rank - 1) == 0
        case "Gemm":
            return (node.int("transA") ?? 0) == 0 && activationInputs == [0]
        case "MatMul":
            return activationInputs == [0]
        default:
            return false
        }
    }

    /// Offsets by liveness: best-fit reuse of freed ranges, growing the arena only when nothing fits.
    private func allocate() {
        let align = 16
        var offsets = [Int](repeating: 0, count: slots.count)
        var free: [(offset: Int, size: Int)] = []
        var top = 0
        func take(_ size: Int) -> Int {
            var best: Int?
            for (i, b) in free.enumerated() where b.size >= size {
                if best == nil || b.size < free[best!].size { best = i }
            }
            if let i = best {
                let o = free[i].offset
                if free[i].size == size { free.remove(at: i) } else { free[i].offset += size; free[i].size -= size }
                return o
            }
            if let last = free.last, last.offset + last.size == top {
                free.removeLast()
                top = last.offset + size
                return last.offset
            }
            defer { top += size }
            return top
        }
        func give(_ offset: Int, _ size: Int) {
            free.append((offset, size))
            free.sort { $0.offset < $1.offset }
            var merged: [(offset: Int, size: Int)] = []
            for b in free {
                if let l = merged.last, l.offset + l.size == b.offset { merged[merged.count - 1].size += b.size } else { merged.append(b) }
            }
            free = merged
        }
        let roots = slots.indices.filter { slots[$0].alias == nil && slots[$0].constant == nil && slots[$0].def != Int.max }
        var byDef: [Int: [Int]] = [:], byEnd: [Int: [Int]] = [:]
        for r in roots {
            byDef[slots[r].def, default: []].append(r)
            let end = max(slots[r].def, slots[r].lastUse)
            if end != Int.max { byEnd[end, default: []].append(r) }
        }
        func size(_ r: Int) -> Int { (max(1, slots[r].count) + align - 1) / align * align }
        for step in -1..<plan.steps.count {
            for r in byDef[step] ?? [] { offsets[r] = take(size(r)) }
            for r in byEnd[step] ?? [] { give(offsets[r], size(r)) }
        }
        let arena = allocateCacheAligned(floats: top)
        plan.arena = arena
        plan.peakActivationBytes = top * MemoryLayout<Float>.size
        plan.frame.pointers.deallocate()
        plan.frame.pointers = .allocate(capacity: max(1, slots.count))
        for i in slots.indices {
            if let c = slots[i].constant { plan.frame.pointers[i] = c; continue }
            plan.frame.pointers[i] = arena + offsets[root(i)]
        }
    }
}
