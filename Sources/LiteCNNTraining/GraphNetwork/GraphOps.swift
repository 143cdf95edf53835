import LiteCNNGraph
import LiteCNNLayers
import LiteCNNRuntime
import LiteCNNTensor

/// What one forward pass of a `GraphNetwork` sees for its batch size: the folded constants (logical ONNX values) and
/// the logical shape of every value.
final class BatchPlan {
    let constants: [String: Constant]
    let shapes: [String: [Int]]
    private var physicalCache: [String: Tensor] = [:]

    init(_ folded: FoldedGraph) {
        constants = folded.graph.initializers
        shapes = folded.shapes
    }

    /// A constant as a physical tensor (cached).
    func physical(_ name: String) -> Tensor? {
        if let t = physicalCache[name] { return t }
        guard let c = constants[name] else { return nil }
        let t = physicalConstant(c)
        physicalCache[name] = t
        return t
    }

    func ints(_ name: String) -> [Int]? {
        switch constants[name] {
        case let .int(v, _)?: return v
        case let .float(t)?: return t.scalars.map { Int($0) }
        case nil: return nil
        }
    }

    func shape(_ name: String) -> [Int] {
        guard let s = shapes[name] else { preconditionFailure("GraphNetwork: no shape for value '\(name)'") }
        return s
    }
}

/// One node of a `GraphNetwork`: forward on physical tensors (see GraphLayout.swift), backward returning the gradient
/// of every input (`nil` where none is needed or none flows).
class GraphOp {
    let node: Node
    /// Which inputs are activations (need a gradient); set by the network.
    var needsGradient: [Bool] = []
    var isTraining = false { didSet { for l in layers { l.isTraining = isTraining } } }

    init(node: Node) { self.node = node }

    /// Layers the op delegates to (their training mode follows the op's).
    var layers: [any Layer] { [] }

    func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] { fatalError("GraphOp.forward is abstract") }
    func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] { fatalError("GraphOp.backward is abstract") }

    /// Multiply-adds of one forward pass for the plan's batch.
    func multiplyAdds(_ plan: BatchPlan) -> Int { 0 }

    func inShape(_ i: Int, _ plan: BatchPlan) -> [Int] { plan.shape(node.inputs[i]) }
    func outShape(_ i: Int, _ plan: BatchPlan) -> [Int] { plan.shape(node.outputs[i]) }

    /// The gradient for output `i`, zeros of its physical shape when none flowed.
    func grad(_ dy: [Tensor?], _ i: Int, _ plan: BatchPlan) -> Tensor {
        if i < dy.count, let g = dy[i] { return g }
        return Tensor(shape: physicalShape(outShape(i, plan)))
    }
}

/// A node run by an existing layer (Conv2D, BatchNorm2D, activations, Softmax, Dropout): same layout, same kernels.
final class LayerOp: GraphOp {
    let layer: any Layer
    init(node: Node, layer: any Layer) {
        self.layer = layer
        super.init(node: node)
    }
    override var layers: [any Layer] { [layer] }
    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] { [layer.forward(x[0])] }
    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        [layer.backward(grad(dy, 0, plan))] + [Tensor?](repeating: nil, count: max(0, node.inputs.count - 1))
    }
    override func multiplyAdds(_ plan: BatchPlan) -> Int {
        layer.localMultiplyAdds(for: physicalShape(inShape(0, plan)))
    }
}

/// `ai.litecnn` `Select` of a switchable graph: passes on the alternative `GraphNetwork.selection` chose for its group
/// (the network runs it, setting `chosen`); backward gives that alternative the whole gradient.
final class SelectOp: GraphOp {
    let group: Int
    var chosen = 0
    init(node: Node, group: Int) {
        self.group = group
        super.init(node: node)
    }
    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] { [x[chosen]] }
    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        var result = [Tensor?](repeating: nil, count: node.inputs.count)
        result[chosen] = grad(dy, 0, plan)
        return result
    }
}

