import Foundation
import LiteCNNGraph
import LiteCNNTensor
import SwiftProtobuf

/// Reads and writes ONNX model files (`ModelProto`) as LiteCNN `Graph`s.
///
/// Reading accepts opsets 13…21 of the default domain ("" or "ai.onnx") and the operators in `supportedOperators`
/// (what LiteCNN's runtime implements). Everything that comes from the file is checked, and problems are thrown —
/// never trapped: malformed protobuf, unsupported opsets/domains/operators (`GraphError` naming node, operator and
/// opset), tensors whose data does not match their dims, unknown or not-yet-produced inputs (cycles), duplicate
/// outputs, attributes of the wrong type, external data outside the model's directory or out of bounds.
///
/// Conventions of the resulting graph:
/// - Constants keep ONNX's logical layout (NCHW activations, OIHW weights) and carry `Tensor.Layout.plain`.
/// - `FLOAT`, `FLOAT16`, `DOUBLE` tensors become `.float` (float32); `INT64`, `INT32`, `INT8`, `UINT8`, `BOOL`
///   become `.int`.
/// - `Constant` nodes stay nodes (their `value` becomes `Attribute.tensor`, other `value_*` attributes stay as they
///   are): the runtime folds them. This keeps the graph a faithful image of the file, so a round trip is lossless.
/// - Nodes without a name get `"<op_type>_<index>"`.
/// - Graph inputs that are also initializers (files written with `keep_initializers_as_inputs`) are not inputs.
public enum ONNXFile {
    /// The operators LiteCNN's runtime implements (default ONNX domain).
    public static let supportedOperators: Set<String> = [
        "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add", "Sub", "Div",
        "Concat", "Split", "Slice", "Reshape", "Transpose", "Flatten", "MaxPool", "AveragePool", "GlobalAveragePool",
        "ReduceMean", "Gemm", "MatMul", "Dropout", "Identity", "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze",
        "Pad", "Softmax", "Cast",
    ]

    /// The versions of the default ONNX domain LiteCNN reads and writes.
    public static let supportedOpsets: ClosedRange<Int> = 13...21

    /// Reads the model at `url`; external tensor data is resolved relative to the file's directory.
    public static func load(contentsOf url: URL) throws -> Graph {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .alwaysMapped)
        } catch {
            throw ONNXError(source: url.path, "cannot read the file: \(error.localizedDescription)")
        }
        return try decode(data, source: url.path, directory: url.deletingLastPathComponent())
    }

    /// Reads a model from memory. Tensors with external data are rejected (there is no directory to resolve them in):
    /// use `load(contentsOf:)` for those.
    public static func parse(_ data: Data, source: String = "<memory>") throws -> Graph {
        try decode(data, source: source, directory: nil)
    }

    /// The ONNX bytes of `graph`: IR version 8 for opset ≤ 17, 9 for 18…20, 10 for 21; float constants as
    /// little-endian `raw_data` FLOAT tensors, integer constants as `raw_data` INT64 tensors; initializers and
    /// metadata sorted by name so the bytes are deterministic.
    public static func serialize(_ graph: Graph) throws -> Data {
        guard supportedOpsets.contains(graph.opsetVersion) else {
            throw GraphError("cannot write opset \(graph.opsetVersion): LiteCNN writes opsets \(supportedOpsets.lowerBound)…\(supportedOpsets.upperBound)",
                             opset: graph.opsetVersion)
        }
        var model = Onnx_ModelProto()
        model.irVersion = graph.opsetVersion <= 17 ? 8 : (graph.opsetVersion <= 20 ? 9 : 10)
        model.producerName = "LiteCNN"
        var opset = Onnx_OperatorSetIdProto()
        opset.domain = ""
        opset.version = Int64(graph.opsetVersion)
        model.opsetImport = [opset]
        model.metadataProps = graph.metadata.keys.sorted().map { key in
            var entry = Onnx_StringStringEntryProto()
            entry.key = key
            entry.value = graph.metadata[key]!
            return entry
        }
        var g = Onnx_GraphProto()
        g.name = graph.name
        g.input = graph.inputs.map(valueInfoProto)
        g.output = graph.outputs.map(valueInfoProto)
        g.initializer = graph.initializers.keys.sorted().map { tensorProto(graph.initializers[$0]!, name: $0) }
        g.node = graph.nodes.map { node in
            var n = Onnx_NodeProto()
            n.name = node.name
            n.opType = node.opType
            if !node.domain.isEmpty { n.domain = node.domain }
            n.input = node.inputs
            n.output = node.outputs
            n.attribute = node.attributes.keys.sorted().map { attributeProto(node.attributes[$0]!, name: $0) }
            return n
        }
        model.graph = g
        do {
            return try model.serializedBytes()
        } catch {
            throw ONNXError(source: graph.name, "cannot encode the model: \(error)")
        }
    }

    /// Writes `serialize(graph)` to `url` atomically (a temporary file in the same directory, then a rename).
    public static func write(_ graph: Graph, to url: URL) throws {
        let data = try serialize(graph)
        do {
            try data.write(to: url, options: .atomic)
        } catch {
            throw ONNXError(source: url.path, "cannot write the file: \(error.localizedDescription)")
        }
    }
}

