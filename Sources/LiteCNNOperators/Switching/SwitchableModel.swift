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
    /// The bank; `calibrateLatency` replaces its latency figures with this device's.
    public var bank: OperatorBank {
        lock.lock(); defer { lock.unlock() }
        return currentBank
    }
    public let engine: InferenceEngine
    public let groups: [SwitchableGraph.Group]
    private let lock = NSLock()
    private var current: OperatorConfiguration
    private var currentBank: OperatorBank

    /// Loads base + bank. Throws `OperatorBankError` when the bank was built for another base.
    public init(base: Graph, bank: OperatorBank, threads: Int? = nil) throws {
        try bank.validate(against: base)
        let (graph, groups) = try SwitchableGraph.switchable(base: base, bank: bank)
        self.base = base
        self.currentBank = bank
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

    /// Measures on this device, in the running network, the time of every slot's unit and of every operator, and
    /// puts them in place of the bank's latency figures (`bank.base.latencyMs`, `slotLatencyMs`, each entry's
    /// `latencyMs`), so that latency budgets are predicted for this device. Returns the seconds it took.
    ///
    /// How: the engine's per-step profile (`InferenceEngine.profile`, median of `runs`) at the base selection gives each
    /// unit's steps in context — with the caches in the state the rest of the network leaves them, which a layer timed
    /// alone does not see (at 32×32 ResNet-18's last stages read their weights from memory in the network but from
    /// cache when timed alone); then one profile per alternative number times that alternative in every group at once.
    @discardableResult
    public func calibrateLatency(runs: Int = 15) throws -> Double {
        let start = DispatchTime.now().uptimeNanoseconds
        var bank = self.bank
        let saved = engine.selection
        defer { try? engine.select(saved) }
        let input = Tensor(shape: [1] + bank.imageShape, scalars: (0..<bank.imageShape.reduce(1, *)).map { Float($0 % 13) / 13 - 0.5 },
                           layout: .nchw)
        var unitGroup: [String: Int] = [:]
        for (g, group) in groups.enumerated() {
            for name in bank.slots[group.slot].nodes { unitGroup[name] = g }
        }
        func entryOf(_ node: String) -> Int? {
            guard node.hasPrefix("bank/"), let slash = node.dropFirst(5).firstIndex(of: "/") else { return nil }
            return Int(node.dropFirst(5)[..<slash])
        }
        let maxAlternatives = groups.map(\.entries.count).max() ?? 0
        var slotLatency = bank.base.slotLatencyMs ?? Array(repeating: 0, count: bank.slots.count)
        for a in 0...maxAlternatives {
            try engine.select(groups.map { a <= $0.entries.count ? a : 0 })
            let timed = Set(groups.compactMap { a >= 1 && a <= $0.entries.count ? $0.entries[a - 1] : nil })
            let steps = try engine.profile(input, runs: runs)
            if a == 0 { bank.base.latencyMs = steps.reduce(0) { $0 + $1.milliseconds } }
            var perGroup = [Double](repeating: 0, count: groups.count), perEntry: [Int: Double] = [:]
            for step in steps {
                if a == 0, let g = unitGroup[step.node] { perGroup[g] += step.milliseconds }
                if let e = entryOf(step.node), timed.contains(e) { perEntry[e, default: 0] += step.milliseconds }
            }
            if a == 0 { for (g, group) in groups.enumerated() { slotLatency[group.slot] = perGroup[g] } }
            for (e, ms) in perEntry { bank.entries[e].measurement.latencyMs = ms }
        }
        bank.base.slotLatencyMs = slotLatency
        lock.lock()
        currentBank = bank
        lock.unlock()
        return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    }

    /// The current configuration as an ordinary graph (for `litecnn export`, or to run without the bank).
    public func configuredGraph() throws -> Graph {
        try SwitchableGraph.configured(configuration, base: base, bank: bank)
    }
}
