import LiteCNNGraph
import LiteCNNLayers
import LiteCNNRuntime
import LiteCNNTensor

/// A trainable `Layer` that interprets a `Graph` (ONNX semantics) with hand-written backward passes: fine-tunes any
/// graph — a zoo model exported with `exportGraph`, an imported ONNX file, or a graph a compressor rewrote.
///
/// - Input: NHWC `[N, H, W, C]` for an image graph whose input is NCHW `[N, C, H, W]` (other ranks as in the graph).
///   Output: the graph's first output, `[N, classes]` (rank-4 outputs NHWC). Inside, every rank-4 value is NHWC and
///   every other value row-major in ONNX order; Reshape/Transpose/Flatten convert through the logical NCHW order.
/// - Shape arithmetic (Shape/Gather/Unsqueeze/Concat/… feeding Reshape, Slice bounds, …) is folded with
///   `GraphFolding` for `[N] + imageShape`, once per batch size N met.
/// - Parameters (`namedParameters()` names = initializer names): Conv W and B, Gemm B and C, a constant MatMul B,
///   BatchNormalization scale and B (weights), mean and var (buffers, updated in training mode with ONNX momentum:
///   `running = momentum·running + (1 − momentum)·batch`, the variance unbiased as PyTorch's). Only float values
///   given in the graph (initializers or Constant nodes) become parameters; every other constant stays constant.
/// - Convolutions, BatchNorm and the common activations run through the Layer implementations (`Conv2D`,
///   `BatchNorm2D`, `ReLU`, …), so speed and numerics match a Layer tree.
/// - Dropout runs as `Dropout` (training mode only); `valueHook` sees every node output.
/// - Switchable graphs (`ai.litecnn` `Select` nodes, nodes tagged `litecnn_alternative = [group, alternative]`, as the
///   runtime runs them): only the alternatives `selection` names run, forward and backward; every alternative's weights
///   are parameters, so one network trains any configuration.
public final class GraphNetwork: Layer {
    /// The structure it runs: the graph folded for one image (`[1] + imageShape`).
    public let graph: Graph
    /// The graph as given (export writes the current parameters back into it).
    public let sourceGraph: Graph
    /// `[C, H, W]` of one image (or the input's shape without the batch for non-image graphs).
    public let imageShape: [Int]
    /// Called on every node output during forward (training and inference), in execution order; rank-4 tensors are
    /// NHWC. The hook may change the tensor in place (fake quantization): later nodes see the changed value, and
    /// backward treats the change as the identity (straight-through estimator).
    public var valueHook: ((_ valueName: String, _ tensor: inout Tensor) -> Void)?

    public var isTraining = false {
        didSet { for op in ops { op.isTraining = isTraining } }
    }

    /// Makes every BatchNormalization normalize with its running statistics and leave them unchanged, in training
    /// mode too (`BatchNorm2D.freezesStatistics`): for training some parameters of a network whose statistics stay.
    public var freezesBatchNormStatistics = false {
        didSet {
            for op in ops { for case let bn as BatchNorm2D in op.layers { bn.freezesStatistics = freezesBatchNormStatistics } }
        }
    }

    /// Alternatives per `Select` group of a switchable graph (empty for an ordinary graph).
    public let alternativeCounts: [Int]
    /// The alternative each group runs (all 0 at first). Precondition when set: one entry per group, each in range.
    public var selection: [Int] {
        didSet {
            precondition(selection.count == alternativeCounts.count
                         && zip(selection, alternativeCounts).allSatisfy { $0 >= 0 && $0 < $1 },
                         "GraphNetwork: selection \(selection) for alternative counts \(alternativeCounts)")
        }
    }

    private let ops: [GraphOp]
    /// `[group, alternative]` of every op that belongs to an alternative (nil for the shared ones).
    private let tags: [(group: Int, alternative: Int)?]
    private let parameterList: [(name: String, parameter: Parameter)]
    private let parameterIndex: [String: Parameter]
    private let inputName: String
    private let outputName: String
    /// How many ops read each value (graph outputs count once more), for releasing values in forward.
    private let readers: [String: Int]
    /// Per batch size: folded constants and shapes.
    private var plans: [Int: BatchPlan] = [:]
    private var lastPlan: BatchPlan?
    private var trainedForward = false

