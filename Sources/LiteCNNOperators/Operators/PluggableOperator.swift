// CONTRACT SKELETON (helper O replaces the bodies; signatures are shared with the rest of the module).
import LiteCNNGraph
import LiteCNNTensor

/// The five lighter operators that can replace a slot's unit.
public enum OperatorKind: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case bottleneck
    case lowRank = "lowrank"
    case multiBranch = "multibranch"
    case fire
    case depthwise

    public var description: String { rawValue }
    /// Whether β (the inner width) means something for this kind.
    public var usesBeta: Bool { fatalError("skeleton") }
    /// β when the user gives none.
    public var defaultBeta: Double { fatalError("skeleton") }
    /// Whether the operator can replace `slot` exactly in shape.
    public func isApplicable(to slot: OperatorSlot) -> Bool { fatalError("skeleton") }
}

/// BatchNormalization constants, per channel.
public struct BatchNormParameters: Sendable, Equatable {
    public var scale: [Float]
    public var bias: [Float]
    public var mean: [Float]
    public var variance: [Float]
    public var epsilon: Float
    public init(scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) {
        self.scale = scale; self.bias = bias; self.mean = mean; self.variance = variance; self.epsilon = epsilon
    }
}

/// One operator prepared for one slot: its kind, β, and its own parameters (parameter separation).
public struct PluggableOperator: Sendable, Equatable {
    public var kind: OperatorKind
    public var beta: Double
    public var slot: OperatorSlot
    /// Parameters and BatchNorm statistics by local name, ONNX layouts (conv weights OIHW).
    public var tensors: [String: Tensor]

    public init(kind: OperatorKind, beta: Double, slot: OperatorSlot, tensors: [String: Tensor]) {
        self.kind = kind; self.beta = beta; self.slot = slot; self.tensors = tensors
    }

    public static func innerChannels(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int { fatalError("skeleton") }
    public static func multiplyAdds(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int { fatalError("skeleton") }
    public static func parameterCount(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int { fatalError("skeleton") }
    public static func tensorShapes(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> [String: [Int]] { fatalError("skeleton") }
    public var multiplyAdds: Int { Self.multiplyAdds(kind: kind, beta: beta, slot: slot) }
    public var parameterCount: Int { Self.parameterCount(kind: kind, beta: beta, slot: slot) }

    public func nodes(input: String, output: String, prefix: String) -> (nodes: [Node], initializers: [String: Constant]) {
        fatalError("skeleton")
    }
    public func standaloneGraph() -> Graph { fatalError("skeleton") }
    public static func initialized(kind: OperatorKind, beta: Double, slot: OperatorSlot, weight: Tensor, bias: Tensor?,
                                   batchNorm: BatchNormParameters?, seed: UInt64 = 0) throws -> PluggableOperator {
        fatalError("skeleton")
    }
    public mutating func adoptTensors(from graph: Graph) throws { fatalError("skeleton") }
}
