// The graph form of a pluggable operator: its nodes inside a larger graph, or alone as a one-operator graph.
import LiteCNNGraph
import LiteCNNTensor

extension PluggableOperator {
    /// The operator's nodes in execution order, reading `input` (NCHW `[N, C_i, H, W]`) and writing `output` (NCHW
    /// `[N, C, H_out, W_out]`), and its initializers.
    ///
    /// Only `Conv` (no bias, `group` 1 except the depthwise convolution's `C_i`), `BatchNormalization` (epsilon
    /// `slot.batchNormEpsilon ?? 1e-5`), `Relu` and `Concat` (axis 1) nodes. Every node name, intermediate value and
    /// initializer is `prefix` + a local name, so operators with distinct prefixes coexist in one graph:
    /// - nodes: one per convolution and BatchNorm, named as the tensor table's `X` (`reduce`, `core`, `expand`, `bn`,
    ///   `row.bn`, `squeeze.bn`, …), plus `relu` / `X.relu` and `concat`;
    /// - values: the node's name + `.y` (`reduce.y`, `row.bn.y`, …), except the last node's, which is `output`;
    /// - initializers: the local tensor names (`reduce.weight`, `bn.scale`, …).
    /// Layouts: bottleneck, low rank and depthwise are a chain of convolutions → `bn` (→ `relu`); multi-branch is
    /// `row` → `row.bn` (→ `row.relu`) and `column` → `column.bn` (→ `column.relu`) joined by `concat` (row first);
    /// Fire is `squeeze` → `squeeze.bn` → `squeeze.relu`, then `expand1x1` and `expand3x3` each with its BatchNorm
    /// (and ReLU when the slot has one), joined by `concat` (1×1 first).
    ///
    /// On a fully connected slot (input `[N, C_i]`, output `[N, C]`) low rank is `Gemm` nodes only: `first`
    /// (`Gemm(input, first.weight, transB = 1)`) → `second` (`Gemm(first.y, second.weight, second.bias, transB = 1)`)
    /// (→ `relu` when the slot has one).
    ///
    /// Precondition: `tensors` holds every tensor of `tensorShapes` with that shape.
    public func nodes(input: String, output: String, prefix: String) -> (nodes: [Node], initializers: [String: Constant]) {
        let shapes = tensorShapes
        var initializers: [String: Constant] = [:]
        for (name, shape) in shapes {
            guard let t = tensors[name] else {
                preconditionFailure("PluggableOperator \(kind) for slot '\(slot.name)': no tensor '\(name)'")
            }
            precondition(t.shape == shape, "PluggableOperator \(kind) for slot '\(slot.name)': tensor '\(name)' has "
                         + "shape \(t.shape), expected \(shape)")
            initializers[prefix + name] = .float(t)
        }
        let g = PluggableGeometry(kind: kind, beta: beta, slot: slot)
        let epsilon = slot.batchNormEpsilon ?? 1e-5
        var nodes: [Node] = []
        /// Appends a node named `prefix + name` reading `inputs`, writing `prefix + name + ".y"`; returns that value.
        func add(_ name: String, _ op: String, _ inputs: [String], _ attributes: [String: Attribute] = [:]) -> String {
            let value = prefix + name + ".y"
            nodes.append(Node(name: prefix + name, opType: op, inputs: inputs, outputs: [value], attributes: attributes))
            return value
        }
        func conv(_ name: String, _ x: String) -> String {
            let c = g.convolution(name)
            return add(name, "Conv", [x, prefix + name + ".weight"], [
                "kernel_shape": .ints(c.kernel), "strides": .ints(c.strides), "pads": .ints(c.pads),
                "dilations": .ints(c.dilations), "group": .int(c.group)])
        }
        func batchNorm(_ name: String, _ x: String) -> String {
            add(name, "BatchNormalization", [x] + PluggableGeometry.batchNormFields.map { prefix + name + "." + $0 },
                ["epsilon": .float(epsilon), "momentum": .float(0.9)])
        }
        /// BatchNorm `bn`, then a ReLU named `relu` when `relu` is non-nil.
        func normalize(_ bn: String, _ x: String, relu: String?) -> String {
            let y = batchNorm(bn, x)
            guard let relu else { return y }
            return add(relu, "Relu", [y])
        }
        let slotReLU = slot.hasReLU
        if g.isFullyConnected {
            let hidden = add("first", "Gemm", [input, prefix + "first.weight"], ["transB": .int(1)])
            let y = add("second", "Gemm", [hidden, prefix + "second.weight", prefix + "second.bias"], ["transB": .int(1)])
            if slotReLU { _ = add("relu", "Relu", [y]) }
            nodes[nodes.count - 1].outputs = [output]
            return (nodes, initializers)
        }
        switch kind {
        case .bottleneck:
            _ = normalize("bn", conv("expand", conv("core", conv("reduce", input))), relu: slotReLU ? "relu" : nil)
        case .lowRank:
            _ = normalize("bn", conv("column", conv("row", input)), relu: slotReLU ? "relu" : nil)
        case .depthwise:
            _ = normalize("bn", conv("pointwise", conv("depthwise", input)), relu: slotReLU ? "relu" : nil)
        case .multiBranch:
            let row = normalize("row.bn", conv("row", input), relu: slotReLU ? "row.relu" : nil)
            let column = normalize("column.bn", conv("column", input), relu: slotReLU ? "column.relu" : nil)
            _ = add("concat", "Concat", [row, column], ["axis": .int(1)])
        case .fire:
            let squeezed = normalize("squeeze.bn", conv("squeeze", input), relu: "squeeze.relu")
            let e1 = normalize("expand1x1.bn", conv("expand1x1", squeezed), relu: slotReLU ? "expand1x1.relu" : nil)
            let e3 = normalize("expand3x3.bn", conv("expand3x3", squeezed), relu: slotReLU ? "expand3x3.relu" : nil)
            _ = add("concat", "Concat", [e1, e3], ["axis": .int(1)])
        }
        nodes[nodes.count - 1].outputs = [output]
        return (nodes, initializers)
    }

