// Learning-rate schedules, evaluated per optimizer step: constant, linear decay (SqueezeNet, Iandola et al. 2016),
// step decay (`torch.optim.lr_scheduler.StepLR`), cosine annealing (Loshchilov & Hutter 2017, SGDR; `CosineAnnealingLR`),
// staircase exponential decay (the MobileNet/EfficientNet recipe "0.97 every 2.4 epochs"; `ExponentialLR`) and linear
// warm-up (Goyal et al. 2017, "Accurate, large minibatch SGD"), plus the `ScheduleKind` factory for the CLI.
import Foundation

/// The same rate at every step.
public struct ConstantSchedule: LearningRateSchedule {
    public let rate: Float

    public init(_ rate: Float) {
        precondition(rate.isFinite && rate >= 0, "ConstantSchedule: rate \(rate) is not a non-negative number")
        self.rate = rate
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float { rate }
}

/// Linear decay from `initial` at step 0 to `final` at the last step `totalSteps − 1` (SqueezeNet's "0.04 decreasing
/// linearly"; `torch.optim.lr_scheduler.LinearLR(start_factor=1, end_factor=final/initial, total_iters=totalSteps−1)`):
///
///     lr(step) = initial + (final − initial) · min(step, totalSteps − 1) / (totalSteps − 1)
///
/// A run of one step uses `initial`.
public struct LinearDecaySchedule: LearningRateSchedule {
    public let initial: Float
    public let final: Float

    public init(initial: Float, final: Float) {
        precondition(initial.isFinite && initial >= 0 && final.isFinite && final >= 0,
                     "LinearDecaySchedule: rates \(initial), \(final) must be non-negative numbers")
        self.initial = initial
        self.final = final
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        guard totalSteps > 1 else { return initial }
        let fraction = Double(min(max(step, 0), totalSteps - 1)) / Double(totalSteps - 1)
        return Float(Double(initial) + (Double(final) - Double(initial)) * fraction)
    }
}

/// `initial · gamma^⌊epoch / stepEpochs⌋` with `epoch = ⌊step / stepsPerEpoch⌋`: PyTorch's `StepLR(step_size:
/// stepEpochs, gamma:)` stepped once per epoch (ResNet: 0.1 every 30 epochs).
public struct StepSchedule: LearningRateSchedule {
    public let initial: Float
    /// Whole epochs between two multiplications by `gamma`.
    public let stepEpochs: Int
    public let gamma: Float

    public init(initial: Float, stepEpochs: Int, gamma: Float) {
        precondition(initial.isFinite && initial >= 0, "StepSchedule: initial rate \(initial) is not a non-negative number")
        precondition(stepEpochs >= 1, "StepSchedule: stepEpochs \(stepEpochs) must be at least 1")
        precondition(gamma.isFinite && gamma >= 0, "StepSchedule: gamma \(gamma) is not a non-negative number")
        self.initial = initial
        self.stepEpochs = stepEpochs
        self.gamma = gamma
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        let epoch = max(step, 0) / max(stepsPerEpoch, 1)
        return Float(Double(initial) * pow(Double(gamma), Double(epoch / stepEpochs)))
    }
}

/// Cosine annealing from `initial` at step 0 towards `minimum` over the run (`CosineAnnealingLR(T_max: totalSteps,
/// eta_min: minimum)` stepped per iteration, no restarts):
///
///     lr(step) = minimum + (initial − minimum) · (1 + cos(π · step / totalSteps)) / 2
///
/// so the last step (`totalSteps − 1`) is just above `minimum`. Steps past the end stay at `minimum`.
public struct CosineSchedule: LearningRateSchedule {
    public let initial: Float
    public let minimum: Float

    public init(initial: Float, minimum: Float = 0) {
        precondition(initial.isFinite && initial >= 0 && minimum.isFinite && minimum >= 0,
                     "CosineSchedule: rates \(initial), \(minimum) must be non-negative numbers")
        self.initial = initial
        self.minimum = minimum
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        guard totalSteps > 0 else { return initial }
        let progress = Double(min(max(step, 0), totalSteps)) / Double(totalSteps)
        return Float(Double(minimum) + (Double(initial) - Double(minimum)) * (1 + cos(Double.pi * progress)) / 2)
    }
}

/// Staircase exponential decay: `initial · gamma^⌊step / (everyEpochs · stepsPerEpoch)⌋`.
///
/// With `everyEpochs = 1` this is PyTorch's `ExponentialLR(gamma)` stepped once per epoch. The period may be
/// fractional: the MobileNet V2/V3 and EfficientNet recipes decay by 0.97 (V2: 0.98) every 2.4 epochs, i.e.
/// TensorFlow's `exponential_decay(decay_steps: 2.4 · stepsPerEpoch, staircase: true)`.
public struct ExponentialSchedule: LearningRateSchedule {
    public let initial: Float
    public let gamma: Float
    /// Epochs (fractions allowed) between two multiplications by `gamma`.
    public let everyEpochs: Double