/// An error about an ONNX file that is not about one node: the protobuf itself, a tensor, external data.
public struct ONNXError: Error, CustomStringConvertible, Equatable {
    /// The file (or `<memory>`) the problem is in.
    public var source: String
    public var message: String

    public init(source: String, _ message: String) {
        self.source = source
        self.message = message
    }

    public var description: String { "\(source): \(message)" }
}

// MARK: - Reading

extension ONNXFile {
    private static func decode(_ data: Data, source: String, directory: URL?) throws -> Graph {
        let model: Onnx_ModelProto
        let split: ONNXWire.Split
        var initializers: [(proto: Onnx_TensorProto, rawData: Data?)] = []
        do {
            split = try ONNXWire.split(data)
            model = try Onnx_ModelProto(serializedBytes: split.model)
            initializers.reserveCapacity(split.initializers.count)
            for t in split.initializers {
                initializers.append((try Onnx_TensorProto(serializedBytes: t.tensorWithoutRawData), t.rawData))
            }
        } catch let error as ONNXWire.Malformed {
            throw ONNXError(source: source, "not a valid ONNX protobuf (\(data.count) bytes): at offset \(error.offset): \(error.message)")
        } catch {
            throw ONNXError(source: source, "not a valid ONNX protobuf (\(data.count) bytes): \(error)")
        }
        // Opset of the default domain.
        var opset: Int?
        for entry in model.opsetImport where entry.domain == "" || entry.domain == "ai.onnx" {
            opset = Int(entry.version)
        }
        guard let opset else {
            throw ONNXError(source: source, "the model imports no version of the default ONNX domain")
        }
        guard supportedOpsets.contains(opset) else {
            throw GraphError("\(source): unsupported opset \(opset) of the default domain (LiteCNN reads \(supportedOpsets.lowerBound)…\(supportedOpsets.upperBound))",
                             opset: opset)
        }
        guard model.hasGraph else { throw ONNXError(source: source, "the model has no graph") }
        let g = model.graph
        var reader = TensorReader(source: source, directory: directory)

        var graph = Graph(name: g.name, opsetVersion: opset)
        for entry in model.metadataProps { graph.metadata[entry.key] = entry.value }

        for (t, rawData) in initializers {
            guard !t.name.isEmpty else { throw ONNXError(source: source, "an initializer has no name") }
            guard graph.initializers[t.name] == nil else {
                throw ONNXError(source: source, "initializer '\(t.name)' is defined twice")
            }
            graph.initializers[t.name] = try reader.constant(t, rawData: rawData, what: "initializer '\(t.name)'")
        }
        var inputNames = Set<String>()
        for vi in g.input where graph.initializers[vi.name] == nil {
            guard inputNames.insert(vi.name).inserted, !vi.name.isEmpty else {
                throw ONNXError(source: source, "graph input '\(vi.name)' is empty or declared twice")
            }
            graph.inputs.append(try valueInfo(vi, source: source, what: "graph input"))
        }
        graph.outputs = try g.output.map { try valueInfo($0, source: source, what: "graph output") }

        for (index, n) in g.node.enumerated() {
            let name = n.name.isEmpty ? "\(n.opType)_\(index)" : n.name
            let domain = n.domain == "ai.onnx" ? "" : n.domain
            guard domain.isEmpty else {
                throw GraphError("\(source): operator domain '\(n.domain)' is not supported (only the default ONNX domain)",
                                 node: name, opType: n.opType, opset: opset)
            }
            guard supportedOperators.contains(n.opType) else {
                throw GraphError("\(source): unsupported operator", node: name, opType: n.opType, opset: opset)
            }
            var attributes: [String: Attribute] = [:]
            for a in n.attribute {
                let where_ = { (message: String) in GraphError("\(source): attribute '\(a.name)': \(message)", node: name, opType: n.opType, opset: opset) }
                guard attributes[a.name] == nil else { throw where_("defined twice") }
                let value = try attribute(a, reader: &reader, fail: where_)
                if let expected = expectedAttributeKinds[a.name], !expected.matches(value) {
                    throw where_("expected \(expected), found \(kindName(value))")
                }
                attributes[a.name] = value
            }
            graph.nodes.append(Node(name: name, opType: n.opType, domain: domain, inputs: n.input, outputs: n.output,
                                    attributes: attributes))
        }
        try validate(graph, source: source)
        return graph
    }

