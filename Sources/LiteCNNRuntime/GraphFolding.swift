import LiteCNNGraph
import LiteCNNTensor

/// A graph whose shape arithmetic has been evaluated for one input shape, with every value's shape.
public struct FoldedGraph: Sendable {
    /// The remaining nodes (in topological order) over the initializers they read. `Constant` nodes and every node
    /// computable from constants and the input's shape (`Shape`, `Gather`, `Unsqueeze`, `Concat`, … of the exporter's
    /// Reshape targets) are gone; their outputs are initializers (int64 arrays or float tensors, ONNX layout).
    /// Inputs: the single real (non-initializer) input. Unreferenced initializers are dropped.
    public var graph: Graph
    /// The logical (ONNX, NCHW for images) shape of every value: the input, node outputs and constants.
    public var shapes: [String: [Int]]
}

/// Constant folding and shape inference of a graph for one input shape.
public enum GraphFolding {
    /// Evaluates every node computable from constants and the input's shape `inputShape` (logical ONNX order, e.g.
    /// `[N, C, H, W]`) and infers the shape of every remaining value.
    ///
    /// Throws `GraphError` naming the node, operator and opset when an operator is unknown to the shape inference,
    /// its operands are invalid, the graph has a cycle, or a value is used but never produced.
    public static func fold(_ graph: Graph, inputShape: [Int]) throws -> FoldedGraph {
        let opset = graph.opsetVersion
        var constants: [String: ConstValue] = [:]
        for (name, c) in graph.initializers { constants[name] = ConstValue(c) }
        let realInputs = graph.inputs.filter { constants[$0.name] == nil }
        guard realInputs.count == 1, let input = realInputs.first else {
            throw GraphError("folding needs exactly one non-constant graph input, found \(realInputs.map(\.name))", opset: opset)
        }
        if let dims = input.shape {
            guard dims.count == inputShape.count else {
                throw GraphError("input '\(input.name)' has rank \(dims.count), the folding shape \(inputShape) does not", opset: opset)
            }
            for (i, (d, s)) in zip(dims, inputShape).enumerated() where i > 0 {
                if let v = d.value, v > 0, v != s {
                    throw GraphError("input '\(input.name)' expects shape \(dims), got \(inputShape)", opset: opset)
                }
            }
        }
        var rest: [Node] = []
        for node in graph.nodes {
            let isSelect = node.domain == alternativesDomain && node.opType == "Select"
            guard node.domain.isEmpty || node.domain == "ai.onnx" || isSelect else {
                throw GraphError("domain '\(node.domain)' is not supported", at: node, opset: opset)
            }
            if node.opType == "Constant" {
                guard let out = node.outputs.first else { throw GraphError("no output", at: node, opset: opset) }
                constants[out] = try GraphCompiler.constantValue(node, opset: opset)
            } else { rest.append(node) }
        }
        let ordered = try topologicalOrder(rest, available: Set(constants.keys).union([input.name]), opset: opset)
        var shapes: [String: [Int]] = [input.name: inputShape]
        for (k, v) in constants { shapes[k] = v.shape }
        var kept: [Node] = []
        for node in ordered {
            let ins = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
            let inShapes = node.inputs.map { $0.isEmpty ? nil : shapes[$0] }
            let present = node.inputs.filter { !$0.isEmpty }
            let foldable = node.opType == "Shape" || node.opType == "Size"
                || (!present.isEmpty && present.allSatisfy { constants[$0] != nil })
            if foldable, let outs = try foldConstant(node, inputs: ins, inputShapes: inShapes, opset: opset) {
                for (o, v) in zip(node.outputs, outs) where !o.isEmpty {
                    constants[o] = v
                    shapes[o] = v.shape
                }
                continue
            }
            let outShapes = try inferShapes(node, inputShapes: inShapes, constants: constants, opset: opset)
            for (o, s) in zip(node.outputs, outShapes) where !o.isEmpty { shapes[o] = s }
            kept.append(node)
        }
        for o in graph.outputs where shapes[o.name] == nil {
            throw GraphError("graph output '\(o.name)' is not produced by any node", opset: opset)
        }
        var folded = graph
        folded.nodes = kept
        let read = Set(kept.flatMap(\.inputs)).union(graph.outputs.map(\.name))
        folded.initializers = [:]
        for name in read where constants[name] != nil {
            folded.initializers[name] = graph.initializers[name] ?? constants[name]!.constant
        }
        folded.inputs = [input]
        return FoldedGraph(graph: folded, shapes: shapes)
    }