/// Elementwise functions without a matching layer: Clip with any bounds, HardSigmoid with any slope, Identity.
final class UnaryOp: GraphOp {
    enum Kind { case clip(Float, Float), hardSigmoid(alpha: Float, beta: Float), identity }
    let kind: Kind
    private var saved: Tensor?
    init(node: Node, kind: Kind) {
        self.kind = kind
        super.init(node: node)
    }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let input = x[0]
        saved = isTraining ? input : nil
        switch kind {
        case .identity: return [input]
        case let .clip(lo, hi):
            return [Tensor(shape: input.shape, layout: input.layout) { out in
                input.scalars.withUnsafeBufferPointer { v in for i in 0..<out.count { out[i] = min(max(v[i], lo), hi) } }
            }]
        case let .hardSigmoid(alpha, beta):
            return [Tensor(shape: input.shape, layout: input.layout) { out in
                input.scalars.withUnsafeBufferPointer { v in for i in 0..<out.count { out[i] = min(max(alpha * v[i] + beta, 0), 1) } }
            }]
        }
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let g = grad(dy, 0, plan)
        var result = [Tensor?](repeating: nil, count: node.inputs.count)
        switch kind {
        case .identity: result[0] = g
        case let .clip(lo, hi):
            guard let x = saved else { preconditionFailure("Clip.backward without a training-mode forward") }
            result[0] = Tensor(shape: g.shape, layout: g.layout) { out in
                g.scalars.withUnsafeBufferPointer { d in
                    x.scalars.withUnsafeBufferPointer { v in for i in 0..<out.count { out[i] = v[i] >= lo && v[i] <= hi ? d[i] : 0 } }
                }
            }
        case let .hardSigmoid(alpha, beta):
            guard let x = saved else { preconditionFailure("HardSigmoid.backward without a training-mode forward") }
            result[0] = Tensor(shape: g.shape, layout: g.layout) { out in
                g.scalars.withUnsafeBufferPointer { d in
                    x.scalars.withUnsafeBufferPointer { v in
                        for i in 0..<out.count {
                            let z = alpha * v[i] + beta
                            out[i] = z > 0 && z < 1 ? alpha * d[i] : 0
                        }
                    }
                }
            }
        }
        return result
    }
}

/// Add, Sub, Mul, Div with numpy broadcasting (bias vectors, SE gates, residuals).
final class BinaryOp: GraphOp {
    enum Kind { case add, sub, mul, div }
    let kind: Kind
    private var savedA: Tensor?, savedB: Tensor?
    init(node: Node, kind: Kind) {
        self.kind = kind
        super.init(node: node)
    }

