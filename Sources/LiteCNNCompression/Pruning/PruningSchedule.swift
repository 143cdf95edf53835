// Pruning schedules: gradual pruning (Zhu & Gupta 2017, "To prune, or not to prune: exploring the efficacy of pruning
// for model compression", arXiv:1710.01878) and iterative prune → fine-tune rounds (Han et al. 2015, arXiv:1506.02626).
import Foundation
import LiteCNNLayers
import LiteCNNTensor
import LiteCNNTraining

/// Zhu & Gupta's automated gradual pruner (AGP): the sparsity rises from `initialSparsity` to `finalSparsity` over
/// `n` pruning steps `Δt` apart, starting at step `startStep` = t₀:
///
///     s_t = s_f + (s_i − s_f) · (1 − (t − t₀) / (n·Δt))³     for t ∈ {t₀, t₀ + Δt, …, t₀ + n·Δt}
///
/// Between pruning steps the sparsity stays at the last pruning step's value; before t₀ it is 0 (nothing pruned yet),
/// from `endStep` = t₀ + n·Δt on it is s_f. Steps are optimizer steps (the trainer's `globalStep`).
///
/// String form (`description`, `init(parsing:)`): `agp:S_I-S_F@T0-T_END/DT`, e.g. `agp:0.0-0.67@0-300/50`
/// (0 → 67 % between steps 0 and 300, pruning every 50 steps). `T_END − T0` must be a positive multiple of `DT`.
public struct GradualPruningSchedule: Sendable, Codable, Equatable, CustomStringConvertible {
    public var initialSparsity: Double
    public var finalSparsity: Double
    public var startStep: Int
    public var endStep: Int
    public var frequency: Int

    public init(initialSparsity: Double = 0, finalSparsity: Double, startStep: Int = 0, endStep: Int, frequency: Int) {
        precondition((0...1).contains(initialSparsity) && (0...1).contains(finalSparsity),
                     "GradualPruningSchedule: sparsities must lie in [0, 1], got \(initialSparsity) and \(finalSparsity)")
        precondition(startStep >= 0 && frequency >= 1 && endStep > startStep && (endStep - startStep) % frequency == 0,
                     "GradualPruningSchedule: need 0 ≤ start < end and (end − start) a multiple of the frequency, got \(startStep)-\(endStep)/\(frequency)")
        self.initialSparsity = initialSparsity
        self.finalSparsity = finalSparsity
        self.startStep = startStep
        self.endStep = endStep
        self.frequency = frequency
    }

    /// n, the number of pruning steps after the first.
    public var pruningSteps: Int { (endStep - startStep) / frequency }

    /// The target sparsity in force at optimizer step `step`.
    public func sparsity(atStep step: Int) -> Double {
        if step < startStep { return 0 }
        if step >= endStep { return finalSparsity }
        let last = startStep + (step - startStep) / frequency * frequency
        let progress = Double(last - startStep) / Double(endStep - startStep)
        let remaining = 1 - progress
        return finalSparsity + (initialSparsity - finalSparsity) * remaining * remaining * remaining
    }

    /// Whether the masks are recomputed at `step` (t₀, t₀ + Δt, …, t₀ + n·Δt).
    public func isPruningStep(_ step: Int) -> Bool {
        step >= startStep && step <= endStep && (step - startStep) % frequency == 0
    }

    public var description: String {
        "agp:\(formatFraction(initialSparsity))-\(formatFraction(finalSparsity))@\(startStep)-\(endStep)/\(frequency)"
    }
}

/// Iterative pruning: round `r` prunes to `sparsities[r]` and then fine-tunes for `stepsPerRound` optimizer steps
/// (Han et al.: prune → retrain → prune more). Sparsities must not decrease.
///
/// String form: `iterative:0.3,0.5,0.67` (the fine-tuning budget is split evenly between the rounds) or
/// `iterative:0.3,0.5,0.67@200` (200 optimizer steps per round).
public struct IterativePruningSchedule: Sendable, Codable, Equatable, CustomStringConvertible {
    public var sparsities: [Double]
    /// Optimizer steps of fine-tuning after each pruning round; `nil` divides the run's steps evenly.
    public var stepsPerRound: Int?

    public init(sparsities: [Double], stepsPerRound: Int? = nil) {
        precondition(!sparsities.isEmpty, "IterativePruningSchedule: no rounds")
        precondition(sparsities.allSatisfy { (0...1).contains($0) }, "IterativePruningSchedule: sparsities must lie in [0, 1]")
        precondition(zip(sparsities, sparsities.dropFirst()).allSatisfy { $0 <= $1 }, "IterativePruningSchedule: sparsities decrease")
        precondition(stepsPerRound.map { $0 >= 1 } ?? true, "IterativePruningSchedule: steps per round must be positive")
        self.sparsities = sparsities
        self.stepsPerRound = stepsPerRound
    }

    /// Steps of one round when the whole run has `totalSteps` steps.
    public func roundLength(totalSteps: Int) -> Int {
        stepsPerRound ?? max(1, totalSteps / sparsities.count)
    }