    /// `nodes` in an order where every input is produced first. Throws on a cycle or an input nothing produces.
    public static func topologicalOrder(_ nodes: [Node], available initial: Set<String>, opset: Int) throws -> [Node] {
        var produced = initial
        for node in nodes {
            for o in node.outputs where !o.isEmpty {
                if produced.contains(o) { throw GraphError("value '\(o)' is produced twice", at: node, opset: opset) }
                produced.insert(o)
            }
        }
        for node in nodes {
            for i in node.inputs where !i.isEmpty && !produced.contains(i) {
                throw GraphError("input '\(i)' is not produced by any node, initializer or graph input", at: node, opset: opset)
            }
        }
        var available = initial
        var ordered: [Node] = []
        var pending = nodes
        while !pending.isEmpty {
            var next: [Node] = []
            for node in pending {
                if node.inputs.allSatisfy({ $0.isEmpty || available.contains($0) }) {
                    ordered.append(node)
                    for o in node.outputs where !o.isEmpty { available.insert(o) }
                } else { next.append(node) }
            }
            if next.count == pending.count {
                throw GraphError("the graph has a cycle through node '\(next[0].name)'", node: next[0].name,
                                 opType: next[0].opType, opset: opset)
            }
            pending = next
        }
        return ordered
    }

    /// Integer values of a constant input (`nil` when absent or not constant).
    static func ints(_ node: Node, _ i: Int, _ constants: [String: ConstValue]) -> [Int]? {
        guard i < node.inputs.count, !node.inputs[i].isEmpty, let c = constants[node.inputs[i]] else { return nil }
        return c.ints
    }

