// CONTRACT SKELETON (helper F replaces the bodies; signatures are shared with the rest of the module).
import LiteCNNGraph
import LiteCNNTensor

/// What the cloud measured for one operator of a bank.
public struct OperatorMeasurement: Sendable, Codable, Equatable {
    public var parameters: Int
    public var multiplyAdds: Int
    public var latencyMs: Double?
    public var top1: Double?
    public var distillationError: Double?
    public init(parameters: Int, multiplyAdds: Int, latencyMs: Double? = nil, top1: Double? = nil, distillationError: Double? = nil) {
        self.parameters = parameters; self.multiplyAdds = multiplyAdds; self.latencyMs = latencyMs; self.top1 = top1
        self.distillationError = distillationError
    }
}

public struct BankEntry: Sendable, Equatable {
    public var op: PluggableOperator
    public var measurement: OperatorMeasurement
    public init(op: PluggableOperator, measurement: OperatorMeasurement) { self.op = op; self.measurement = measurement }
}

public struct BaseMeasurement: Sendable, Codable, Equatable {
    public var top1: Double?
    public var top5: Double?
    public var multiplyAdds: Int
    public var parameters: Int
    public var latencyMs: Double?
    public var slotLatencyMs: [Double]?
    public init(top1: Double? = nil, top5: Double? = nil, multiplyAdds: Int, parameters: Int, latencyMs: Double? = nil,
                slotLatencyMs: [Double]? = nil) {
        self.top1 = top1; self.top5 = top5; self.multiplyAdds = multiplyAdds; self.parameters = parameters
        self.latencyMs = latencyMs; self.slotLatencyMs = slotLatencyMs
    }
}

public struct OperatorBank: Sendable, Equatable {
    public var baseFingerprint: UInt32
    public var imageShape: [Int]
    public var slots: [OperatorSlot]
    public var base: BaseMeasurement
    public var entries: [BankEntry]
    public var metadata: [String: String]
    public init(baseFingerprint: UInt32, imageShape: [Int], slots: [OperatorSlot], base: BaseMeasurement,
                entries: [BankEntry], metadata: [String: String] = [:]) {
        self.baseFingerprint = baseFingerprint; self.imageShape = imageShape; self.slots = slots; self.base = base
        self.entries = entries; self.metadata = metadata
    }
    public func entries(forSlot slot: Int) -> [Int] { entries.indices.filter { entries[$0].op.slot.index == slot } }
    public func validate(against graph: Graph) throws { fatalError("skeleton") }
}

public enum BaseFingerprint {
    public static func of(_ graph: Graph) -> UInt32 { fatalError("skeleton") }
}