    @inline(__always) private func apply(_ a: Float, _ b: Float) -> Float {
        switch kind {
        case .add: return a + b
        case .sub: return a - b
        case .mul: return a * b
        case .div: return a / b
        }
    }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let out = outShape(0, plan), r = out.count
        let a = physicalOperand(x[0], shape: inShape(0, plan), rank: r)
        let b = physicalOperand(x[1], shape: inShape(1, plan), rank: r)
        if isTraining { savedA = a; savedB = b }
        let dims = physicalShape(out)
        let y = Tensor(shape: dims, layout: r == 4 ? .nhwc : .plain) { o in
            a.scalars.withUnsafeBufferPointer { pa in
                b.scalars.withUnsafeBufferPointer { pb in
                    if pa.count == o.count && pb.count == o.count {
                        let k = kind
                        WorkerPool.shared.parallelRanges(o.count, minimumChunk: 1 << 15) { range in
                            switch k {
                            case .add: for i in range { o[i] = pa[i] + pb[i] }
                            case .sub: for i in range { o[i] = pa[i] - pb[i] }
                            case .mul: for i in range { o[i] = pa[i] * pb[i] }
                            case .div: for i in range { o[i] = pa[i] / pb[i] }
                            }
                        }
                        return
                    }
                    let sa = broadcastPhysicalStrides(inShape(0, plan), rank: r)
                    let sb = broadcastPhysicalStrides(inShape(1, plan), rank: r)
                    broadcastRows(dims, sa, sb) { oo, ao, bo, n, ia, ib in
                        for i in 0..<n { o[oo + i] = apply(pa[ao + i * ia], pb[bo + i * ib]) }
                    }
                }
            }
        }
        return [y]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let g = grad(dy, 0, plan)
        let out = outShape(0, plan), r = out.count, dims = physicalShape(out)
        let shapeA = inShape(0, plan), shapeB = inShape(1, plan)
        let sa = broadcastPhysicalStrides(shapeA, rank: r), sb = broadcastPhysicalStrides(shapeB, rank: r)
        let physA = physicalShape([Int](repeating: 1, count: r - shapeA.count) + shapeA)
        let physB = physicalShape([Int](repeating: 1, count: r - shapeB.count) + shapeB)
        var result = [Tensor?](repeating: nil, count: 2)
        if kind == .mul || kind == .div {
            guard savedA != nil, savedB != nil else { preconditionFailure("\(node.opType).backward without a training-mode forward") }
        }
        if needsGradient[0] {
            let da: Tensor
            switch kind {
            case .add, .sub: da = reduceBroadcast(g, dims: dims, strides: sa, count: physA.reduce(1, *), shape: physA)
            case .mul: da = reduceBroadcast(g, dims: dims, strides: sa, count: physA.reduce(1, *), shape: physA, times: savedB!, otherStrides: sb)
            case .div:
                let inv = Tensor(shape: savedB!.shape, scalars: savedB!.scalars.map { 1 / $0 }, layout: savedB!.layout)
                da = reduceBroadcast(g, dims: dims, strides: sa, count: physA.reduce(1, *), shape: physA, times: inv, otherStrides: sb)
            }
            result[0] = ownOperand(da, shape: shapeA, rank: r)
        }
        if needsGradient[1] {
            var db: Tensor
            switch kind {
            case .add: db = reduceBroadcast(g, dims: dims, strides: sb, count: physB.reduce(1, *), shape: physB)
            case .sub:
                db = reduceBroadcast(g, dims: dims, strides: sb, count: physB.reduce(1, *), shape: physB)
                db.scalars = db.scalars.map { -$0 }
            case .mul: db = reduceBroadcast(g, dims: dims, strides: sb, count: physB.reduce(1, *), shape: physB, times: savedA!, otherStrides: sa)
            case .div:
                // ∂(a/b)/∂b = −a/b²: form −dy·a/b² over the output, then reduce.
                let a = savedA!, b = savedB!
                let t = Tensor(shape: dims, layout: r == 4 ? .nhwc : .plain) { o in
                    g.scalars.withUnsafeBufferPointer { d in
                        a.scalars.withUnsafeBufferPointer { pa in
                            b.scalars.withUnsafeBufferPointer { pb in
                                broadcastRows(dims, sa, sb) { oo, ao, bo, n, ia, ib in
                                    for i in 0..<n { let bv = pb[bo + i * ib]; o[oo + i] = -d[oo + i] * pa[ao + i * ia] / (bv * bv) }
                                }
                            }
                        }
                    }
                }
                db = reduceBroadcast(t, dims: dims, strides: sb, count: physB.reduce(1, *), shape: physB)
            }
            result[1] = ownOperand(db, shape: shapeB, rank: r)
        }
        return result
    }
}

/// Concat and Split along a logical axis (a physical axis of the stored layout).
final class ConcatOp: GraphOp {
    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let out = outShape(0, plan)
        let axis = physicalAxis(normalized(node.int("axis") ?? 0, out.count), rank: out.count)
        let dims = physicalShape(out)
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        let parts = node.inputs.indices.filter { !node.inputs[$0].isEmpty }
        let sizes = parts.map { physicalShape(inShape($0, plan))[axis] * inner }
        let total = dims[axis] * inner
        return [Tensor(shape: dims, layout: dims.count == 4 ? .nhwc : .plain) { o in
            var offset = 0
            for (k, p) in parts.enumerated() {
                let block = sizes[k]
                x[p].scalars.withUnsafeBufferPointer { s in
                    for b in 0..<outer { (o.baseAddress! + b * total + offset).update(from: s.baseAddress! + b * block, count: block) }
                }
                offset += block
            }
        }]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let g = grad(dy, 0, plan)
        let out = outShape(0, plan)
        let axis = physicalAxis(normalized(node.int("axis") ?? 0, out.count), rank: out.count)
        let dims = physicalShape(out)
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        let total = dims[axis] * inner
        var result = [Tensor?](repeating: nil, count: node.inputs.count)
        var offset = 0
        for p in node.inputs.indices where !node.inputs[p].isEmpty {
            let shape = physicalShape(inShape(p, plan))
            let block = shape[axis] * inner
            if needsGradient[p] {
                let start = offset
                result[p] = Tensor(shape: shape, layout: shape.count == 4 ? .nhwc : .plain) { o in
                    g.scalars.withUnsafeBufferPointer { s in
                        for b in 0..<outer { (o.baseAddress! + b * block).update(from: s.baseAddress! + b * total + start, count: block) }
                    }
                }
            }
            offset += block
        }
        return result
    }
}

func normalized(_ axis: Int, _ rank: Int) -> Int { axis < 0 ? axis + rank : axis }