    /// The operator alone: input `x` (`[N, C_i, H, W]`, N symbolic; `[N, C_i]` on a fully connected slot), output `y`
    /// (`[N, C, H_out, W_out]`; `[N, C]`), prefix "", opset 17, no metadata. Its initializer names are the local tensor names, so `GraphNetwork(graph:imageShape:)`
    /// trains it with parameters named as `tensors` and `adoptTensors(from:)` reads its export back.
    public func standaloneGraph() -> Graph {
        let (nodes, initializers) = nodes(input: "x", output: "y", prefix: "")
        let n = ValueInfo.Dimension.symbolic("N")
        return Graph(
            name: "\(kind)", opsetVersion: 17,
            inputs: [ValueInfo(name: "x", shape: [n] + slot.unitInputShape.map { .fixed($0) })],
            outputs: [ValueInfo(name: "y", shape: [n] + slot.unitOutputShape.map { .fixed($0) })],
            nodes: nodes, initializers: initializers, metadata: [:])
    }

    /// Copies every tensor of `tensorShapes` from the initializer of the same name in `graph` (for example
    /// `GraphNetwork.exportGraph()` of `standaloneGraph()`, after training). Throws naming the tensor when one is
    /// missing, is not float or has another shape; on a throw nothing is changed.
    public mutating func adoptTensors(from graph: Graph) throws { try adoptTensors(from: graph, prefix: "") }

    /// `adoptTensors(from:)` for a graph holding the operator under `prefix` (the initializers `prefix + local name`,
    /// as `nodes(input:output:prefix:)` names them).
    public mutating func adoptTensors(from graph: Graph, prefix: String) throws {
        var adopted: [String: Tensor] = [:]
        for (name, shape) in tensorShapes.sorted(by: { $0.key < $1.key }) {
            guard let constant = graph.initializers[prefix + name] else {
                throw PluggableOperatorError("\(kind) operator for slot '\(slot.name)': graph '\(graph.name)' has no "
                                             + "initializer '\(prefix + name)'")
            }
            guard case let .float(t) = constant else {
                throw PluggableOperatorError("\(kind) operator for slot '\(slot.name)': initializer '\(prefix + name)' "
                                             + "is not float")
            }
            guard t.shape == shape else {
                throw PluggableOperatorError("\(kind) operator for slot '\(slot.name)': initializer '\(prefix + name)' "
                                             + "has shape \(t.shape), expected \(shape)")
            }
            adopted[name] = Tensor(shape: shape, scalars: t.scalars, layout: .plain)
        }
        tensors = adopted
    }
}
