import LiteCNNTensor

/// A computation graph with ONNX semantics: the meeting point of ONNX import, ONNX export and the inference runtime.
///
/// - Operators are ONNX operators (`Conv`, `BatchNormalization`, `Relu`, …) with ONNX attributes and ONNX input order;
///   `opsetVersion` says which version of the default domain they follow.
/// - Values are named; every name is produced once (by a node, an initializer or a graph input).
/// - Shapes and constants are in ONNX's logical layout: images are NCHW `[N, C, H, W]`, convolution weights OIHW,
///   Gemm weights as the node's `transB` says. (The runtime decides the physical layout — NHWC — when it compiles.)
/// - Initializers are float32 `Tensor`s or int64 arrays (shape arithmetic: Reshape targets, Slice bounds, …).
///
/// Import builds it from a `.onnx` file, `GraphExport` builds it from a `Layer` tree, `ONNXWriter` writes it back.
public struct Graph: Sendable {
    public var name: String
    public var opsetVersion: Int
    public var inputs: [ValueInfo]
    public var outputs: [ValueInfo]
    public var nodes: [Node]
    public var initializers: [String: Constant]
    /// Free-form metadata (ONNX `metadata_props`), e.g. `litecnn.model`.
    public var metadata: [String: String]

    public init(name: String = "litecnn", opsetVersion: Int = 17, inputs: [ValueInfo] = [], outputs: [ValueInfo] = [],
                nodes: [Node] = [], initializers: [String: Constant] = [:], metadata: [String: String] = [:]) {
        self.name = name
        self.opsetVersion = opsetVersion
        self.inputs = inputs
        self.outputs = outputs
        self.nodes = nodes
        self.initializers = initializers
        self.metadata = metadata
    }
}

/// A graph input or output: a name, an element type and a shape whose dimensions may be symbolic.
public struct ValueInfo: Sendable, Equatable {
    public enum Dimension: Sendable, Equatable, CustomStringConvertible {
        case fixed(Int)
        /// A named dynamic dimension (`batch`), or an anonymous one (`nil`).
        case symbolic(String?)

        public var value: Int? { if case let .fixed(v) = self { return v } else { return nil } }
        public var description: String {
            switch self {
            case let .fixed(v): return String(v)
            case let .symbolic(name): return name ?? "?"
            }
        }
    }

    public var name: String
    public var elementType: ElementType
    public var shape: [Dimension]?

    public init(name: String, elementType: ElementType = .float32, shape: [Dimension]?) {
        self.name = name
        self.elementType = elementType
        self.shape = shape
    }
}

/// The element types LiteCNN's graphs carry (ONNX `TensorProto.DataType` numbers).
public enum ElementType: Int, Sendable, Equatable, CustomStringConvertible {
    case float32 = 1
    case uint8 = 2
    case int8 = 3
    case int32 = 6
    case int64 = 7
    case bool = 9
    case float16 = 10
    case float64 = 11

    public var description: String {
        switch self {
        case .float32: return "float32"
        case .uint8: return "uint8"
        case .int8: return "int8"
        case .int32: return "int32"
        case .int64: return "int64"
        case .bool: return "bool"
        case .float16: return "float16"
        case .float64: return "float64"
        }
    }
}

/// A constant value of the graph (initializer, `Constant` node output, folded shape arithmetic).
public enum Constant: Sendable, Equatable {
    /// Float data (float16/float64 inputs are converted to float32 on import). Shape in ONNX order.
    case float(Tensor)
    /// Integer data (int32/int64/bool/uint8/int8 inputs widened to Int). Shape in ONNX order; `[]` is a scalar.
    case int([Int], shape: [Int])

    public var shape: [Int] {
        switch self {
        case let .float(t): return t.shape
        case let .int(_, shape): return shape
        }
    }
}

/// One operator application.
public struct Node: Sendable, Equatable {
    /// The node's name in the file (may be empty in files; import fills it with `op_type` + index).
    public var name: String
    /// The ONNX operator (`Conv`, `Relu`, …); `domain` is "" for the default ONNX domain.
    public var opType: String
    public var domain: String
    /// Input value names in ONNX order; "" marks an omitted optional input.
    public var inputs: [String]
    public var outputs: [String]
    public var attributes: [String: Attribute]

    public init(name: String, opType: String, domain: String = "", inputs: [String], outputs: [String],
                attributes: [String: Attribute] = [:]) {
        self.name = name
        self.opType = opType
        self.domain = domain
        self.inputs = inputs
        self.outputs = outputs
        self.attributes = attributes
    }
}

/// An ONNX attribute value.
public enum Attribute: Sendable, Equatable {
    case int(Int)
    case ints([Int])
    case float(Float)
    case floats([Float])
    case string(String)
    case strings([String])
    case tensor(Constant)
}

extension Node {
    public func int(_ key: String) -> Int? { if case let .int(v)? = attributes[key] { return v } else { return nil } }
    public func ints(_ key: String) -> [Int]? { if case let .ints(v)? = attributes[key] { return v } else { return nil } }
    public func float(_ key: String) -> Float? { if case let .float(v)? = attributes[key] { return v } else { return nil } }
    public func string(_ key: String) -> String? { if case let .string(v)? = attributes[key] { return v } else { return nil } }
}

/// Errors about a graph that came from a file or a user: each names the node, the operator and the opset.
public struct GraphError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var node: String?
    public var opType: String?
    public var opset: Int?

    public init(_ message: String, node: String? = nil, opType: String? = nil, opset: Int? = nil) {
        self.message = message
        self.node = node
        self.opType = opType
        self.opset = opset
    }

    public init(_ message: String, at node: Node, opset: Int) {
        self.init(message, node: node.name, opType: node.opType, opset: opset)
    }

    public var description: String {
        var where_: [String] = []
        if let node { where_.append("node '\(node)'") }
        if let opType { where_.append("operator \(opType)") }
        if let opset { where_.append("opset \(opset)") }
        return where_.isEmpty ? message : "\(where_.joined(separator: ", ")): \(message)"
    }
}