final class SplitOp: GraphOp {
    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let input = inShape(0, plan)
        let axis = physicalAxis(normalized(node.int("axis") ?? 0, input.count), rank: input.count)
        let dims = physicalShape(input)
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        let total = dims[axis] * inner
        var offset = 0
        var outs: [Tensor] = []
        for i in node.outputs.indices {
            let shape = physicalShape(outShape(i, plan))
            let block = shape[axis] * inner, start = offset
            outs.append(Tensor(shape: shape, layout: shape.count == 4 ? .nhwc : .plain) { o in
                x[0].scalars.withUnsafeBufferPointer { s in
                    for b in 0..<outer { (o.baseAddress! + b * block).update(from: s.baseAddress! + b * total + start, count: block) }
                }
            })
            offset += block
        }
        return outs
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let input = inShape(0, plan)
        let axis = physicalAxis(normalized(node.int("axis") ?? 0, input.count), rank: input.count)
        let dims = physicalShape(input)
        let outer = dims[..<axis].reduce(1, *), inner = dims[(axis + 1)...].reduce(1, *)
        let total = dims[axis] * inner
        var dx = Tensor(shape: dims, repeating: 0, layout: dims.count == 4 ? .nhwc : .plain)
        var offset = 0
        dx.scalars.withUnsafeMutableBufferPointer { o in
            for i in node.outputs.indices {
                let block = physicalShape(outShape(i, plan))[axis] * inner
                if i < dy.count, let g = dy[i] {
                    g.scalars.withUnsafeBufferPointer { s in
                        for b in 0..<outer { (o.baseAddress! + b * total + offset).update(from: s.baseAddress! + b * block, count: block) }
                    }
                }
                offset += block
            }
        }
        return [dx] + [Tensor?](repeating: nil, count: node.inputs.count - 1)
    }
}

/// Slice (any steps) and constant Pad: a strided window of the input (Slice) or the input placed in a larger
/// constant-filled tensor (Pad).
final class WindowOp: GraphOp {
    enum Kind { case slice, pad(value: Float) }
    let kind: Kind
    let opset: Int
    init(node: Node, kind: Kind, opset: Int) {
        self.kind = kind
        self.opset = opset
        super.init(node: node)
    }

    /// Per physical axis of the input: (start, step) of the output window (Slice), or the output offset (Pad).
    private func geometry(_ plan: BatchPlan) -> (dims: [Int], begin: [Int], step: [Int]) {
        let input = inShape(0, plan), r = input.count
        let perm = physicalPerm(r)
        let constantInputs = node.inputs.map { $0.isEmpty ? nil : plan.ints($0) }
        switch kind {
        case .slice:
            let axes = try! GraphFolding.sliceParameters(node, shape: input, constantInputs: constantInputs, opset: opset)
            return (perm.map { axes[$0].count }, perm.map { axes[$0].start }, perm.map { axes[$0].step })
        case .pad:
            let pads = try! GraphFolding.padAmounts(node, rank: r, constantInputs: constantInputs, opset: opset)
            return (physicalShape(input), perm.map { pads[$0] }, [Int](repeating: 1, count: r))
        }
    }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let (dims, begin, step) = geometry(plan)
        let inPhys = physicalShape(inShape(0, plan)), outPhys = physicalShape(outShape(0, plan))
        switch kind {
        case .slice:
            let s = rowMajorStrides(inPhys)
            let offset = zip(begin, s).map { $0 * $1 }.reduce(0, +)
            return [Tensor(shape: outPhys, layout: outPhys.count == 4 ? .nhwc : .plain) { o in
                x[0].scalars.withUnsafeBufferPointer { src in
                    stridedCopy(dims: dims, src: src.baseAddress! + offset, srcStrides: zip(step, s).map { $0 * $1 },
                                dst: o.baseAddress!, dstStrides: rowMajorStrides(outPhys))
                }
            }]
        case let .pad(value):
            let s = rowMajorStrides(outPhys)
            let offset = zip(begin, s).map { $0 * $1 }.reduce(0, +)
            var y = Tensor(shape: outPhys, repeating: value, layout: outPhys.count == 4 ? .nhwc : .plain)
            y.scalars.withUnsafeMutableBufferPointer { o in
                x[0].scalars.withUnsafeBufferPointer { src in
                    stridedCopy(dims: dims, src: src.baseAddress!, srcStrides: rowMajorStrides(inPhys), dst: o.baseAddress! + offset, dstStrides: s)
                }
            }
            return [y]
        }
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let g = grad(dy, 0, plan)
        let (dims, begin, step) = geometry(plan)
        let inPhys = physicalShape(inShape(0, plan)), outPhys = physicalShape(outShape(0, plan))
        var dx = Tensor(shape: inPhys, repeating: 0, layout: inPhys.count == 4 ? .nhwc : .plain)
        dx.scalars.withUnsafeMutableBufferPointer { d in
            g.scalars.withUnsafeBufferPointer { src in
                switch kind {
                case .slice:
                    let s = rowMajorStrides(inPhys)
                    let offset = zip(begin, s).map { $0 * $1 }.reduce(0, +)
                    stridedCopy(dims: dims, src: src.baseAddress!, srcStrides: rowMajorStrides(outPhys), dst: d.baseAddress! + offset,
                                dstStrides: zip(step, s).map { $0 * $1 }, accumulate: true)
                case .pad:
                    let s = rowMajorStrides(outPhys)
                    let offset = zip(begin, s).map { $0 * $1 }.reduce(0, +)
                    stridedCopy(dims: dims, src: src.baseAddress! + offset, srcStrides: s, dst: d.baseAddress!, dstStrides: rowMajorStrides(inPhys))
                }
            }
        }
        return [dx] + [Tensor?](repeating: nil, count: node.inputs.count - 1)
    }
}