    /// The target sparsity in force at `step` of a run of `totalSteps` steps.
    public func sparsity(atStep step: Int, totalSteps: Int) -> Double {
        let round = min(max(step, 0) / roundLength(totalSteps: totalSteps), sparsities.count - 1)
        return sparsities[round]
    }

    public var description: String {
        "iterative:" + sparsities.map(formatFraction).joined(separator: ",") + (stepsPerRound.map { "@\($0)" } ?? "")
    }
}

/// How the sparsity of unstructured pruning evolves during fine-tuning — what `litecnn compress --prune-schedule` takes.
///
/// String forms (`init(parsing:)`; `description` writes them back):
/// - `0.67` or `oneshot:0.67` — prune once to 67 % before fine-tuning;
/// - `iterative:0.3,0.5,0.67[@STEPS]` — see `IterativePruningSchedule`;
/// - `agp:S_I-S_F@T0-T_END/DT` — see `GradualPruningSchedule`.
public enum PruningSchedule: Sendable, Codable, Equatable, CustomStringConvertible {
    case oneShot(Double)
    case iterative(IterativePruningSchedule)
    case gradual(GradualPruningSchedule)

    /// Parses the string form; throws `PruningScheduleError` naming the part that is wrong.
    public init(parsing text: String) throws {
        let spec = text.trimmingCharacters(in: .whitespaces)
        func fraction(_ s: Substring, _ what: String) throws -> Double {
            guard let v = Double(s.trimmingCharacters(in: .whitespaces)), v.isFinite, (0...1).contains(v) else {
                throw PruningScheduleError(spec: text, message: "\(what) '\(s)' is not a fraction in [0, 1]")
            }
            return v
        }
        func integer(_ s: Substring, _ what: String) throws -> Int {
            guard let v = Int(s.trimmingCharacters(in: .whitespaces)), v >= 0 else {
                throw PruningScheduleError(spec: text, message: "\(what) '\(s)' is not a non-negative integer")
            }
            return v
        }
        let parts = spec.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
        if parts.count == 1 {
            self = .oneShot(try fraction(parts[0], "sparsity"))
            return
        }
        let kind = parts[0].lowercased(), body = parts[1]
        switch kind {
        case "oneshot", "one-shot":
            self = .oneShot(try fraction(body, "sparsity"))
        case "iterative":
            let pieces = body.split(separator: "@", omittingEmptySubsequences: false)
            guard pieces.count <= 2, !pieces[0].isEmpty else {
                throw PruningScheduleError(spec: text, message: "expected iterative:S1,S2,…[@STEPS]")
            }
            let values = try pieces[0].split(separator: ",", omittingEmptySubsequences: false).map { try fraction($0, "sparsity") }
            guard zip(values, values.dropFirst()).allSatisfy({ $0 <= $1 }) else {
                throw PruningScheduleError(spec: text, message: "the sparsities of the rounds must not decrease")
            }
            var steps: Int?
            if pieces.count == 2 {
                let s = try integer(pieces[1], "steps per round")
                guard s >= 1 else { throw PruningScheduleError(spec: text, message: "steps per round must be at least 1") }
                steps = s
            }
            self = .iterative(IterativePruningSchedule(sparsities: values, stepsPerRound: steps))
        case "agp", "gradual":
            // S_I-S_F@T0-T_END/DT
            let at = body.split(separator: "@", omittingEmptySubsequences: false)
            guard at.count == 2 else { throw PruningScheduleError(spec: text, message: "expected agp:S_I-S_F@T0-T_END/DT") }
            let range = at[0].split(separator: "-", omittingEmptySubsequences: false)
            guard range.count == 2 else {
                throw PruningScheduleError(spec: text, message: "expected the sparsities as S_I-S_F, got '\(at[0])'")
            }
            let slash = at[1].split(separator: "/", omittingEmptySubsequences: false)
            guard slash.count == 2 else {
                throw PruningScheduleError(spec: text, message: "expected the steps as T0-T_END/DT, got '\(at[1])'")
            }
            let steps = slash[0].split(separator: "-", omittingEmptySubsequences: false)
            guard steps.count == 2 else {
                throw PruningScheduleError(spec: text, message: "expected the steps as T0-T_END, got '\(slash[0])'")
            }
            let si = try fraction(range[0], "initial sparsity"), sf = try fraction(range[1], "final sparsity")
            let t0 = try integer(steps[0], "start step"), t1 = try integer(steps[1], "end step")
            let dt = try integer(slash[1], "frequency")
            guard dt >= 1 else { throw PruningScheduleError(spec: text, message: "the frequency must be at least 1 step") }
            guard t1 > t0 else { throw PruningScheduleError(spec: text, message: "the end step \(t1) must come after the start step \(t0)") }
            guard (t1 - t0) % dt == 0 else {
                throw PruningScheduleError(spec: text, message: "end − start (\(t1 - t0)) must be a multiple of the frequency \(dt)")
            }
            self = .gradual(GradualPruningSchedule(initialSparsity: si, finalSparsity: sf, startStep: t0, endStep: t1, frequency: dt))
        default:
            throw PruningScheduleError(spec: text, message: "unknown schedule '\(parts[0])' (expected oneshot, iterative or agp)")
        }
    }

