import LiteCNNLayers
import LiteCNNTensor

/// Updates parameters from their accumulated gradients (`torch.optim.Optimizer`).
///
/// An optimizer is built over `model.namedParameters()` (buffers are skipped) so that its per-parameter state
/// (momentum, second moments) is saved in checkpoints under the parameter's name.
public protocol Optimizer: AnyObject {
    /// The learning rate the next `step()` uses; the training loop sets it from the schedule before every step.
    var learningRate: Float { get set }
    /// One update of every trainable parameter from its `gradient` (gradients are not cleared).
    func step()
    /// Per-parameter state for checkpoints, keyed `"<state>.<parameter name>"` (e.g. `"momentum.features.0.weight"`),
    /// plus scalar state such as Adam's step count as one-element tensors.
    func state() -> [String: Tensor]
    /// Restores `state()`; throws when a tensor is missing or has the wrong shape.
    func loadState(_ state: [String: Tensor]) throws
}

/// A learning rate as a function of the optimizer step (`torch.optim.lr_scheduler`, stepped per iteration).
public protocol LearningRateSchedule: Sendable {
    /// The rate for step `step` (0-based) of a run of `totalSteps` steps with `stepsPerEpoch` steps per epoch.
    func learningRate(step: Int, stepsPerEpoch: Int, totalSteps: Int) -> Float
}
