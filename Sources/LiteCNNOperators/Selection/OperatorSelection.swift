// Choosing which operator serves each slot: predicted cost and accuracy, and the best choice under a budget.
import Foundation

/// A budget for the device.
public enum Budget: Sendable, Equatable {
    case multiplyAdds(Int)
    case latencyMs(Double)
    /// Weight memory in bytes: 4 bytes per trainable parameter (`ConfigurationPrediction.weightBytes`).
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
    public init(multiplyAdds: Int, parameters: Int, weightBytes: Int, latencyMs: Double?, top1: Double?) {
        self.multiplyAdds = multiplyAdds; self.parameters = parameters; self.weightBytes = weightBytes
        self.latencyMs = latencyMs; self.top1 = top1
    }
}

/// Why no configuration could be selected: a budget below the cheapest configuration, or measurements the budget or
/// the ranking needs are missing. The message names the budget and, when infeasible, the cheapest achievable cost.
public struct SelectionError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Predicts and selects operator configurations from a bank's one-slot-at-a-time measurements.
public enum OperatorSelection {
    /// The bank's prediction for `configuration`, with `R` its replaced slots and `e_s` the entry serving slot `s`:
    /// - `multiplyAdds = base.multiplyAdds − Σ_{s∈R} (slot_s.multiplyAdds − e_s.multiplyAdds)`;
    /// - `parameters = base.parameters − Σ_{s∈R} (slot_s.parameterCount − e_s.parameters)`, `weightBytes = 4·parameters`;
    /// - `latencyMs = base.latencyMs − Σ_{s∈R} (base.slotLatencyMs[s] − e_s.latencyMs)`, nil when a term is missing;
    /// - `top1 = base.top1 − Σ_{s∈R} max(0, base.top1 − e_s.top1)`, nil when a term is missing.
    ///
    /// Precondition: one choice per slot, each nil or an entry of that slot.
    public static func predict(_ configuration: OperatorConfiguration, bank: OperatorBank) -> ConfigurationPrediction {
        precondition(configuration.choices.count == bank.slots.count,
                     "OperatorSelection.predict: \(configuration.choices.count) choices for \(bank.slots.count) slots")
        var multiplyAdds = bank.base.multiplyAdds, parameters = bank.base.parameters
        var latency = bank.base.latencyMs, top1 = bank.base.top1
        for (s, choice) in configuration.choices.enumerated() {
            guard let e = choice else { continue }
            precondition(bank.entries.indices.contains(e) && bank.entries[e].op.slot.index == s,
                         "OperatorSelection.predict: entry \(e) does not serve slot \(s)")
            let m = bank.entries[e].measurement, slot = bank.slots[s]
            multiplyAdds -= slot.multiplyAdds - m.multiplyAdds
            parameters -= slot.parameterCount - m.parameters
            if let l = latency, let slotLatency = bank.base.slotLatencyMs?[s], let entryLatency = m.latencyMs {
                latency = l - (slotLatency - entryLatency)
            } else {
                latency = nil
            }
            if let t = top1, let baseTop1 = bank.base.top1, let entryTop1 = m.top1 {
                top1 = t - max(0, baseTop1 - entryTop1)
            } else {
                top1 = nil
            }
        }
        return ConfigurationPrediction(multiplyAdds: multiplyAdds, parameters: parameters, weightBytes: 4 * parameters,
                                       latencyMs: latency, top1: top1)
    }

    /// Buckets of the discretized budget in `select`.
    public static let budgetBuckets = 4000