    /// The sparsity in force at `step` of a run of `totalSteps` optimizer steps.
    public func sparsity(atStep step: Int, totalSteps: Int) -> Double {
        switch self {
        case let .oneShot(s): return s
        case let .iterative(schedule): return schedule.sparsity(atStep: step, totalSteps: totalSteps)
        case let .gradual(schedule): return schedule.sparsity(atStep: step)
        }
    }

    /// The sparsity reached at the end.
    public var finalSparsity: Double {
        switch self {
        case let .oneShot(s): return s
        case let .iterative(schedule): return schedule.sparsities.last ?? 0
        case let .gradual(schedule): return schedule.finalSparsity
        }
    }

    public var description: String {
        switch self {
        case let .oneShot(s): return "oneshot:\(formatFraction(s))"
        case let .iterative(schedule): return schedule.description
        case let .gradual(schedule): return schedule.description
        }
    }
}

/// A pruning schedule string that does not parse: names the string and what is wrong with it.
public struct PruningScheduleError: Error, CustomStringConvertible, Equatable {
    public var spec: String
    public var message: String
    public init(spec: String, message: String) {
        self.spec = spec
        self.message = message
    }
    public var description: String { "pruning schedule '\(spec)': \(message)" }
}

/// Applies a `PruningSchedule` during fine-tuning: before every optimizer step it brings the masks to the scheduled
/// sparsity (magnitude pruning, per layer or global, of `names`), masks the gradients, and after the step it zeroes
/// the pruned weights again. Masks only grow: a weight pruned once stays pruned.
public final class ScheduledPruner {
    public let schedule: PruningSchedule
    public let global: Bool
    public let parameters: [(name: String, parameter: Parameter)]
    /// The parameters that are pruned (a subset of `parameters`).
    public let names: [String]
    public private(set) var masks: PruningMasks
    /// The sparsity the masks were last computed for.
    public private(set) var currentSparsity: Double = 0
    /// Final sparsities of single layers (per-layer pruning only): such a layer follows the schedule's curve scaled
    /// to reach its own value when the schedule reaches its final sparsity (AGP towards 97.5 % for fully connected
    /// layers while the convolutions go to 68 %).
    public let layerTargets: [String: Double]

    /// `names` defaults to every trainable parameter of rank ≥ 2.
    public init(schedule: PruningSchedule, parameters: [(name: String, parameter: Parameter)], global: Bool,
                names: [String]? = nil, layerTargets: [String: Double] = [:]) {
        precondition(layerTargets.isEmpty || !global, "ScheduledPruner: per-layer targets need per-layer pruning")
        self.schedule = schedule
        self.global = global
        self.layerTargets = layerTargets
        self.parameters = parameters
        let selected = names ?? parameters.filter { $0.parameter.isTrainable && $0.parameter.shape.count >= 2 }.map(\.name)
        self.names = selected
        let wanted = Set(selected)
        masks = PruningMasks(masks: Dictionary(uniqueKeysWithValues: parameters.filter { wanted.contains($0.name) }
            .map { ($0.name, [Bool](repeating: true, count: $0.parameter.count)) }))
    }

    /// Re-prunes when the scheduled sparsity at `step` differs from the current one; then zeroes pruned weights.
    public func update(step: Int, totalSteps: Int) {
        let target = schedule.sparsity(atStep: step, totalSteps: totalSteps)
        if target != currentSparsity {
            let fresh: PruningMasks
            if layerTargets.isEmpty {
                fresh = MagnitudePruning.masks(parameters, sparsity: target, global: global, names: names)
            } else {
                // Each layer at the same share of its own final sparsity as the schedule is of its.
                let final = schedule.finalSparsity, share = final > 0 ? target / final : 1
                var perLayer: [String: Double] = [:]
                for name in names { perLayer[name] = min(layerTargets[name].map { $0 * share } ?? target, 0.9999) }
                fresh = MagnitudePruning.layerwise(parameters, sparsity: perLayer)
            }
            masks = masks.intersecting(fresh)
            currentSparsity = target
        }
        masks.apply(to: parameters)
    }

    /// Wires the pruner into `trainer` (replacing its optimizer-step hooks): before each step `update` at the
    /// trainer's global step, then the gradients are masked; after the step the masks are re-applied.
    public func install(on trainer: Trainer) {
        let total = trainer.totalSteps
        trainer.beforeOptimizerStep = { [unowned trainer] in
            self.update(step: trainer.state.globalStep, totalSteps: total)
            self.masks.maskGradients(of: self.parameters)
        }
        trainer.afterOptimizerStep = { self.masks.apply(to: self.parameters) }
    }
}

/// A fraction written shortly (`0.67`, `0`, `0.125`).
func formatFraction(_ value: Double) -> String {
    if value == value.rounded() { return String(Int(value)) + ".0" }
    return String(value)
}
