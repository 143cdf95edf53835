// The device side: a running model whose operators are chosen, and changed, by budget.
import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor

/// A base network and its operator bank, compiled once, that runs any configuration of the bank and switches between
/// them while running.
///
/// ```swift
/// let model = try SwitchableModel(base: graph, bank: try OperatorBankFile.read(from: bankURL))
/// let (configuration, prediction) = try model.configure(budget: .multiplyAdds(300_000_000))
/// let logits = try model.run(images)          // NCHW [N, C, H, W] → [N, classes]
/// ```
///
/// - **Load**: checks the bank against the base (fingerprint and slot shapes), builds the switchable graph
///   (`SwitchableGraph.switchable`) and compiles it: every operator's weights are packed once, beside the base's.
/// - **Switch** (`apply`, `configure`): changes the runtime's selection; no compilation, no allocation, no reload of
///   the base. Runs already started finish with the configuration they began with, so no run ever mixes two
///   configurations; runs are serialized by the engine (one arena).
public final class SwitchableModel: @unchecked Sendable {
    public let base: Graph
    public let bank: OperatorBank
    public let engine: InferenceEngine
    public let groups: [SwitchableGraph.Group]
    private let lock = NSLock()
    private var current: OperatorConfiguration

    /// Loads base + bank. Throws `OperatorBankError` when the bank was built for another base.
    public init(base: Graph, bank: OperatorBank, threads: Int? = nil) throws {
        try bank.validate(against: base)
        let (graph, groups) = try SwitchableGraph.switchable(base: base, bank: bank)
        self.base = base
        self.bank = bank
        self.groups = groups
        self.engine = try InferenceEngine(graph: graph, options: InferenceOptions(threads: threads))
        self.current = .base(slotCount: bank.slots.count)
        let shape = [1] + bank.imageShape
        try engine.prepare(inputShape: shape)
    }

    /// The configuration runs started from now on use.
    public var configuration: OperatorConfiguration {
        lock.lock(); defer { lock.unlock() }
        return current
    }

    /// Switches to `configuration`; returns the seconds the switch took. Throws (and keeps the current configuration)
    /// when an entry does not belong to its slot.
    @discardableResult
    public func apply(_ configuration: OperatorConfiguration) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        let selection = try SwitchableGraph.selection(for: configuration, groups: groups, bank: bank)
        lock.lock(); defer { lock.unlock() }
        try engine.select(selection)
        current = configuration
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// Selects the configuration that minimizes the predicted accuracy loss under `budget` (`OperatorSelection`) and
    /// switches to it.
    @discardableResult
    public func configure(budget: Budget, kinds: Set<OperatorKind>? = nil) throws
        -> (configuration: OperatorConfiguration, prediction: ConfigurationPrediction, switchSeconds: Double) {
        let configuration = try OperatorSelection.select(bank: bank, budget: budget, kinds: kinds)
        let seconds = try apply(configuration)
        return (configuration, OperatorSelection.predict(configuration, bank: bank), seconds)
    }

    /// Runs NCHW `[N, C, H, W]` images; returns the network's output (`[N, classes]`).
    public func run(_ input: Tensor) throws -> Tensor { try engine.run(input) }

    /// Runs NHWC `[N, H, W, C]` images without a layout copy.
    public func runNHWC(_ input: Tensor) throws -> Tensor { try engine.runNHWC(input) }

    /// The current configuration as an ordinary graph (for `litecnn export`, or to run without the bank).
    public func configuredGraph() throws -> Graph {
        try SwitchableGraph.configured(configuration, base: base, bank: bank)
    }
}