    /// Topological order, unique producers, graph outputs produced.
    private static func validate(_ graph: Graph, source: String) throws {
        var available = Set(graph.initializers.keys)
        for input in graph.inputs {
            guard available.insert(input.name).inserted else {
                throw ONNXError(source: source, "graph input '\(input.name)' is also produced elsewhere")
            }
        }
        var producedLater: [String: String] = [:]
        for node in graph.nodes { for o in node.outputs where !o.isEmpty { producedLater[o] = producedLater[o] ?? node.name } }
        for node in graph.nodes {
            for input in node.inputs where !input.isEmpty && !available.contains(input) {
                if let producer = producedLater[input] {
                    throw GraphError("\(source): input '\(input)' is used before node '\(producer)' produces it (nodes not in topological order, or a cycle)",
                                     at: node, opset: graph.opsetVersion)
                }
                throw GraphError("\(source): input '\(input)' is not produced by any node, initializer or graph input",
                                 at: node, opset: graph.opsetVersion)
            }
            for output in node.outputs where !output.isEmpty {
                guard available.insert(output).inserted else {
                    throw GraphError("\(source): output '\(output)' is already produced elsewhere", at: node, opset: graph.opsetVersion)
                }
            }
        }
        for output in graph.outputs where !available.contains(output.name) {
            throw ONNXError(source: source, "graph output '\(output.name)' is not produced by any node")
        }
    }

    private static func valueInfo(_ vi: Onnx_ValueInfoProto, source: String, what: String) throws -> ValueInfo {
        guard !vi.name.isEmpty else { throw ONNXError(source: source, "a \(what) has no name") }
        guard case let .tensorType(t)? = vi.type.value else {
            // No type: allowed for outputs of files that rely on inference; assume float32 of unknown shape.
            return ValueInfo(name: vi.name, elementType: .float32, shape: nil)
        }
        let elementType: ElementType
        if !t.hasElemType {
            elementType = .float32
        } else if let e = ElementType(rawValue: Int(t.elemType)) {
            elementType = e
        } else {
            throw ONNXError(source: source, "\(what) '\(vi.name)': unsupported element type \(t.elemType)")
        }
        guard t.hasShape else { return ValueInfo(name: vi.name, elementType: elementType, shape: nil) }
        let shape: [ValueInfo.Dimension] = try t.shape.dim.map { d in
            switch d.value {
            case let .dimValue(v)?:
                guard v >= 0 else { throw ONNXError(source: source, "\(what) '\(vi.name)': negative dimension \(v)") }
                return .fixed(Int(v))
            case let .dimParam(p)?: return .symbolic(p.isEmpty ? nil : p)
            case nil: return .symbolic(nil)
            }
        }
        return ValueInfo(name: vi.name, elementType: elementType, shape: shape)
    }