/// Reshape, Flatten, Squeeze, Unsqueeze and Transpose: through the logical (row-major ONNX) order, which is free when
/// neither side is an image with several channels and pixels.
final class LayoutOp: GraphOp {
    let perm: [Int]?
    init(node: Node, perm: [Int]?) {
        self.perm = perm
        super.init(node: node)
    }

    private func transposeLogical(_ t: Tensor, shape: [Int], perm: [Int]) -> Tensor {
        let s = rowMajorStrides(shape)
        let outShape = perm.map { shape[$0] }
        return permutedCopy(t, dims: outShape, srcStrides: perm.map { s[$0] }, dstStrides: rowMajorStrides(outShape), outShape: outShape)
    }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let input = inShape(0, plan), out = outShape(0, plan)
        var logical = toLogical(x[0], input)
        if let perm { logical = transposeLogical(logical, shape: input, perm: perm) }
        return [fromLogical(logical.reshaped(to: out, layout: .plain), out)]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let input = inShape(0, plan), out = outShape(0, plan)
        var logical = toLogical(grad(dy, 0, plan), out)
        if let perm {
            var inverse = [Int](repeating: 0, count: perm.count)
            for (i, p) in perm.enumerated() { inverse[p] = i }
            logical = transposeLogical(logical, shape: out, perm: inverse)
        }
        return [fromLogical(logical.reshaped(to: input, layout: .plain), input)] + [Tensor?](repeating: nil, count: node.inputs.count - 1)
    }
}

/// MaxPool and AveragePool over NHWC with rectangular kernels, strides, asymmetric pads, ceil_mode and
/// count_include_pad (PyTorch's divisor: a ceil-mode window is clipped at the end padding before counting).
final class PoolOp: GraphOp {
    let isMax: Bool
    let kernel: [Int], strides: [Int], countIncludePad: Bool
    private var savedArgmax: [Int32] = []
    init(node: Node, isMax: Bool) {
        self.isMax = isMax
        kernel = node.ints("kernel_shape") ?? [1, 1]
        strides = node.ints("strides") ?? [1, 1]
        countIncludePad = (node.int("count_include_pad") ?? 0) != 0
        super.init(node: node)
    }

    struct Window { var start: Int, end: Int, divisor: Int }