    /// The configuration of least predicted accuracy loss whose predicted cost (`predict`) fits `budget`, using only
    /// entries of `kinds` (all kinds when nil).
    ///
    /// **Problem.** Each slot `s` takes the base unit (loss 0) or one entry `e` with loss
    /// `ℓ_e = e.outputDivergence + 10⁻⁶·e.distillationError` (the KL divergence of the network's output with only this
    /// slot swapped) — or, in banks without divergences, `max(0, base.top1 − e.top1) + 10⁻⁶·e.distillationError`, or
    /// `e.distillationError·(1 + 10⁻⁶)` without top-1 measurements (the 10⁻⁶ term breaks ties towards the more
    /// faithful operator). The divergence is preferred: on ResNet-18 (shapes, 800 test images) the one-slot top-1
    /// losses are mostly below the 0.125-point resolution of the test set, their sum predicted no loss at half the
    /// multiply-adds, and the configuration chosen by them lost 3.9 points. Minimize `Σ_s ℓ_s`
    /// subject to `Σ_s c_s ≤ budget − (total − Σ_s c_s^base)`, where `c` is the slot's cost under its choice
    /// (multiply-adds, `4·parameters`, or latency). This is a **multiple-choice knapsack**: the bank measures each
    /// operator with every other slot on the base unit, so to first order the losses of different slots add (as do
    /// their costs), and exactly one item is picked per slot.
    ///
    /// **Algorithm.** Costs above each slot's cheapest choice are divided by `q = capacity / 4000` (by 1 when the budget
    /// is in whole units and the spare capacity is at most 4000) and rounded **up**, so every configuration the dynamic
    /// program accepts fits the budget; the program then finds the least-loss one exactly over these integer costs:
    /// `dp_s[b] = min_c (dp_{s−1}[b − w_c] + ℓ_c)`, `O(B · Σ_s |choices_s|)` time and `O(B · slots)` memory for
    /// `B ≤ 4000` buckets. It can miss the true optimum only when that lies within `slots · q` of the budget. The result
    /// is verified with `predict`'s exact numbers, then improved greedily with them: while switching one slot to a
    /// choice of lower loss still fits the budget, the best such switch is made. (When the least-loss choice of every
    /// slot fits, it is returned without the program.)
    ///
    /// Throws `SelectionError` when even the cheapest configuration exceeds the budget (naming both), when a latency
    /// budget meets a bank without latency measurements, or when an allowed entry has no loss measurement.
    public static func select(bank: OperatorBank, budget: Budget, kinds: Set<OperatorKind>? = nil) throws -> OperatorConfiguration {
        let n = bank.slots.count
        var candidates: [[Int?]] = (0..<n).map { _ in [nil] }
        for (e, entry) in bank.entries.enumerated() where kinds?.contains(entry.op.kind) ?? true {
            let s = entry.op.slot.index
            precondition(candidates.indices.contains(s), "OperatorSelection.select: entry \(e) names slot \(s) of \(n)")
            candidates[s].append(e)
        }
        let allowed = candidates.flatMap { $0.compactMap { $0 } }
        func label(_ e: Int) -> String {
            let op = bank.entries[e].op
            return "entry \(e) (slot \(op.slot.index), \(op.kind) β \(op.beta))"
        }

        // Costs per slot and choice, and the budget's value.
        let cost: (Int, Int?) -> Double, limit: Double, integral: Bool, value: (ConfigurationPrediction) -> Double?
        let unit: String
        switch budget {
        case let .multiplyAdds(b):
            cost = { s, c in Double(c.map { bank.entries[$0].measurement.multiplyAdds } ?? bank.slots[s].multiplyAdds) }
            limit = Double(b); integral = true; unit = "multiply-adds"; value = { Double($0.multiplyAdds) }
        case let .weightBytes(b):
            cost = { s, c in 4 * Double(c.map { bank.entries[$0].measurement.parameters } ?? bank.slots[s].parameterCount) }
            limit = Double(b); integral = true; unit = "weight bytes"; value = { Double($0.weightBytes) }
        case let .latencyMs(b):
            guard bank.base.latencyMs != nil, let slotLatency = bank.base.slotLatencyMs, slotLatency.count == n else {
                throw SelectionError("a latency budget needs the bank's latency measurements: the base has no "
                                     + "\(bank.base.latencyMs == nil ? "latency" : "per-slot latency")")
            }
            if let e = allowed.first(where: { bank.entries[$0].measurement.latencyMs == nil }) {
                throw SelectionError("a latency budget needs the latency of every operator: \(label(e)) has none "
                                     + "(restrict the kinds or use a multiply-add budget)")
            }
            cost = { s, c in c.map { bank.entries[$0].measurement.latencyMs! } ?? slotLatency[s] }
            limit = b; integral = false; unit = "ms"; value = { $0.latencyMs }
        }

        // Losses: the output divergence when every allowed entry has one, else the top-1 loss, else the distillation
        // error.
        let baseTop1 = bank.base.top1
        let useDivergence = allowed.allSatisfy { bank.entries[$0].measurement.outputDivergence != nil }
        let useTop1 = baseTop1 != nil && allowed.allSatisfy { bank.entries[$0].measurement.top1 != nil }
        if !useDivergence, !useTop1, let e = allowed.first(where: { bank.entries[$0].measurement.distillationError == nil }) {
            throw SelectionError("cannot rank \(label(e)): the bank has neither output divergences nor top-1 measurements "
                                 + "for every operator (and the base) nor a distillation error for this one")
        }
        func loss(_ choice: Int?) -> Double {
            guard let e = choice else { return 0 }
            let m = bank.entries[e].measurement, d = m.distillationError ?? 0
            if useDivergence, let kl = m.outputDivergence { return kl + 1e-6 * d }
            if useTop1, let b = baseTop1, let t = m.top1 { return max(0, b - t) + 1e-6 * d }
            return d + 1e-6 * d
        }
        func text(_ v: Double) -> String {
            integral && abs(v) < 0x1p62 ? "\(Int(v.rounded())) \(unit)" : String(format: "%.4g \(unit)", v)
        }
        func fits(_ configuration: OperatorConfiguration) -> Bool {
            guard let v = value(predict(configuration, bank: bank)) else { return false }
            return v <= limit
        }

        // The cheapest configuration (ties to the lower loss) decides feasibility.
        let costs = (0..<n).map { s in candidates[s].map { cost(s, $0) } }
        var cheapest = OperatorConfiguration.base(slotCount: n)
        for s in 0..<n {
            let best = candidates[s].indices.min { (costs[s][$0], loss(candidates[s][$0])) < (costs[s][$1], loss(candidates[s][$1])) }!
            cheapest.choices[s] = candidates[s][best]
        }
        let cheapestValue = value(predict(cheapest, bank: bank)) ?? .infinity
        guard cheapestValue <= limit else {
            throw SelectionError("budget \(text(limit)) is below the cheapest configuration the bank allows: "
                                 + "\(text(cheapestValue))")
        }

        // When the least-loss choice of every slot fits, nothing is to be traded.
        var unconstrained = cheapest
        for s in 0..<n {
            let best = candidates[s].indices.min { (loss(candidates[s][$0]), costs[s][$0]) < (loss(candidates[s][$1]), costs[s][$1]) }!
            unconstrained.choices[s] = candidates[s][best]
        }
        if fits(unconstrained) { return unconstrained }

        // Dynamic program over spare capacity in buckets, costs rounded up; shrink the capacity if rounding in floating
        // point ever lets a configuration through that the exact numbers reject.
        let spare = (0..<n).map { s in costs[s].map { $0 - costs[s].min()! } }
        let capacity = limit - cheapestValue
        var chosen = cheapest
        for shrink in [0, 1e-9, 1e-6, 1e-3] {
            let room = capacity * (1 - shrink)
            let q = integral && room <= Double(budgetBuckets) ? 1 : max(room / Double(budgetBuckets), .leastNonzeroMagnitude)
            let buckets = max(0, min(budgetBuckets, Int((room / q).rounded(.down))))
            let configuration = solve(candidates: candidates, spare: spare, q: q, buckets: buckets, loss: loss)
            if fits(configuration) {
                chosen = configuration
                break
            }
        }

        // Take back what rounding cost: while some slot can switch to a choice of lower loss that still fits exactly,
        // make the best such switch.
        func total(_ c: OperatorConfiguration) -> Double { c.choices.reduce(0) { $0 + loss($1) } }
        while true {
            var best: (configuration: OperatorConfiguration, loss: Double)?
            for s in 0..<n {
                for choice in candidates[s] where loss(choice) < loss(chosen.choices[s]) {
                    var c = chosen
                    c.choices[s] = choice
                    let l = total(c)
                    if l < best?.loss ?? total(chosen), fits(c) { best = (c, l) }
                }
            }
            guard let better = best else { return chosen }
            chosen = better.configuration
        }
    }

