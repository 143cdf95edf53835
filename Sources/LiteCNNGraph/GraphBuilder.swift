import LiteCNNTensor

/// Builds a `Graph` node by node: hands out unique value and node names, records nodes in execution order and
/// collects initializers (float tensors in ONNX layout, int64 arrays for shape arithmetic).
///
/// Names: a node added with the base name `features.0/Conv` is called `features.0/Conv` (or `features.0/Conv_1`,
/// `_2`, … when taken) and its outputs `<node name>_output_0`, `_1`, …. Initializers keep the name they are given
/// (parameters use their state_dict names); adding the same name twice is a programmer error.
/// Constants of shape arithmetic (`int(_:name:)`, `floatScalar(_:name:)`) are shared: one initializer per value.
public struct GraphBuilder: Sendable {
    public private(set) var graph: Graph
    private var usedNames: Set<String> = []
    private var sharedConstants: [String: String] = [:]

    /// A builder of a graph named `name` following `opset` of the default ONNX domain.
    public init(name: String = "litecnn", opset: Int = 17) {
        graph = Graph(name: name, opsetVersion: opset)
    }

    /// The opset the nodes follow.
    public var opset: Int { graph.opsetVersion }

    /// `base`, or `base_1`, `base_2`, … : the first name not used yet (not reserved).
    private func unusedName(_ base: String) -> String {
        var candidate = base
        var index = 1
        while usedNames.contains(candidate) {
            candidate = "\(base)_\(index)"
            index += 1
        }
        return candidate
    }

    /// `base` if no value, node or initializer is called so yet, otherwise `base_1`, `base_2`, … (reserved on return).
    public mutating func uniqueName(_ base: String) -> String {
        let candidate = unusedName(base)
        usedNames.insert(candidate)
        return candidate
    }

    /// Declares a graph input (shape in ONNX order, e.g. `[batch, C, H, W]`).
    public mutating func addInput(_ name: String, shape: [ValueInfo.Dimension], elementType: ElementType = .float32) {
        precondition(!usedNames.contains(name), "GraphBuilder: input name '\(name)' already used")
        usedNames.insert(name)
        graph.inputs.append(ValueInfo(name: name, elementType: elementType, shape: shape))
    }

    /// Declares `value` a graph output.
    public mutating func addOutput(_ value: String, shape: [ValueInfo.Dimension]?, elementType: ElementType = .float32) {
        graph.outputs.append(ValueInfo(name: value, elementType: elementType, shape: shape))
    }

    /// Appends a node `opType(inputs)` named after `name` with `outputCount` fresh outputs; returns the output names.
    @discardableResult
    public mutating func addNode(_ opType: String, name: String, inputs: [String], outputCount: Int = 1,
                                 attributes: [String: Attribute] = [:]) -> [String] {
        precondition(outputCount >= 1, "GraphBuilder: a node needs an output")
        let nodeName = uniqueName(name)
        let outputs = (0..<outputCount).map { uniqueName("\(nodeName)_output_\($0)") }
        graph.nodes.append(Node(name: nodeName, opType: opType, inputs: inputs, outputs: outputs, attributes: attributes))
        return outputs
    }

    /// Appends a single-output node and returns its output name.
    public mutating func add(_ opType: String, name: String, inputs: [String], attributes: [String: Attribute] = [:]) -> String {
        addNode(opType, name: name, inputs: inputs, outputCount: 1, attributes: attributes)[0]
    }

    /// Adds a float initializer named exactly `name` (shape in ONNX order). Returns `name`.
    @discardableResult
    public mutating func addInitializer(_ name: String, _ tensor: Tensor) -> String {
        precondition(!usedNames.contains(name), "GraphBuilder: initializer name '\(name)' already used")
        usedNames.insert(name)
        graph.initializers[name] = .float(tensor)
        return name
    }

    /// Adds an int64 initializer named exactly `name`; `shape` defaults to `[values.count]`. Returns `name`.
    @discardableResult
    public mutating func addIntInitializer(_ name: String, _ values: [Int], shape: [Int]? = nil) -> String {
        precondition(!usedNames.contains(name), "GraphBuilder: initializer name '\(name)' already used")
        let shape = shape ?? [values.count]
        precondition(shape.reduce(1, *) == values.count, "GraphBuilder: \(values.count) values for shape \(shape)")
        usedNames.insert(name)
        graph.initializers[name] = .int(values, shape: shape)
        return name
    }

    /// A shared int64 1-D constant (`const.ints.1_2_3`), created on first use.
    public mutating func int(_ values: [Int], name: String? = nil) -> String {
        let key = "i:" + values.map(String.init).joined(separator: ",")
        if let existing = sharedConstants[key] { return existing }
        let base = name ?? "const.ints." + values.map { $0 < 0 ? "m\(-$0)" : String($0) }.joined(separator: "_")
        let result = addIntInitializer(unusedName(base), values)
        sharedConstants[key] = result
        return result
    }

    /// A shared float scalar constant (shape `[]`), created on first use.
    public mutating func floatScalar(_ value: Float, name: String? = nil) -> String {
        let key = "f:\(value.bitPattern)"
        if let existing = sharedConstants[key] { return existing }
        let result = addInitializer(unusedName(name ?? "const.float.\(value)"), Tensor(shape: [], scalars: [value]))
        sharedConstants[key] = result
        return result
    }

    /// Sets a metadata entry (`metadata_props`).
    public mutating func setMetadata(_ key: String, _ value: String) { graph.metadata[key] = value }

    /// Renames the value `old` to `new` everywhere (node outputs and inputs, graph outputs). `new` must be unused.
    public mutating func renameValue(_ old: String, to new: String) {
        precondition(!usedNames.contains(new), "GraphBuilder: name '\(new)' already used")
        usedNames.insert(new)
        for i in graph.nodes.indices {
            graph.nodes[i].inputs = graph.nodes[i].inputs.map { $0 == old ? new : $0 }
            graph.nodes[i].outputs = graph.nodes[i].outputs.map { $0 == old ? new : $0 }
        }
        for i in graph.outputs.indices where graph.outputs[i].name == old { graph.outputs[i].name = new }
    }

    /// Whether `value` is the output of a node (rather than an input or an initializer).
    public func isNodeOutput(_ value: String) -> Bool {
        graph.nodes.contains { $0.outputs.contains(value) }
    }

    /// The finished graph.
    public func build() -> Graph { graph }
}