    private static func attribute(_ a: Onnx_AttributeProto, reader: inout TensorReader,
                                  fail: (String) -> GraphError) throws -> Attribute {
        var type = a.type
        if !a.hasType || type == .undefined {
            // Files from old writers omit `type`: infer it from the field that is set.
            if a.hasF { type = .float } else if a.hasI { type = .int } else if a.hasS { type = .string }
            else if a.hasT { type = .tensor } else if !a.floats.isEmpty { type = .floats }
            else if !a.ints.isEmpty { type = .ints } else if !a.strings.isEmpty { type = .strings }
            else { throw fail("no value") }
        }
        func text(_ d: Data) throws -> String {
            guard let s = String(data: d, encoding: .utf8) else { throw fail("string is not UTF-8") }
            return s
        }
        switch type {
        case .float: return .float(a.f)
        case .int: return .int(Int(a.i))
        case .string: return .string(try text(a.s))
        case .floats: return .floats(a.floats)
        case .ints: return .ints(a.ints.map { Int($0) })
        case .strings: return .strings(try a.strings.map(text))
        case .tensor:
            do {
                return .tensor(try reader.constant(a.t, what: "tensor of attribute '\(a.name)'"))
            } catch let error as ONNXError {
                throw fail(error.message)
            }
        default: throw fail("attributes of type \(type) are not supported")
        }
    }

    /// What kind each well-known attribute must have (any operator).
    private enum Kind: CustomStringConvertible {
        case int, ints, float, floats, string, tensor
        func matches(_ a: Attribute) -> Bool {
            switch (self, a) {
            case (.int, .int), (.ints, .ints), (.float, .float), (.floats, .floats), (.string, .string), (.tensor, .tensor):
                return true
            default: return false
            }
        }
        var description: String {
            switch self {
            case .int: return "an int"
            case .ints: return "a list of ints"
            case .float: return "a float"
            case .floats: return "a list of floats"
            case .string: return "a string"
            case .tensor: return "a tensor"
            }
        }
    }

    private static let expectedAttributeKinds: [String: Kind] = [
        "kernel_shape": .ints, "strides": .ints, "pads": .ints, "dilations": .ints, "perm": .ints, "axes": .ints,
        "split": .ints, "output_padding": .ints, "output_shape": .ints,
        "group": .int, "axis": .int, "keepdims": .int, "transA": .int, "transB": .int, "to": .int, "allowzero": .int,
        "ceil_mode": .int, "count_include_pad": .int, "training_mode": .int, "storage_order": .int,
        "noop_with_empty_shape": .int, "num_outputs": .int, "start": .int, "end": .int, "seed": .int,
        "alpha": .float, "beta": .float, "epsilon": .float, "momentum": .float, "min": .float, "max": .float,
        "ratio": .float, "value_float": .float,
        "auto_pad": .string, "mode": .string, "value_string": .string,
        "value": .tensor, "value_int": .int, "value_ints": .ints, "value_floats": .floats,
    ]

    private static func kindName(_ a: Attribute) -> String {
        switch a {
        case .int: return "an int"
        case .ints: return "a list of ints"
        case .float: return "a float"
        case .floats: return "a list of floats"
        case .string: return "a string"
        case .strings: return "a list of strings"
        case .tensor: return "a tensor"
        }
    }
}