    public init(initial: Float, gamma: Float, everyEpochs: Double = 1) {
        precondition(initial.isFinite && initial >= 0, "ExponentialSchedule: initial rate \(initial) is not a non-negative number")
        precondition(gamma.isFinite && gamma >= 0, "ExponentialSchedule: gamma \(gamma) is not a non-negative number")
        precondition(everyEpochs.isFinite && everyEpochs > 0, "ExponentialSchedule: period \(everyEpochs) epochs must be positive")
        self.initial = initial
        self.gamma = gamma
        self.everyEpochs = everyEpochs
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        let period = everyEpochs * Double(max(stepsPerEpoch, 1))
        // The relative nudge keeps an exact multiple (step 24 of a 2.4 × 10-step period) from rounding down.
        let decays = max(0, (Double(max(step, 0)) / period * (1 + 1e-12)).rounded(.down))
        return Float(Double(initial) * pow(Double(gamma), decays))
    }
}

/// Linear warm-up in front of another schedule (Goyal et al. 2017):
///
///     lr(step) = base(step) · (step + 1) / warmupSteps   for step < warmupSteps
///     lr(step) = base(step)                              afterwards
///
/// where `base` is the wrapped schedule evaluated at the same (unshifted) step, so the first step already moves the
/// weights (rate `base(0)/warmupSteps`) and step `warmupSteps − 1` reaches the full rate.
public struct WarmupSchedule: LearningRateSchedule {
    public let base: any LearningRateSchedule
    public let warmupSteps: Int

    public init(wrapping base: any LearningRateSchedule, warmupSteps: Int) {
        precondition(warmupSteps >= 0, "WarmupSchedule: warmupSteps \(warmupSteps) is negative")
        self.base = base
        self.warmupSteps = warmupSteps
    }

    public func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float {
        let rate = base.learningRate(step: step, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        guard step < warmupSteps else { return rate }
        return rate * Float(max(step, 0) + 1) / Float(warmupSteps)
    }
}

// MARK: Choosing a schedule by name

/// The schedules `litecnn train --schedule` offers, by name.
public enum ScheduleKind: String, CaseIterable, Sendable {
    /// `ConstantSchedule(initial)`.
    case constant
    /// `LinearDecaySchedule(initial:final: minimum)`.
    case linear
    /// `StepSchedule(initial:stepEpochs:gamma:)`.
    case step
    /// `CosineSchedule(initial:minimum:)`.
    case cosine
    /// `ExponentialSchedule(initial:gamma:everyEpochs: stepEpochs)`.
    case exponential
}

/// Builds the schedule `kind`, wrapped in a `WarmupSchedule` when `warmupSteps > 0`.
///
/// - `initial`: the peak rate (`--lr`); `minimum`: the rate the `linear` and `cosine` schedules end at (`--final-lr`).
/// - `stepEpochs`: epochs between decays of `step` (a whole number) and `exponential` (fractions allowed, e.g. 2.4);
///   `gamma`: their decay factor.
/// Throws `TrainingArgumentError` naming the flag (`--lr`, `--final-lr`, `--step-epochs`, `--gamma`, `--warmup-steps`)
/// for a value out of range.
public func makeSchedule(kind: ScheduleKind, initial: Float, stepEpochs: Double = 1, gamma: Float = 0.1,
                         minimum: Float = 0, warmupSteps: Int = 0) throws -> any LearningRateSchedule {
    guard initial.isFinite, initial >= 0 else {
        throw TrainingArgumentError(argument: "--lr", reason: "\(initial) is not a non-negative number")
    }
    guard warmupSteps >= 0 else {
        throw TrainingArgumentError(argument: "--warmup-steps", reason: "\(warmupSteps) is negative")
    }
    let schedule: any LearningRateSchedule
    switch kind {
    case .constant:
        schedule = ConstantSchedule(initial)
    case .linear, .cosine:
        guard minimum.isFinite, minimum >= 0 else {
            throw TrainingArgumentError(argument: "--final-lr", reason: "\(minimum) is not a non-negative number")
        }
        schedule = kind == .linear ? LinearDecaySchedule(initial: initial, final: minimum)
                                   : CosineSchedule(initial: initial, minimum: minimum)
    case .step, .exponential:
        guard gamma.isFinite, gamma > 0 else {
            throw TrainingArgumentError(argument: "--gamma", reason: "\(gamma) is not a positive number")
        }
        guard stepEpochs.isFinite, stepEpochs > 0 else {
            throw TrainingArgumentError(argument: "--step-epochs", reason: "\(stepEpochs) is not a positive number")
        }
        if kind == .step {
            guard stepEpochs == stepEpochs.rounded(), stepEpochs <= Double(Int32.max) else {
                throw TrainingArgumentError(argument: "--step-epochs",
                                            reason: "\(stepEpochs) is not a whole number of epochs (the exponential schedule takes fractions)")
            }
            schedule = StepSchedule(initial: initial, stepEpochs: Int(stepEpochs), gamma: gamma)
        } else {
            schedule = ExponentialSchedule(initial: initial, gamma: gamma, everyEpochs: stepEpochs)
        }
    }
    return warmupSteps > 0 ? WarmupSchedule(wrapping: schedule, warmupSteps: warmupSteps) : schedule
}