    private func windows(_ plan: BatchPlan) -> (rows: [Window], cols: [Window]) {
        let input = inShape(0, plan), out = outShape(0, plan)
        let pads = GraphFolding.windowPads(node, input: [input[2], input[3]], kernel: kernel)
        func axis(_ length: Int, _ outLength: Int, _ k: Int, _ s: Int, _ begin: Int, _ end: Int) -> [Window] {
            (0..<outLength).map { o in
                let rawStart = o * s - begin
                let paddedEnd = min(rawStart + k, length + end)
                let a = max(rawStart, 0), b = min(paddedEnd, length)
                return Window(start: a, end: max(a, b), divisor: countIncludePad ? paddedEnd - rawStart : max(1, b - a))
            }
        }
        return (axis(input[2], out[2], kernel[0], strides[0], pads[0], pads[2]),
                axis(input[3], out[3], kernel[1], strides[1], pads[1], pads[3]))
    }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let (rows, cols) = windows(plan)
        let input = x[0]
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let (oh, ow) = (rows.count, cols.count)
        let training = isTraining && isMax
        var argmax = [Int32](repeating: -1, count: training ? n * oh * ow * c : 0)
        let isMax = self.isMax
        let y = Tensor(shape: [n, oh, ow, c], layout: .nhwc) { out in
            input.scalars.withUnsafeBufferPointer { xs in
                argmax.withUnsafeMutableBufferPointer { idx in
                    WorkerPool.shared.parallelRanges(n * oh, minimumChunk: max(1, 8192 / max(1, ow * c))) { range in
                        for row in range {
                            let b = row / oh, rw = rows[row % oh]
                            for (j, cw) in cols.enumerated() {
                                let offset = (row * ow + j) * c
                                let o = out.baseAddress! + offset
                                if isMax {
                                    for k in 0..<c { o[k] = -.infinity }
                                    for ih in rw.start..<rw.end {
                                        for iw in cw.start..<cw.end {
                                            let s = xs.baseAddress! + ((b * h + ih) * w + iw) * c
                                            for k in 0..<c { o[k] = (s[k] > o[k] || s[k].isNaN) ? s[k] : o[k] }
                                        }
                                    }
                                    guard training else { continue }
                                    let ix = idx.baseAddress! + offset
                                    for ih in rw.start..<rw.end {
                                        for iw in cw.start..<cw.end {
                                            let spatial = Int32(ih * w + iw)
                                            let s = xs.baseAddress! + ((b * h + ih) * w + iw) * c
                                            for k in 0..<c where ix[k] < 0 && (s[k] == o[k] || s[k].isNaN) { ix[k] = spatial }
                                        }
                                    }
                                } else {
                                    for k in 0..<c { o[k] = 0 }
                                    for ih in rw.start..<rw.end {
                                        for iw in cw.start..<cw.end {
                                            let s = xs.baseAddress! + ((b * h + ih) * w + iw) * c
                                            for k in 0..<c { o[k] += s[k] }
                                        }
                                    }
                                    let scale = 1 / Float(rw.divisor * cw.divisor)
                                    for k in 0..<c { o[k] *= scale }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training { savedArgmax = argmax }
        return [y]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let g = grad(dy, 0, plan)
        let (rows, cols) = windows(plan)
        let inPhys = physicalShape(inShape(0, plan))
        let (n, h, w, c) = (inPhys[0], inPhys[1], inPhys[2], inPhys[3])
        let (oh, ow) = (rows.count, cols.count)
        precondition(!isMax || savedArgmax.count == g.count, "MaxPool.backward without a training-mode forward")
        let isMax = self.isMax
        let dx = Tensor(shape: inPhys, layout: .nhwc) { d in
            d.update(repeating: 0)
            g.scalars.withUnsafeBufferPointer { gs in
                savedArgmax.withUnsafeBufferPointer { idx in
                    WorkerPool.shared.parallelRanges(n) { batch in
                        for b in batch {
                            let image = d.baseAddress! + b * h * w * c
                            for i in 0..<oh {
                                for j in 0..<ow {
                                    let offset = ((b * oh + i) * ow + j) * c
                                    if isMax {
                                        for k in 0..<c where idx[offset + k] >= 0 { image[Int(idx[offset + k]) * c + k] += gs[offset + k] }
                                    } else {
                                        let rw = rows[i], cw = cols[j]
                                        let scale = 1 / Float(rw.divisor * cw.divisor)
                                        for ih in rw.start..<rw.end {
                                            for iw in cw.start..<cw.end {
                                                let p = image + (ih * w + iw) * c
                                                for k in 0..<c { p[k] += gs[offset + k] * scale }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return [dx]
    }
}

/// GlobalAveragePool and ReduceMean: a mean over some axes (physical), then the layout of the output shape.
final class MeanOp: GraphOp {
    let axes: [Int]
    let keepDims: Bool
    /// `axes` in logical order (normalized).
    init(node: Node, axes: [Int], keepDims: Bool) {
        self.axes = axes
        self.keepDims = keepDims
        super.init(node: node)
    }

    private func kept(_ input: [Int]) -> [Int] { input.indices.map { axes.contains($0) ? 1 : input[$0] } }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let input = inShape(0, plan), out = outShape(0, plan)
        let keep = kept(input)
        let count = axes.reduce(1) { $0 * input[$1] }
        var y: Tensor
        if input.count == 4 && Set(axes) == [2, 3] {
            // NHWC global average pooling: [N, H, W, C] → [N, 1, 1, C].
            y = Tensor(shape: physicalShape(keep), layout: .nhwc) { o in
                x[0].scalars.withUnsafeBufferPointer { s in
                    PoolKernels.globalAveragePool(input: s.baseAddress!, output: o.baseAddress!, batch: input[0],
                                                  height: input[2], width: input[3], channels: input[1])
                }
            }
        } else {
            let dims = physicalShape(input), strides = broadcastPhysicalStrides(keep, rank: input.count)
            y = reduceBroadcast(x[0], dims: dims, strides: strides, count: keep.reduce(1, *), shape: physicalShape(keep))
            let scale = 1 / Float(max(1, count))
            y.scalars = y.scalars.map { $0 * scale }
        }
        if keep == out { return [y] }
        return [fromLogical(toLogical(y, keep).reshaped(to: out, layout: .plain), out)]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        let input = inShape(0, plan), out = outShape(0, plan)
        let keep = kept(input)
        var g = grad(dy, 0, plan)
        if keep != out { g = fromLogical(toLogical(g, out).reshaped(to: keep, layout: .plain), keep) }
        let count = axes.reduce(1) { $0 * input[$1] }
        let scale = 1 / Float(max(1, count))
        let dims = physicalShape(input), strides = broadcastPhysicalStrides(keep, rank: input.count)
        let gs = g
        let dx = Tensor(shape: dims, layout: dims.count == 4 ? .nhwc : .plain) { o in
            gs.scalars.withUnsafeBufferPointer { s in
                broadcastRows(dims, strides, strides) { oo, go, _, n, sg, _ in
                    for i in 0..<n { o[oo + i] = s[go + i * sg] * scale }
                }
            }
        }
        return [dx] + [Tensor?](repeating: nil, count: node.inputs.count - 1)
    }
}

/// Gemm (`Y = α·op(A)·op(B) + β·C`) and MatMul (`[…, M, K] × [K, N]`, as Gemm over the flattened rows). Constant B and
/// C are trainable parameters (the graph's weight and bias).
final class GemmOp: GraphOp {
    let transA: Bool, transB: Bool, alpha: Float, beta: Float
    let isMatMul: Bool
    /// Parameters standing for constant inputs 1 (B) and 2 (C).
    let weight: Parameter?, bias: Parameter?
    private var savedA: Tensor?, savedB: Tensor?
    init(node: Node, weight: Parameter?, bias: Parameter?) {
        isMatMul = node.opType == "MatMul"
        transA = (node.int("transA") ?? 0) != 0
        transB = (node.int("transB") ?? 0) != 0
        alpha = isMatMul ? 1 : node.float("alpha") ?? 1
        beta = isMatMul ? 0 : node.float("beta") ?? 1
        self.weight = weight
        self.bias = bias
        super.init(node: node)
    }

    private var hasC: Bool { !isMatMul && node.inputs.count > 2 && !node.inputs[2].isEmpty }

    /// (M, K, N) and A as rows (plain).
    private func sizes(_ plan: BatchPlan) -> (m: Int, k: Int, n: Int) {
        let a = inShape(0, plan), b = inShape(1, plan)
        if isMatMul { return (a.dropLast().reduce(1, *), a[a.count - 1], b[1]) }
        return (transA ? a[1] : a[0], transA ? a[0] : a[1], transB ? b[0] : b[1])
    }

    override func multiplyAdds(_ plan: BatchPlan) -> Int { let s = sizes(plan); return s.m * s.k * s.n }

    override func forward(_ x: [Tensor], _ plan: BatchPlan) -> [Tensor] {
        let (m, k, n) = sizes(plan)
        let aShape = inShape(0, plan)
        let a = isMatMul && aShape.count == 4 ? toLogical(x[0], aShape) : x[0]
        let b = weight?.value ?? x[1]
        if isTraining { savedA = a; savedB = b }
        let out = outShape(0, plan)
        var y = Tensor(shape: [m, n], layout: .plain) { o in
            a.scalars.withUnsafeBufferPointer { pa in
                b.scalars.withUnsafeBufferPointer { pb in
                    Kernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: pa.baseAddress!,
                                 lda: transA ? m : k, b: pb.baseAddress!, ldb: transB ? k : n, beta: 0, c: o.baseAddress!, ldc: n)
                }
            }
        }
        if hasC && beta != 0 {
            let c = bias?.value ?? x[2]
            let cShape = inShape(2, plan)
            let cs = broadcastPhysicalStrides(cShape, rank: 2)
            let cp = physicalOperand(c, shape: cShape, rank: 2)
            let beta = self.beta
            y.scalars.withUnsafeMutableBufferPointer { o in
                cp.scalars.withUnsafeBufferPointer { pc in
                    broadcastRows([m, n], [n, 1], cs) { oo, _, co, cnt, _, ic in
                        for i in 0..<cnt { o[oo + i] += beta * pc[co + i * ic] }
                    }
                }
            }
        }
        if isMatMul && out.count != 2 { return [fromLogical(y.reshaped(to: out, layout: .plain), out)] }
        return [y]
    }

    override func backward(_ dy: [Tensor?], _ plan: BatchPlan) -> [Tensor?] {
        guard let a = savedA, let b = savedB else { preconditionFailure("\(node.opType).backward without a training-mode forward") }
        let (m, k, n) = sizes(plan)
        let out = outShape(0, plan)
        var g = grad(dy, 0, plan)
        if isMatMul && out.count == 4 { g = toLogical(g, out) }
        var result = [Tensor?](repeating: nil, count: node.inputs.count)
        let (transA, transB, alpha) = (self.transA, self.transB, self.alpha)
        if needsGradient[0] {
            let aShape = inShape(0, plan)
            var da = Tensor(shape: transA ? [k, m] : [m, k], layout: .plain) { d in
                g.scalars.withUnsafeBufferPointer { pg in
                    b.scalars.withUnsafeBufferPointer { pb in
                        if !transA {
                            Kernels.gemm(transA: false, transB: !transB, m: m, n: k, k: n, alpha: alpha, a: pg.baseAddress!, lda: n,
                                         b: pb.baseAddress!, ldb: transB ? k : n, beta: 0, c: d.baseAddress!, ldc: k)
                        } else {
                            Kernels.gemm(transA: transB, transB: true, m: k, n: m, k: n, alpha: alpha, a: pb.baseAddress!,
                                         lda: transB ? k : n, b: pg.baseAddress!, ldb: n, beta: 0, c: d.baseAddress!, ldc: m)
                        }
                    }
                }
            }
            if isMatMul { da = aShape.count == 4 ? fromLogical(da.reshaped(to: aShape, layout: .plain), aShape) : da.reshaped(to: aShape, layout: .plain) }
            result[0] = da
        }
        if needsGradient[1] || weight != nil {
            let db = Tensor(shape: transB ? [n, k] : [k, n], layout: .plain) { d in
                g.scalars.withUnsafeBufferPointer { pg in
                    a.scalars.withUnsafeBufferPointer { pa in
                        if !transB {
                            Kernels.gemm(transA: !transA, transB: false, m: k, n: n, k: m, alpha: alpha, a: pa.baseAddress!,
                                         lda: transA ? m : k, b: pg.baseAddress!, ldb: n, beta: 0, c: d.baseAddress!, ldc: n)
                        } else {
                            Kernels.gemm(transA: true, transB: transA, m: n, n: k, k: m, alpha: alpha, a: pg.baseAddress!, lda: n,
                                         b: pa.baseAddress!, ldb: transA ? m : k, beta: 0, c: d.baseAddress!, ldc: k)
                        }
                    }
                }
            }
            if let weight { weight.accumulateGradient(db) } else { result[1] = db }
        }
        if hasC && (needsGradient[2] || bias != nil) {
            let cShape = inShape(2, plan)
            let cs = broadcastPhysicalStrides(cShape, rank: 2)
            let padded = physicalShape([Int](repeating: 1, count: 2 - cShape.count) + cShape)
            var dc = reduceBroadcast(g, dims: [m, n], strides: cs, count: padded.reduce(1, *), shape: padded)
            if beta != 1 { dc.scalars = dc.scalars.map { $0 * beta } }
            dc = ownOperand(dc, shape: cShape, rank: 2)
            if let bias { bias.accumulateGradient(dc) } else { result[2] = dc }
        }
        return result
    }
}