    /// Builds the network for images of `imageShape` (`[C, H, W]`). Throws `GraphError` naming the node, operator and
    /// opset for anything it cannot run or differentiate.
    public init(graph: Graph, imageShape: [Int]) throws {
        let opset = graph.opsetVersion
        guard !imageShape.isEmpty, imageShape.allSatisfy({ $0 > 0 }) else {
            throw GraphError("image shape \(imageShape) must be non-empty and positive", opset: opset)
        }
        guard let output = graph.outputs.first else { throw GraphError("the graph has no outputs", opset: opset) }
        let folded = try GraphFolding.fold(graph, inputShape: [1] + imageShape)
        self.sourceGraph = graph
        self.graph = folded.graph
        self.imageShape = imageShape
        self.inputName = folded.graph.inputs[0].name
        self.outputName = output.name
        let plan = BatchPlan(folded)
        plans[1] = plan

        // Float values given in the graph: the only candidates for parameters.
        var given: [String: Tensor] = [:]
        for (name, c) in graph.initializers { if case let .float(t) = c { given[name] = t } }
        for node in graph.nodes where node.opType == "Constant" {
            if case let .tensor(.float(t))? = node.attributes["value"], let o = node.outputs.first { given[o] = t }
        }
        var list: [(name: String, parameter: Parameter)] = []
        var index: [String: Parameter] = [:]
        func err(_ m: String, _ node: Node) -> GraphError { GraphError(m, at: node, opset: opset) }
        /// Registers `p` (a layer's own parameter) for the value `name` with the graph's value.
        func adopt(_ p: Parameter, _ name: String, _ node: Node) throws {
            guard let t = given[name] else { return }
            guard index[name] == nil else {
                throw err("the constant '\(name)' is shared with another node; GraphNetwork trains unshared weights only", node)
            }
            guard t.count == p.count else { throw err("'\(name)' has shape \(t.shape), expected \(p.shape)", node) }
            p.value = Tensor(shape: p.shape, scalars: t.scalars)
            index[name] = p
            list.append((name, p))
        }
        /// A parameter of its own for the value `name` (shared by every node reading it), or nil when not given.
        func parameter(_ name: String, _ node: Node) throws -> Parameter? {
            if let p = index[name] { return p }
            guard let t = given[name] else { return nil }
            let p = Parameter(Tensor(shape: t.shape, scalars: t.scalars, layout: .plain))
            index[name] = p
            list.append((name, p))
            return p
        }
        func constant(_ node: Node, _ i: Int) -> Constant? {
            i < node.inputs.count && !node.inputs[i].isEmpty ? plan.constants[node.inputs[i]] : nil
        }
        func scalar(_ node: Node, _ i: Int) throws -> Float? {
            guard i < node.inputs.count, !node.inputs[i].isEmpty else { return nil }
            switch constant(node, i) {
            case let .float(t)? where t.count == 1: return t.scalars[0]
            case let .int(v, _)? where v.count == 1: return Float(v[0])
            default: throw err("input '\(node.inputs[i])' must be a constant scalar", node)
            }
        }

        var ops: [GraphOp] = []
        for node in folded.graph.nodes {
            let inputShapes = node.inputs.map { $0.isEmpty ? nil : plan.shapes[$0] }
            let rank = inputShapes.first??.count ?? 0
            let op: GraphOp
            switch node.opType {
            case "Conv":
                guard case let .float(w)? = constant(node, 1), w.shape.count == 4 else {
                    throw err("the weight must be a constant 4-D (OIHW) tensor", node)
                }
                guard rank == 4 else { throw err("only 2-D convolutions of NCHW inputs are supported", node) }
                let x = inputShapes[0]!
                let groups = node.int("group") ?? 1
                let strides = node.ints("strides") ?? [1, 1], dilations = node.ints("dilations") ?? [1, 1]
                let pads = GraphFolding.windowPads(node, input: [x[2], x[3]], kernel: [w.shape[2], w.shape[3]])
                let hasBias = node.inputs.count > 2 && !node.inputs[2].isEmpty
                let conv = Conv2D(inputChannels: x[1], outputChannels: w.shape[0], kernelSize: (w.shape[2], w.shape[3]),
                                  stride: (strides[0], strides[1]),
                                  padding: Padding2D(top: pads[0], left: pads[1], bottom: pads[2], right: pads[3]),
                                  dilation: (dilations[0], dilations[1]), groups: groups, bias: hasBias)
                conv.weight.value = Tensor(shape: w.shape, scalars: w.scalars)
                try adopt(conv.weight, node.inputs[1], node)
                if hasBias {
                    guard case let .float(b)? = constant(node, 2), b.count == w.shape[0] else {
                        throw err("the bias must be a constant of \(w.shape[0]) values", node)
                    }
                    conv.bias!.value = Tensor(shape: [b.count], scalars: b.scalars)
                    try adopt(conv.bias!, node.inputs[2], node)
                }
                op = LayerOp(node: node, layer: conv)
            case "BatchNormalization":
                guard node.inputs.count >= 5 else { throw err("needs 5 inputs", node) }
                guard rank == 4 || rank == 2 else { throw err("only 2-D and 4-D inputs are supported, got rank \(rank)", node) }
                if node.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
                    throw err("the running statistics outputs are not supported", node)
                }
                var values: [Tensor] = []
                for i in 1...4 {
                    guard case let .float(t)? = constant(node, i) else { throw err("scale, B, mean and var must be float constants", node) }
                    values.append(t)
                }
                let channels = inputShapes[0]![1]
                guard values.allSatisfy({ $0.count == channels }) else {
                    throw err("scale/B/mean/var sizes \(values.map(\.count)) differ from the \(channels) channels", node)
                }
                let bn = BatchNorm2D(channels, epsilon: node.float("epsilon") ?? 1e-5, momentum: 1 - (node.float("momentum") ?? 0.9))
                let targets = [bn.weight, bn.bias, bn.runningMean, bn.runningVariance]
                for (i, p) in targets.enumerated() {
                    p.value = Tensor(shape: [channels], scalars: values[i].scalars)
                    try adopt(p, node.inputs[i + 1], node)
                }
                op = LayerOp(node: node, layer: bn)
            case "Relu": op = LayerOp(node: node, layer: ReLU())
            case "Sigmoid": op = LayerOp(node: node, layer: Sigmoid())
            case "HardSwish": op = LayerOp(node: node, layer: HardSwish())
            case "HardSigmoid":
                let alpha = node.float("alpha") ?? 0.2, beta = node.float("beta") ?? 0.5
                if abs(alpha - 1.0 / 6.0) < 1e-7 && beta == 0.5 {
                    op = LayerOp(node: node, layer: HardSigmoid())
                } else {
                    op = UnaryOp(node: node, kind: .hardSigmoid(alpha: alpha, beta: beta))
                }
            case "Clip":
                var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
                if opset < 11 {
                    lo = node.float("min") ?? lo; hi = node.float("max") ?? hi
                } else {
                    lo = try scalar(node, 1) ?? lo; hi = try scalar(node, 2) ?? hi
                }
                if lo == 0 && hi == 6 { op = LayerOp(node: node, layer: ReLU6()) } else { op = UnaryOp(node: node, kind: .clip(lo, hi)) }
            case "Identity":
                op = UnaryOp(node: node, kind: .identity)
            case "Cast":
                guard [1, 10, 11].contains(node.int("to") ?? 1) else { throw err("only casts to float are supported on activations", node) }
                op = UnaryOp(node: node, kind: .identity)
            case "Dropout":
                if node.outputs.count > 1, !node.outputs[1].isEmpty { throw err("the mask output is not supported", node) }
                let ratio = opset >= 12 ? (try scalar(node, 1) ?? 0.5) : node.float("ratio") ?? 0.5
                guard ratio >= 0 && ratio < 1 else { throw err("ratio \(ratio) is outside [0, 1)", node) }
                op = ratio == 0 ? UnaryOp(node: node, kind: .identity) : LayerOp(node: node, layer: Dropout(probability: ratio))
            case "Softmax":
                let axis = normalized(node.int("axis") ?? (opset >= 13 ? -1 : 1), rank)
                let lastPhysical = rank == 4 ? axis == 1 : axis == rank - 1
                guard lastPhysical, opset >= 13 || rank == 2 || axis == rank - 1 else {
                    throw err("Softmax over axis \(node.int("axis") ?? -1) of a rank-\(rank) value is not supported (only the channel or last axis)", node)
                }
                op = LayerOp(node: node, layer: Softmax())
            case "Select" where node.domain == alternativesDomain:
                guard let g = node.int("group"), g >= 0 else { throw err("a Select needs an integer attribute group ≥ 0", node) }
                op = SelectOp(node: node, group: g)
            case "Add": op = BinaryOp(node: node, kind: .add)
            case "Sub": op = BinaryOp(node: node, kind: .sub)
            case "Mul": op = BinaryOp(node: node, kind: .mul)
            case "Div": op = BinaryOp(node: node, kind: .div)
            case "Concat": op = ConcatOp(node: node)
            case "Split": op = SplitOp(node: node)
            case "Slice": op = WindowOp(node: node, kind: .slice, opset: opset)
            case "Pad":
                let mode = node.string("mode") ?? "constant"
                guard mode == "constant" else { throw err("Pad mode '\(mode)' is not supported (only constant)", node) }
                let pads = try GraphFolding.padAmounts(node, rank: rank, constantInputs: node.inputs.map { $0.isEmpty ? nil : plan.ints($0) }, opset: opset)
                guard pads.allSatisfy({ $0 >= 0 }) else { throw err("negative pads \(pads) are not supported", node) }
                let value = opset >= 11 ? (try scalar(node, 2) ?? 0) : node.float("value") ?? 0
                op = WindowOp(node: node, kind: .pad(value: value), opset: opset)
            case "Reshape", "Flatten", "Squeeze", "Unsqueeze":
                op = LayoutOp(node: node, perm: nil)
            case "Transpose":
                op = LayoutOp(node: node, perm: node.ints("perm") ?? Array((0..<rank).reversed()))
            case "MaxPool", "AveragePool":
                guard rank == 4 else { throw err("only 2-D pooling of NCHW inputs is supported", node) }
                if let d = node.ints("dilations"), d != [1, 1] { throw err("dilated pooling is not supported", node) }
                if node.outputs.count > 1, !node.outputs[1].isEmpty { throw err("the Indices output is not supported", node) }
                guard (node.ints("kernel_shape")?.count ?? 0) == 2 else { throw err("needs a 2-D kernel_shape", node) }
                op = PoolOp(node: node, isMax: node.opType == "MaxPool")
            case "GlobalAveragePool":
                guard rank >= 3 else { throw err("needs spatial axes", node) }
                op = MeanOp(node: node, axes: Array(2..<rank), keepDims: true)
            case "ReduceMean":
                let axesIn = opset >= 18 ? (node.inputs.count > 1 && !node.inputs[1].isEmpty ? plan.ints(node.inputs[1]) : nil) : node.ints("axes")
                let axes = (axesIn ?? Array(0..<rank)).map { normalized($0, rank) }
                guard axes.allSatisfy({ $0 >= 0 && $0 < rank }) else { throw err("axes \(axesIn ?? []) out of range", node) }
                op = MeanOp(node: node, axes: axes, keepDims: (node.int("keepdims") ?? 1) != 0)
            case "Gemm", "MatMul":
                let b = node.inputs[1]
                let weight = try parameter(b, node)
                if weight == nil, plan.constants[b] != nil { throw err("the constant B '\(b)' must be a float initializer", node) }
                var bias: Parameter?
                if node.opType == "Gemm", node.inputs.count > 2, !node.inputs[2].isEmpty {
                    bias = try parameter(node.inputs[2], node)
                    if bias == nil, plan.constants[node.inputs[2]] != nil { throw err("the constant C must be a float initializer", node) }
                }
                if node.opType == "MatMul" {
                    guard let bs = inputShapes[1], bs.count == 2, rank >= 2 else {
                        throw err("only [..., M, K] × [K, N] products are supported", node)
                    }
                }
                op = GemmOp(node: node, weight: weight, bias: bias)
            default:
                throw err("operator is not supported by GraphNetwork (no training implementation)", node)
            }
            // Activations: the graph input and node outputs (constants have no gradient).
            op.needsGradient = node.inputs.map { !$0.isEmpty && plan.constants[$0] == nil }
            ops.append(op)
        }
        var counts: [Int: Int] = [:]
        for case let select as SelectOp in ops {
            guard counts[select.group] == nil else { throw err("group \(select.group) has two Select nodes", select.node) }
            counts[select.group] = select.node.inputs.count
        }
        guard counts.keys.allSatisfy({ $0 < counts.count }) else {
            throw GraphError("Select groups \(counts.keys.sorted()) are not numbered 0..<\(counts.count)", opset: opset)
        }
        var tags: [(group: Int, alternative: Int)?] = []
        for op in ops {
            guard let t = op.node.ints(alternativeAttribute), t.count == 2 else { tags.append(nil); continue }
            guard let n = counts[t[0]], t[1] >= 0, t[1] < n else {
                throw err("\(alternativeAttribute) \(t) names no input of a Select", op.node)
            }
            tags.append((t[0], t[1]))
        }
        self.alternativeCounts = (0..<counts.count).map { counts[$0]! }
        self.selection = [Int](repeating: 0, count: counts.count)
        self.tags = tags
        self.ops = ops
        self.parameterList = list
        self.parameterIndex = index
        var readers: [String: Int] = [:]
        for op in ops { for name in op.node.inputs where !name.isEmpty { readers[name, default: 0] += 1 } }
        readers[outputName, default: 0] += 1
        self.readers = readers
    }

    // MARK: Layer

    public var localParameters: [(name: String, parameter: Parameter)] { parameterList }

    /// The parameter or buffer standing for the graph value `name` (an initializer name), or nil.
    public func parameter(named name: String) -> Parameter? { parameterIndex[name] }

    /// The folded constants and shapes for a batch of `n` (folded on first use).
    private func plan(batch n: Int) -> BatchPlan {
        if let p = plans[n] { return p }
        let folded: FoldedGraph
        do {
            folded = try GraphFolding.fold(sourceGraph, inputShape: [n] + imageShape)
        } catch {
            preconditionFailure("GraphNetwork: folding the graph for batch \(n) failed: \(error)")
        }
        precondition(folded.graph.nodes.map(\.name) == graph.nodes.map(\.name),
                     "GraphNetwork: the graph folds differently for batch \(n) than for one image")
        let p = BatchPlan(folded)
        plans[n] = p
        return p
    }

    private var inputIsImage: Bool { imageShape.count == 3 }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == imageShape.count + 1, "GraphNetwork: input \(inputShape) for image shape \(imageShape)")
        return physicalShape(plan(batch: inputShape[0]).shape(outputName))
    }

    public func localMultiplyAdds(for inputShape: [Int]) -> Int {
        let p = plan(batch: inputShape[0])
        var total = 0
        for (op, tag) in zip(ops, tags) where tag.map({ selection[$0.group] == $0.alternative }) ?? true {
            total += op.multiplyAdds(p)
        }
        return total
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == imageShape.count + 1 && logicalShape(input.shape).dropFirst().elementsEqual(imageShape),
                     "GraphNetwork: input \(input.shape) does not match image shape \(imageShape) (NHWC for images)")
        let plan = plan(batch: input.shape[0])
        lastPlan = plan
        trainedForward = isTraining
        var values: [String: Tensor] = [inputName: input]
        var remaining = readers
        for (index, op) in ops.enumerated() {
            let node = op.node
            if let tag = tags[index], selection[tag.group] != tag.alternative { continue }
            if let select = op as? SelectOp {
                // Only the selected alternative was computed; the others' values never exist.
                let chosen = node.inputs[selection[select.group]]
                select.chosen = selection[select.group]
                guard var y = values[chosen] ?? plan.physical(chosen) else {
                    preconditionFailure("GraphNetwork: value '\(chosen)' missing at node '\(node.name)'")
                }
                remaining[chosen, default: 1] -= 1
                if remaining[chosen] == 0 { values[chosen] = nil }
                let name = node.outputs[0]
                valueHook?(name, &y)
                if remaining[name, default: 0] > 0 { values[name] = y }
                continue
            }
            let x: [Tensor] = node.inputs.map { name in
                if name.isEmpty { return Tensor(shape: [0]) }
                if let v = values[name] { return v }
                guard let c = plan.physical(name) else { preconditionFailure("GraphNetwork: value '\(name)' missing at node '\(node.name)'") }
                return c
            }
            let outs = op.forward(x, plan)
            for name in node.inputs where !name.isEmpty {
                remaining[name, default: 1] -= 1
                if remaining[name] == 0 { values[name] = nil }
            }
            for (name, var t) in zip(node.outputs, outs) where !name.isEmpty {
                valueHook?(name, &t)
                if remaining[name, default: 0] > 0 { values[name] = t }
            }
        }
        if let y = values[outputName] { return y }
        guard let c = plan.physical(outputName) else { preconditionFailure("GraphNetwork: output '\(outputName)' has no value") }
        return c
    }

    /// Backpropagates through the ops in reverse; gradients of values read several times are summed.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let plan = lastPlan, trainedForward else { preconditionFailure("GraphNetwork.backward without a training-mode forward") }
        let outShape = physicalShape(plan.shape(outputName))
        precondition(gradOutput.shape == outShape, "GraphNetwork.backward: gradient \(gradOutput.shape) vs output \(outShape)")
        var grads: [String: Tensor] = [outputName: gradOutput]
        for op in ops.reversed() {
            let node = op.node
            let dy = node.outputs.map { $0.isEmpty ? nil : grads.removeValue(forKey: $0) }
            if dy.allSatisfy({ $0 == nil }) { continue }
            // Ops of unselected alternatives produced nothing, so no gradient reaches them.
            let dx = op.backward(dy, plan)
            for (i, name) in node.inputs.enumerated() where i < dx.count && op.needsGradient[i] {
                guard let g = dx[i] else { continue }
                if var existing = grads.removeValue(forKey: name) {
                    addInPlace(&existing, g)
                    grads[name] = existing
                } else {
                    grads[name] = g
                }
            }
        }
        return grads[inputName] ?? Tensor(shape: physicalShape([plan.shape(inputName)[0]] + imageShape))
    }

    // MARK: Export

    /// The source graph with every parameter's current value (and the BatchNorm running statistics) written back into
    /// its initializer (or Constant node), in the value's original shape.
    public func exportGraph() -> Graph {
        var g = sourceGraph
        var constantNodes: [String: Int] = [:]
        for (i, node) in g.nodes.enumerated() where node.opType == "Constant" {
            if let o = node.outputs.first { constantNodes[o] = i }
        }
        for (name, p) in parameterList {
            let value = p.value
            if case let .float(old)? = g.initializers[name] {
                g.initializers[name] = .float(Tensor(shape: old.shape, scalars: value.scalars, layout: old.layout))
            } else if let i = constantNodes[name], case let .tensor(.float(old))? = g.nodes[i].attributes["value"] {
                g.nodes[i].attributes["value"] = .tensor(.float(Tensor(shape: old.shape, scalars: value.scalars, layout: old.layout)))
            }
        }
        return g
    }
}
