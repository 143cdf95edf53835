// Static shapes of a graph's values for one input size, and the multiply-add and parameter counts built on them.
import LiteCNNGraph
import LiteCNNTensor

/// The static shape of every value of a graph for an input of batch 1 and `imageShape` `[C, H, W]` (ONNX order, NCHW),
/// plus the values of the integer constants that shape arithmetic produces (`Shape`, `Gather`, `Concat` of ints, …).
/// A graph whose input is not an image (a fully connected unit's `[N, C]`) takes its input's shape without the batch
/// (`[C]`) as `imageShape`.
///
/// Knows the operators of LiteCNN's runtime that image classifiers use; any other operator throws a `GraphError`
/// naming the node.
public struct GraphShapes: Sendable {
    var shapes: [String: [Int]] = [:]
    /// Integer constants (initializers, `Constant` nodes and folded shape arithmetic), row-major.
    var ints: [String: [Int]] = [:]
    /// Float initializers and `Constant` float values.
    var floats: [String: Tensor] = [:]
    /// Where each value is produced (node index), absent for graph inputs and initializers.
    var producer: [String: Int] = [:]

    public init(_ graph: Graph, imageShape: [Int]) throws {
        let opset = graph.opsetVersion
        guard !imageShape.isEmpty, imageShape.allSatisfy({ $0 > 0 }) else {
            throw GraphError("the image shape must be [C, H, W] (or another input shape without the batch) with positive "
                             + "sizes, got \(imageShape)", opset: opset)
        }
        for (name, constant) in graph.initializers {
            switch constant {
            case let .float(t): floats[name] = t; shapes[name] = t.shape
            case let .int(v, shape): ints[name] = v; shapes[name] = shape
            }
        }
        let realInputs = graph.inputs.filter { graph.initializers[$0.name] == nil }
        guard realInputs.count == 1, let input = realInputs.first else {
            throw GraphError("structured pruning needs a graph with one image input, this one has \(realInputs.count)", opset: opset)
        }
        if let dims = input.shape {
            guard dims.count == imageShape.count + 1 else {
                throw GraphError("input '\(input.name)' has rank \(dims.count); an input of shape \(imageShape) has rank "
                                 + "\(imageShape.count + 1)" + (imageShape.count == 3 ? " (NCHW)" : ""), opset: opset)
            }
            for (d, s) in zip(dims.dropFirst(), imageShape) {
                if let v = d.value, v != s {
                    throw GraphError("input '\(input.name)' is \(dims) but the image shape is \(imageShape)", opset: opset)
                }
            }
        }
        shapes[input.name] = [1] + imageShape
        for (index, node) in graph.nodes.enumerated() {
            for input in node.inputs where !input.isEmpty && shapes[input] == nil {
                throw GraphError("input '\(input)' is not produced before this node (the graph must be in execution order)",
                                 at: node, opset: opset)
            }
            try infer(node, opset: opset)
            for output in node.outputs where !output.isEmpty { producer[output] = index }
        }
    }

    /// The shape of a value (ONNX order), nil for unknown or empty names.
    public func shape(_ name: String) -> [Int]? { name.isEmpty ? nil : shapes[name] }

    private mutating func set(_ name: String, _ shape: [Int], ints value: [Int]? = nil) {
        guard !name.isEmpty else { return }
        shapes[name] = shape
        if let value { ints[name] = value }
    }

    /// Broadcasts shapes numpy-style (aligned on the right).
    static func broadcast(_ shapes: [[Int]]) -> [Int]? {
        let rank = shapes.map(\.count).max() ?? 0
        var out = [Int](repeating: 1, count: rank)
        for s in shapes {
            let offset = rank - s.count
            for (i, d) in s.enumerated() {
                let j = i + offset
                if out[j] == 1 { out[j] = d } else if d != 1 && d != out[j] { return nil }
            }
        }
        return out
    }

    /// Output length of a convolution or pooling window along one axis.
    static func windowOutput(_ size: Int, kernel: Int, stride: Int, dilation: Int, padBegin: Int, padEnd: Int, ceil: Bool) -> Int {
        let effective = dilation * (kernel - 1) + 1
        let span = size + padBegin + padEnd - effective
        if span < 0 { return 0 }
        var out = (ceil ? (span + stride - 1) / stride : span / stride) + 1
        // ONNX/PyTorch: the last window must start inside the input or its left padding.
        if ceil && (out - 1) * stride >= size + padBegin { out -= 1 }
        return out
    }

