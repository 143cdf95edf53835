// CONTRACT SKELETON (helper F replaces the bodies; signatures are shared with the rest of the module).

/// A budget for the device.
public enum Budget: Sendable, Equatable {
    case multiplyAdds(Int)
    case latencyMs(Double)
    /// Weight memory in bytes (fp32 parameters and BatchNorm statistics of the whole network).
    case weightBytes(Int)
}

/// Which operator serves each slot: `choices[slot]` is a bank entry index, or nil for the base unit.
public struct OperatorConfiguration: Sendable, Equatable, Codable {
    public var choices: [Int?]
    public init(choices: [Int?]) { self.choices = choices }
    public static func base(slotCount: Int) -> OperatorConfiguration { OperatorConfiguration(choices: Array(repeating: nil, count: slotCount)) }
}

/// The cost and accuracy a bank's measurements predict for a configuration.
public struct ConfigurationPrediction: Sendable, Equatable, Codable {
    public var multiplyAdds: Int
    public var parameters: Int
    public var weightBytes: Int
    public var latencyMs: Double?
    public var top1: Double?
}

public enum OperatorSelection {
    public static func predict(_ configuration: OperatorConfiguration, bank: OperatorBank) -> ConfigurationPrediction { fatalError("skeleton") }
    public static func select(bank: OperatorBank, budget: Budget, kinds: Set<OperatorKind>? = nil) throws -> OperatorConfiguration { fatalError("skeleton") }
    public static func uniform(bank: OperatorBank, kind: OperatorKind, beta: Double) -> OperatorConfiguration { fatalError("skeleton") }
}