    /// Output shapes of a node that is not folded, from its input shapes (ONNX shape inference for the operators
    /// LiteCNN runs).
    static func inferShapes(_ node: Node, inputShapes: [[Int]?], constants: [String: ConstValue], opset: Int) throws -> [[Int]] {
        func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
        func shape(_ i: Int) throws -> [Int] {
            guard i < inputShapes.count, let s = inputShapes[i] else { throw err("input \(i) has no known shape") }
            return s
        }
        switch node.opType {
        case "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Identity", "Dropout", "Softmax", "Cast", "Tanh",
             "LeakyRelu", "Neg", "Exp", "Sqrt", "Abs", "Erf":
            return [try shape(0)]
        case "Select" where node.domain == alternativesDomain:
            // A switchable graph's choice among alternatives of one shape (`InferenceEngine.select`).
            let x = try shape(0)
            for i in node.inputs.indices where try shape(i) != x {
                throw err("alternative \(i) has shape \(try shape(i)), alternative 0 \(x)")
            }
            return [x]
        case "BatchNormalization":
            let x = try shape(0)
            guard x.count >= 2 else { throw err("input of shape \(x) has no channel axis") }
            return [x]
        case "Add", "Sub", "Mul", "Div", "Pow":
            let a = try shape(0), b = try shape(1)
            guard let s = broadcastShapes(a, b) else { throw err("shapes \(a) and \(b) do not broadcast") }
            return [s]
        case "Conv":
            let x = try shape(0), w = try shape(1)
            guard x.count == 4, w.count == 4 else { throw err("only 2-D convolutions are supported (input \(x), weight \(w))") }
            let groups = node.int("group") ?? 1
            guard groups >= 1, w[1] * groups == x[1], w[0] % groups == 0 else {
                throw err("weight \(w) with group \(groups) does not fit input \(x)")
            }
            let strides = node.ints("strides") ?? [1, 1], dil = node.ints("dilations") ?? [1, 1]
            let p = samePads(autoPad: node.string("auto_pad") ?? "NOTSET", explicit: node.ints("pads") ?? [0, 0, 0, 0],
                             input: [x[2], x[3]], kernel: [w[2], w[3]], strides: strides, dilations: dil)
            let oh = PoolKernels.outputSize(input: x[2], kernel: w[2], stride: strides[0], dilation: dil[0], padBegin: p[0],
                                            padEnd: p[2], ceilMode: false)
            let ow = PoolKernels.outputSize(input: x[3], kernel: w[3], stride: strides[1], dilation: dil[1], padBegin: p[1],
                                            padEnd: p[3], ceilMode: false)
            guard oh > 0, ow > 0 else { throw err("input \(x) is too small for kernel \(w)") }
            return [[x[0], w[0], oh, ow]]
        case "MaxPool", "AveragePool":
            let x = try shape(0)
            guard x.count == 4, let k = node.ints("kernel_shape"), k.count == 2 else { throw err("needs a 4-D input and a 2-D kernel_shape") }
            let strides = node.ints("strides") ?? [1, 1], dil = node.ints("dilations") ?? [1, 1]
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
                return [[x[0], x[1], (x[2] + strides[0] - 1) / strides[0], (x[3] + strides[1] - 1) / strides[1]]]
            }
            let p = samePads(autoPad: autoPad, explicit: node.ints("pads") ?? [0, 0, 0, 0], input: [x[2], x[3]], kernel: k,
                             strides: strides, dilations: dil)
            let ceil = (node.int("ceil_mode") ?? 0) != 0
            let oh = PoolKernels.outputSize(input: x[2], kernel: k[0], stride: strides[0], dilation: dil[0], padBegin: p[0], padEnd: p[2], ceilMode: ceil)
            let ow = PoolKernels.outputSize(input: x[3], kernel: k[1], stride: strides[1], dilation: dil[1], padBegin: p[1], padEnd: p[3], ceilMode: ceil)
            guard oh > 0, ow > 0 else { throw err("input \(x) is too small for kernel \(k)") }
            return [[x[0], x[1], oh, ow]]
        case "GlobalAveragePool", "GlobalMaxPool":
            let x = try shape(0)
            guard x.count >= 3 else { throw err("needs an input with spatial axes, got \(x)") }
            return [Array(x[..<2]) + [Int](repeating: 1, count: x.count - 2)]
        case "ReduceMean", "ReduceSum", "ReduceMax":
            let x = try shape(0)
            let axesIn = (opset >= 18 || node.opType == "ReduceSum" && opset >= 13) ? ints(node, 1, constants) : node.ints("axes")
            let keep = (node.int("keepdims") ?? 1) != 0
            let axes = try (axesIn ?? Array(0..<x.count)).map { a -> Int in
                guard let n = normalizeAxis(a, rank: x.count) else { throw err("axis \(a) out of range for \(x)") }
                return n
            }
            var out: [Int] = []
            for (i, d) in x.enumerated() { if axes.contains(i) { if keep { out.append(1) } } else { out.append(d) } }
            return [out]
        case "Gemm":
            let a = try shape(0), b = try shape(1)
            guard a.count == 2, b.count == 2 else { throw err("needs 2-D operands, got \(a) and \(b)") }
            let ta = (node.int("transA") ?? 0) != 0, tb = (node.int("transB") ?? 0) != 0
            let (m, k) = ta ? (a[1], a[0]) : (a[0], a[1])
            let (k2, n) = tb ? (b[1], b[0]) : (b[0], b[1])
            guard k == k2 else { throw err("inner dimensions differ: \(a) and \(b) (transA \(ta), transB \(tb))") }
            return [[m, n]]
        case "MatMul":
            let a = try shape(0), b = try shape(1)
            guard a.count >= 2, b.count == 2, a[a.count - 1] == b[0] else { throw err("cannot multiply \(a) by \(b)") }
            return [Array(a.dropLast()) + [b[1]]]
        case "Concat":
            let parts = try node.inputs.indices.filter { !node.inputs[$0].isEmpty }.map { try shape($0) }
            guard let first = parts.first, let axis = normalizeAxis(node.int("axis") ?? 0, rank: first.count) else {
                throw err("bad axis")
            }
            var out = first
            out[axis] = 0
            for p in parts {
                guard p.count == first.count, (0..<p.count).allSatisfy({ $0 == axis || p[$0] == first[$0] }) else {
                    throw err("inputs \(parts) do not concatenate on axis \(axis)")
                }
                out[axis] += p[axis]
            }
            return [out]
        case "Split":
            let x = try shape(0)
            guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: x.count) else { throw err("axis out of range") }
            let sizes = try splitSizes(node, dim: x[axis], constants: constants, opset: opset)
            return sizes.map { var s = x; s[axis] = $0; return s }
        case "Slice":
            let x = try shape(0)
            let r = try sliceParameters(node, shape: x, constants: constants, opset: opset)
            return [r.map(\.count)]
        case "Reshape":
            let x = try shape(0)
            guard let target = ints(node, 1, constants) else { throw err("the target shape is not a constant") }
            guard let dims = resolveReshape(x, target: target, allowZero: (node.int("allowzero") ?? 0) != 0) else {
                throw err("cannot reshape \(x) to \(target)")
            }
            return [dims]
        case "Flatten":
            let x = try shape(0)
            guard let axis = normalizeAxis(node.int("axis") ?? 1, rank: x.count + 1) else { throw err("axis out of range") }
            return [[x[..<axis].reduce(1, *), x[axis...].reduce(1, *)]]
        case "Transpose":
            let x = try shape(0)
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.sorted() == Array(0..<x.count) else { throw err("bad perm \(perm) for rank \(x.count)") }
            return [perm.map { x[$0] }]
        case "Squeeze", "Unsqueeze":
            let x = try shape(0)
            let axesIn = opset >= 13 ? ints(node, 1, constants) : node.ints("axes")
            if node.opType == "Unsqueeze" {
                guard let axesIn else { throw err("missing axes") }
                let r = x.count + axesIn.count
                let axes = try axesIn.map { a -> Int in guard let n = normalizeAxis(a, rank: r) else { throw err("axis \(a) out of range") }; return n }
                var out: [Int] = [], src = 0
                for i in 0..<r { if axes.contains(i) { out.append(1) } else { out.append(x[src]); src += 1 } }
                return [out]
            }
            let axes = try (axesIn ?? x.indices.filter { x[$0] == 1 }).map { a -> Int in
                guard let n = normalizeAxis(a, rank: x.count), x[n] == 1 else { throw err("cannot squeeze axis \(a) of \(x)") }
                return n
            }
            return [x.enumerated().filter { !axes.contains($0.offset) }.map(\.element)]
        case "Pad":
            let x = try shape(0)
            let pads = try padAmounts(node, rank: x.count, constants: constants, opset: opset)
            let out = (0..<x.count).map { x[$0] + pads[$0] + pads[$0 + x.count] }
            guard out.allSatisfy({ $0 >= 0 }) else { throw err("pads \(pads) crop \(x) below zero") }
            return [out]
        case "Gather":
            let x = try shape(0), ind = try shape(1)
            guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: x.count) else { throw err("axis out of range") }
            return [Array(x[..<axis]) + ind + Array(x[(axis + 1)...])]
        default:
            throw err("operator is not supported (no shape inference for it)")
        }
    }

    /// Split sizes along an axis of length `dim`: the `split` input (opset 13+) or attribute, `num_outputs` (opset 18),
    /// or equal parts over the node's outputs.
    public static func splitSizes(_ node: Node, dim: Int, constantInts: [Int]?, opset: Int) throws -> [Int] {
        func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
        let explicit = opset >= 13 ? constantInts : node.ints("split")
        if let explicit {
            guard explicit.count == node.outputs.count, explicit.allSatisfy({ $0 >= 0 }), explicit.reduce(0, +) == dim else {
                throw err("split \(explicit) does not divide \(dim) into \(node.outputs.count) parts")
            }
            return explicit
        }
        let parts = node.int("num_outputs") ?? node.outputs.count
        guard parts >= 1 else { throw err("no outputs") }
        let size = (dim + parts - 1) / parts
        var sizes = [Int](repeating: size, count: parts)
        sizes[parts - 1] = dim - size * (parts - 1)
        guard sizes[parts - 1] >= 0 else { throw err("cannot split \(dim) into \(parts) parts") }
        return sizes
    }

    static func splitSizes(_ node: Node, dim: Int, constants: [String: ConstValue], opset: Int) throws -> [Int] {
        try splitSizes(node, dim: dim, constantInts: ints(node, 1, constants), opset: opset)
    }

    /// One axis of a Slice: first index, step and count.
    public struct SliceAxis: Sendable, Equatable {
        public var start: Int, step: Int, count: Int
    }

    /// The per-axis ranges of a Slice over `shape` (starts/ends/axes/steps as inputs from opset 10, attributes before).
    public static func sliceParameters(_ node: Node, shape: [Int], constantInputs: [[Int]?], opset: Int) throws -> [SliceAxis] {
        func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
        func input(_ i: Int) -> [Int]? { i < constantInputs.count ? constantInputs[i] : nil }
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if opset >= 10 {
            guard let s = input(1), let e = input(2) else { throw err("starts and ends must be constants") }
            starts = s; ends = e; axes = input(3); steps = input(4)
            if node.inputs.count > 3, !node.inputs[3].isEmpty, axes == nil { throw err("axes must be a constant") }
            if node.inputs.count > 4, !node.inputs[4].isEmpty, steps == nil { throw err("steps must be a constant") }
        } else {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []; axes = node.ints("axes"); steps = nil
        }
        let ax = axes ?? Array(0..<starts.count)
        guard ax.count == starts.count, ends.count == starts.count, (steps?.count ?? starts.count) == starts.count else {
            throw err("starts/ends/axes/steps lengths differ")
        }
        var out = shape.map { SliceAxis(start: 0, step: 1, count: $0) }
        for i in 0..<ax.count {
            guard let a = normalizeAxis(ax[i], rank: shape.count) else { throw err("axis \(ax[i]) out of range") }
            let st = steps?[i] ?? 1
            guard st != 0 else { throw err("step 0") }
            let r = sliceRange(start: starts[i], end: ends[i], step: st, dim: shape[a])
            out[a] = SliceAxis(start: r.start, step: r.step, count: r.count)
        }
        return out
    }

    static func sliceParameters(_ node: Node, shape: [Int], constants: [String: ConstValue], opset: Int) throws -> [SliceAxis] {
        try sliceParameters(node, shape: shape, constantInputs: node.inputs.indices.map { ints(node, $0, constants) }, opset: opset)
    }

    /// Pad amounts `[begin_0, …, begin_{r−1}, end_0, …, end_{r−1}]` (the `pads` input from opset 11, with optional
    /// `axes` from opset 18; the attribute before).
    public static func padAmounts(_ node: Node, rank: Int, constantInputs: [[Int]?], opset: Int) throws -> [Int] {
        func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
        let given: [Int]?
        if opset >= 11 { given = constantInputs.count > 1 ? constantInputs[1] : nil } else { given = node.ints("pads") }
        guard let given else { throw err("pads must be a constant") }
        if opset >= 18, constantInputs.count > 3, let axes = constantInputs[3] {
            guard given.count == 2 * axes.count else { throw err("pads \(given) do not match axes \(axes)") }
            var full = [Int](repeating: 0, count: 2 * rank)
            for (i, a) in axes.enumerated() {
                guard let n = normalizeAxis(a, rank: rank) else { throw err("axis \(a) out of range") }
                full[n] = given[i]; full[n + rank] = given[i + axes.count]
            }
            return full
        }
        guard given.count == 2 * rank else { throw err("pads \(given) do not fit rank \(rank)") }
        return given
    }

    static func padAmounts(_ node: Node, rank: Int, constants: [String: ConstValue], opset: Int) throws -> [Int] {
        try padAmounts(node, rank: rank, constantInputs: node.inputs.indices.map { ints(node, $0, constants) }, opset: opset)
    }

    /// ONNX `auto_pad` resolution for 2-D windows: `[top, left, bottom, right]`.
    public static func windowPads(_ node: Node, input: [Int], kernel: [Int]) -> [Int] {
        samePads(autoPad: node.string("auto_pad") ?? "NOTSET", explicit: node.ints("pads") ?? [0, 0, 0, 0], input: input,
                 kernel: kernel, strides: node.ints("strides") ?? [1, 1], dilations: node.ints("dilations") ?? [1, 1])
    }

    /// Resolves an ONNX Reshape target against an input shape (0 copies unless `allowZero`, −1 inferred).
    public static func reshapeTarget(_ input: [Int], target: [Int], allowZero: Bool) -> [Int]? {
        resolveReshape(input, target: target, allowZero: allowZero)
    }

    /// Numpy broadcasting of two shapes; nil when incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? { broadcastShapes(a, b) }
}