    /// Resolved `[top, left, bottom, right]` pads (explicit `pads` or `auto_pad` SAME_*).
    static func pads(_ node: Node, spatial: [Int], kernel: [Int], strides: [Int], dilations: [Int]) -> [Int] {
        let autoPad = node.string("auto_pad") ?? "NOTSET"
        if autoPad == "SAME_UPPER" || autoPad == "SAME_LOWER" {
            var begin = [0, 0], end = [0, 0]
            for i in 0..<2 {
                let out = (spatial[i] + strides[i] - 1) / strides[i]
                let total = max(0, (out - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1 - spatial[i])
                let small = total / 2, large = total - small
                if autoPad == "SAME_UPPER" { begin[i] = small; end[i] = large } else { begin[i] = large; end[i] = small }
            }
            return [begin[0], begin[1], end[0], end[1]]
        }
        if autoPad == "VALID" { return [0, 0, 0, 0] }
        return node.ints("pads") ?? [0, 0, 0, 0]
    }

    /// The spatial output of a Conv or pooling node on a `[N, C, H, W]` input.
    static func windowed(_ node: Node, input: [Int], kernel: [Int], ceil: Bool, opset: Int) throws -> [Int] {
        guard input.count == 4, kernel.count == 2 else {
            throw GraphError("structured pruning handles 2-D windows on NCHW inputs only, got input \(input)", at: node, opset: opset)
        }
        let strides = node.ints("strides") ?? [1, 1]
        let dilations = node.ints("dilations") ?? [1, 1]
        let pads = pads(node, spatial: [input[2], input[3]], kernel: kernel, strides: strides, dilations: dilations)
        guard strides.count == 2, dilations.count == 2, pads.count == 4 else {
            throw GraphError("strides/dilations/pads of the wrong length", at: node, opset: opset)
        }
        return [windowOutput(input[2], kernel: kernel[0], stride: strides[0], dilation: dilations[0], padBegin: pads[0],
                             padEnd: pads[2], ceil: ceil),
                windowOutput(input[3], kernel: kernel[1], stride: strides[1], dilation: dilations[1], padBegin: pads[1],
                             padEnd: pads[3], ceil: ceil)]
    }

    static func normalize(_ axis: Int, rank: Int) -> Int? {
        let a = axis < 0 ? axis + rank : axis
        return (0..<max(rank, 1)).contains(a) ? a : nil
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private mutating func infer(_ node: Node, opset: Int) throws {
        func err(_ message: String) -> GraphError { GraphError(message, at: node, opset: opset) }
        func inShape(_ i: Int) throws -> [Int] {
            guard i < node.inputs.count, let s = shape(node.inputs[i]) else { throw err("input \(i) is missing") }
            return s
        }
        func constInts(_ i: Int) -> [Int]? { i < node.inputs.count && !node.inputs[i].isEmpty ? ints[node.inputs[i]] : nil }
        let out = node.outputs.first ?? ""
        switch node.opType {
        case "Conv":
            let x = try inShape(0), w = try inShape(1)
            guard x.count == 4, w.count == 4 else { throw err("structured pruning handles 2-D convolutions only") }
            let group = node.int("group") ?? 1
            guard group >= 1, x[1] == w[1] * group, w[0] % group == 0 else {
                throw err("weight \(w) with group \(group) does not fit input \(x)")
            }
            let spatial = try Self.windowed(node, input: x, kernel: node.ints("kernel_shape") ?? [w[2], w[3]], ceil: false, opset: opset)
            set(out, [x[0], w[0]] + spatial)
        case "MaxPool", "AveragePool", "LpPool":
            let x = try inShape(0)
            guard let kernel = node.ints("kernel_shape") else { throw err("kernel_shape is missing") }
            let spatial = try Self.windowed(node, input: x, kernel: kernel, ceil: (node.int("ceil_mode") ?? 0) != 0, opset: opset)
            set(out, [x[0], x[1]] + spatial)
            if node.outputs.count > 1 { throw err("MaxPool with an indices output is not supported") }
        case "GlobalAveragePool", "GlobalMaxPool":
            let x = try inShape(0)
            set(out, [x[0], x[1]] + [Int](repeating: 1, count: max(0, x.count - 2)))
        case "BatchNormalization", "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu",
             "Softplus", "Softsign", "Gelu", "Erf", "Identity", "Dropout", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal",
             "Softmax", "LogSoftmax", "Mish", "Celu", "ThresholdedRelu", "Floor", "Ceil", "Round", "Sign", "Relu6":
            let x = try inShape(0)
            set(out, x, ints: constInts(0))
            if node.opType == "Dropout" || node.opType == "BatchNormalization" {
                for extra in node.outputs.dropFirst() where !extra.isEmpty {
                    throw err("the training-mode output '\(extra)' is not supported")
                }
            }
        case "Cast":
            let x = try inShape(0)
            set(out, x, ints: constInts(0))
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu":
            let all = try node.inputs.indices.map { try inShape($0) }
            guard let s = Self.broadcast(all) else { throw err("operands \(all) do not broadcast") }
            var value: [Int]?
            if node.inputs.count == 2, let a = constInts(0), let b = constInts(1), a.count == b.count || a.count == 1 || b.count == 1 {
                let n = max(a.count, b.count)
                value = (0..<n).map { i -> Int in
                    let x = a[a.count == 1 ? 0 : i], y = b[b.count == 1 ? 0 : i]
                    switch node.opType {
                    case "Add": return x + y
                    case "Sub": return x - y
                    case "Mul": return x * y
                    case "Div": return y == 0 ? 0 : x / y
                    default: return x
                    }
                }
                if !["Add", "Sub", "Mul", "Div"].contains(node.opType) { value = nil }
            }
            set(out, s, ints: value)
        case "Concat":
            let all = try node.inputs.indices.map { try inShape($0) }
            guard let rank = all.first?.count, let axis = Self.normalize(node.int("axis") ?? 0, rank: rank) else {
                throw err("bad axis")
            }
            var s = all[0]
            s[axis] = all.reduce(0) { $0 + ($1.count == rank ? $1[axis] : 0) }
            let values = node.inputs.map { ints[$0] }
            set(out, s, ints: values.allSatisfy { $0 != nil } ? values.flatMap { $0! } : nil)
        case "Split":
            let x = try inShape(0)
            guard let axis = Self.normalize(node.int("axis") ?? 0, rank: x.count) else { throw err("bad axis") }
            let sizes = try Self.splitSizes(node, dimension: x[axis], ints: ints, opset: opset)
            for (output, size) in zip(node.outputs, sizes) {
                var s = x
                s[axis] = size
                set(output, s)
            }
        case "Slice":
            let x = try inShape(0)
            var s = x
            let starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
            if opset >= 10 {
                guard let st = constInts(1), let en = constInts(2) else { throw err("Slice bounds must be constants") }
                starts = st; ends = en; axes = constInts(3); steps = constInts(4)
            } else {
                guard let st = node.ints("starts"), let en = node.ints("ends") else { throw err("Slice bounds are missing") }
                starts = st; ends = en; axes = node.ints("axes"); steps = nil
            }
            let axisList = axes ?? Array(0..<starts.count)
            var value = constInts(0)
            for (k, a) in axisList.enumerated() {
                guard let axis = Self.normalize(a, rank: x.count), k < ends.count else { throw err("bad Slice axis \(a)") }
                let step = steps?[k] ?? 1
                guard step != 0 else { throw err("Slice step 0") }
                let dim = x[axis]
                func clamp(_ v: Int, _ low: Int, _ high: Int) -> Int { min(max(v, low), high) }
                var start = starts[k] < 0 ? starts[k] + dim : starts[k]
                var end = ends[k] < 0 ? ends[k] + dim : ends[k]
                if step > 0 {
                    start = clamp(start, 0, dim); end = clamp(end, 0, dim)
                    s[axis] = max(0, (end - start + step - 1) / step)
                } else {
                    start = clamp(start, 0, dim - 1); end = clamp(end, -1, dim - 1)
                    s[axis] = max(0, (start - end - step - 1) / (-step))
                }
                if x.count == 1, let v = value {
                    value = stride(from: start, to: end, by: step).map { v[$0] }
                } else {
                    value = nil
                }
            }
            set(out, s, ints: value)
        case "Flatten":
            let x = try inShape(0)
            guard let axis = Self.normalize(node.int("axis") ?? 1, rank: x.count + 1) else { throw err("bad axis") }
            set(out, [x.prefix(axis).reduce(1, *), x.dropFirst(axis).reduce(1, *)])
        case "Reshape":
            let x = try inShape(0)
            guard let target = constInts(1) else {
                throw err("the Reshape target is not a constant for this input size; fold the graph's shape arithmetic first")
            }
            let allowZero = (node.int("allowzero") ?? 0) != 0
            var s = [Int]()
            var unknown: Int?
            for (i, t) in target.enumerated() {
                if t == 0 && !allowZero {
                    guard i < x.count else { throw err("target \(target) copies a dimension the input \(x) does not have") }
                    s.append(x[i])
                } else if t == -1 {
                    guard unknown == nil else { throw err("target \(target) has two −1") }
                    unknown = i
                    s.append(1)
                } else {
                    s.append(t)
                }
            }
            let total = x.reduce(1, *), known = s.reduce(1, *)
            if let u = unknown {
                guard known > 0, total % known == 0 else { throw err("cannot reshape \(x) to \(target)") }
                s[u] = total / known
            }
            guard s.reduce(1, *) == total else { throw err("cannot reshape \(x) to \(target)") }
            set(out, s, ints: constInts(0))
        case "Transpose":
            let x = try inShape(0)
            let perm = node.ints("perm") ?? Array((0..<x.count).reversed())
            guard perm.count == x.count, Set(perm) == Set(0..<x.count) else { throw err("bad perm \(perm)") }
            set(out, perm.map { x[$0] })
        case "Squeeze", "Unsqueeze":
            let x = try inShape(0)
            let axes = opset >= 13 ? constInts(1) : node.ints("axes")
            var s: [Int]
            if node.opType == "Squeeze" {
                if let axes {
                    let normalized = Set(axes.compactMap { Self.normalize($0, rank: x.count) })
                    s = x.enumerated().filter { !normalized.contains($0.offset) }.map(\.element)
                } else {
                    s = x.filter { $0 != 1 }
                }
            } else {
                guard let axes else { throw err("Unsqueeze axes must be constant") }
                let rank = x.count + axes.count
                let normalized = Set(axes.compactMap { Self.normalize($0, rank: rank) })
                s = []
                var source = x.makeIterator()
                for i in 0..<rank { s.append(normalized.contains(i) ? 1 : (source.next() ?? 1)) }
            }
            set(out, s, ints: constInts(0))
        case "Shape":
            let x = try inShape(0)
            var start = node.int("start") ?? 0, end = node.int("end") ?? x.count
            if start < 0 { start += x.count }
            if end < 0 { end += x.count }
            start = min(max(start, 0), x.count); end = min(max(end, start), x.count)
            let value = Array(x[start..<end])
            set(out, [value.count], ints: value)
        case "Gather":
            let data = try inShape(0), indicesShape = try inShape(1)
            guard let axis = Self.normalize(node.int("axis") ?? 0, rank: data.count) else { throw err("bad axis") }
            let s = Array(data[..<axis]) + indicesShape + Array(data[(axis + 1)...])
            var value: [Int]?
            if data.count == 1, let d = constInts(0), let idx = constInts(1) {
                value = idx.compactMap { i in
                    let j = i < 0 ? i + d.count : i
                    return (0..<d.count).contains(j) ? d[j] : nil
                }
                if value?.count != idx.count { value = nil }
            }
            set(out, s, ints: value)
        case "Constant":
            guard case let .tensor(constant)? = node.attributes["value"] else {
                if let v = node.int("value_int") { set(out, [], ints: [v]); return }
                if let v = node.ints("value_ints") { set(out, [v.count], ints: v); return }
                if let v = node.float("value_float") { floats[out] = Tensor(v); set(out, []); return }
                throw err("Constant without a tensor value")
            }
            switch constant {
            case let .float(t): floats[out] = t; set(out, t.shape)
            case let .int(v, shape): set(out, shape, ints: v)
            }
        case "Gemm":
            let a = try inShape(0), b = try inShape(1)
            guard a.count == 2, b.count == 2 else { throw err("Gemm needs rank-2 operands, got \(a) and \(b)") }
            let m = (node.int("transA") ?? 0) != 0 ? a[1] : a[0]
            let n = (node.int("transB") ?? 0) != 0 ? b[0] : b[1]
            set(out, [m, n])
        case "MatMul":
            let a = try inShape(0), b = try inShape(1)
            guard a.count >= 2, b.count >= 2, a[a.count - 1] == b[b.count - 2] else { throw err("MatMul of \(a) and \(b)") }
            guard let batch = Self.broadcast([Array(a.dropLast(2)), Array(b.dropLast(2))]) else { throw err("MatMul of \(a) and \(b)") }
            set(out, batch + [a[a.count - 2], b[b.count - 1]])
        case "Pad":
            let x = try inShape(0)
            guard let pads = opset >= 11 ? constInts(1) : node.ints("pads"), pads.count == 2 * x.count else {
                throw err("Pad needs constant pads")
            }
            set(out, x.enumerated().map { $0.element + pads[$0.offset] + pads[$0.offset + x.count] })
        case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL2", "ReduceL1":
            let x = try inShape(0)
            let axes = (opset >= 18 || (node.opType == "ReduceSum" && opset >= 13)) ? constInts(1) : node.ints("axes")
            let keep = (node.int("keepdims") ?? 1) != 0
            let normalized = Set((axes ?? Array(0..<x.count)).compactMap { Self.normalize($0, rank: x.count) })
            var s: [Int] = []
            for (i, d) in x.enumerated() {
                if normalized.contains(i) { if keep { s.append(1) } } else { s.append(d) }
            }
            set(out, s)
        default:
            throw err("structured pruning does not know this operator")
        }
    }

    /// The sizes of a Split's outputs along a dimension of `dimension` (explicit sizes or an even split).
    static func splitSizes(_ node: Node, dimension: Int, ints: [String: [Int]], opset: Int) throws -> [Int] {
        var explicit: [Int]?
        if opset >= 13 {
            if node.inputs.count > 1, !node.inputs[1].isEmpty {
                guard let v = ints[node.inputs[1]] else {
                    throw GraphError("Split sizes must be a constant", at: node, opset: opset)
                }
                explicit = v
            }
        } else {
            explicit = node.ints("split")
        }
        if let explicit {
            guard explicit.count == node.outputs.count, explicit.reduce(0, +) == dimension, explicit.allSatisfy({ $0 >= 0 }) else {
                throw GraphError("Split sizes \(explicit) do not divide \(dimension) into \(node.outputs.count)", at: node, opset: opset)
            }
            return explicit
        }
        let parts = node.outputs.count
        let size = (dimension + parts - 1) / parts
        return (0..<parts).map { min(size, max(0, dimension - $0 * size)) }
    }
}

extension StructuredPruning {
    /// Multiply-adds of one forward pass of `graph` on a batch of one `imageShape` `[C, H, W]` image: every `Conv`
    /// contributes `H_out·W_out·C_out·(C_in/group)·k_h·k_w`, every `Gemm`/`MatMul` `M·K·N` (bias additions,
    /// BatchNorm, activations and pooling count 0) — the convention of `Layer.multiplyAdds(for:)`, so an exported zoo
    /// model counts the same as its layer tree. Throws `GraphError` for operators whose shapes it cannot infer.
    public static func multiplyAdds(_ graph: Graph, imageShape: [Int]) throws -> Int {
        let shapes = try GraphShapes(graph, imageShape: imageShape)
        return graph.nodes.reduce(0) { $0 + nodeMultiplyAdds($1, shapes: shapes) }
    }

    /// Multiply-adds of one node (0 for all but Conv, Gemm and MatMul).
    static func nodeMultiplyAdds(_ node: Node, shapes: GraphShapes) -> Int {
        switch node.opType {
        case "Conv":
            guard let y = shapes.shape(node.outputs[0]), let w = shapes.shape(node.inputs[1]) else { return 0 }
            return y.reduce(1, *) * w.dropFirst().reduce(1, *)
        case "Gemm":
            guard let y = shapes.shape(node.outputs[0]), let a = shapes.shape(node.inputs[0]), a.count == 2 else { return 0 }
            let k = (node.int("transA") ?? 0) != 0 ? a[0] : a[1]
            return y.reduce(1, *) * k
        case "MatMul":
            guard let y = shapes.shape(node.outputs[0]), let a = shapes.shape(node.inputs[0]) else { return 0 }
            return y.reduce(1, *) * (a.last ?? 1)
        default:
            return 0
        }
    }

    /// Trainable parameters of a graph (torchvision's `num_params` convention, as `Layer.parameterCount`): the float
    /// initializers that are Conv weights and biases, Gemm B and C, constant MatMul operands, BatchNormalization scale
    /// and bias (not the running mean and variance), PRelu slopes, and constant operands of Add/Sub/Mul/Div with more
    /// than one element. Each initializer counts once however often it is used.
    public static func parameterCount(_ graph: Graph) -> Int {
        var counted: Set<String> = []
        var total = 0
        func take(_ name: String) {
            guard !name.isEmpty, !counted.contains(name), case let .float(t)? = graph.initializers[name] else { return }
            counted.insert(name)
            total += t.count
        }
        for node in graph.nodes {
            switch node.opType {
            case "Conv", "ConvTranspose", "Gemm":
                node.inputs.dropFirst().forEach(take)
            case "MatMul", "PRelu":
                node.inputs.forEach(take)
            case "BatchNormalization":
                node.inputs.dropFirst().prefix(2).forEach(take)
            case "Add", "Sub", "Mul", "Div":
                for input in node.inputs {
                    if case let .float(t)? = graph.initializers[input], t.count > 1 { take(input) }
                }
            default:
                break
            }
        }
        return total
    }
}