    /// The multiple-choice knapsack over `buckets + 1` integer capacities: weights `⌈spare / q⌉`.
    private static func solve(candidates: [[Int?]], spare: [[Double]], q: Double, buckets: Int,
                              loss: (Int?) -> Double) -> OperatorConfiguration {
        let n = candidates.count
        var best = [Double](repeating: .infinity, count: buckets + 1)
        best[0] = 0
        var pick = [[Int32]](repeating: [Int32](repeating: -1, count: buckets + 1), count: n)
        var weights: [[Int]] = []
        for s in 0..<n {
            let w = spare[s].map { c -> Int in
                let units = (c / q).rounded(.up)
                return units <= Double(buckets) ? max(0, Int(units)) : -1  // -1: never fits
            }
            weights.append(w)
            let losses = candidates[s].map(loss)
            var next = [Double](repeating: .infinity, count: buckets + 1)
            for b in 0...buckets where best[b] < .infinity {
                for j in candidates[s].indices where w[j] >= 0 && b + w[j] <= buckets {
                    let total = best[b] + losses[j]
                    if total < next[b + w[j]] {
                        next[b + w[j]] = total
                        pick[s][b + w[j]] = Int32(j)
                    }
                }
            }
            best = next
        }
        var b = best.indices.min { best[$0] < best[$1] }!
        var choices = [Int?](repeating: nil, count: n)
        for s in stride(from: n - 1, through: 0, by: -1) {
            let j = Int(pick[s][b])
            choices[s] = candidates[s][j]
            b -= weights[s][j]
        }
        return OperatorConfiguration(choices: choices)
    }

    /// Every slot that has an entry of `kind` and `beta` (equal within 10⁻⁹ relative) gets its first such entry; the
    /// other slots keep the base unit.
    public static func uniform(bank: OperatorBank, kind: OperatorKind, beta: Double) -> OperatorConfiguration {
        var configuration = OperatorConfiguration.base(slotCount: bank.slots.count)
        for s in bank.slots.indices {
            configuration.choices[s] = bank.entries(forSlot: s).first {
                bank.entries[$0].op.kind == kind && abs(bank.entries[$0].op.beta - beta) <= 1e-9 * max(1, abs(beta))
            }
        }
        return configuration
    }
}
