// Adam (Kingma & Ba 2015, "Adam: A method for stochastic optimization") and AdamW (Loshchilov & Hutter 2019,
// "Decoupled weight decay regularization") with `torch.optim.Adam`/`AdamW`'s formulas; the `OptimizerKind` factory
// that `litecnn train --optimizer` uses.
import Foundation
import LiteCNNLayers
import LiteCNNTensor

/// Adam, exactly `torch.optim.Adam`; with `decoupledWeightDecay`, exactly `torch.optim.AdamW`.
///
/// For every trainable parameter `p` with gradient `∇` (learning rate `lr`, β₁, β₂, ε, weight decay `λ`), with `t` the
/// number of updates this parameter has received (1 on its first) and `m`, `v` starting at zero:
///
///     Adam (L2):    g ← ∇ + λ·p
///     AdamW:        g ← ∇,  p ← p·(1 − lr·λ)
///     m ← m + (1 − β₁)·(g − m)
///     v ← β₂·v + (1 − β₂)·g²
///     p ← p − (lr / (1 − β₁ᵗ)) · m / (√v / √(1 − β₂ᵗ) + ε)
///
/// The bias corrections are computed in double precision, as PyTorch does. State (`state()`): `"exp_avg.<name>"` (m),
/// `"exp_avg_sq.<name>"` (v), with the parameter's shape, and `"step.<name>"` (t) as a one-element tensor.
/// Buffers and parameters with an empty gradient are skipped (their `t` does not advance).
///
/// PyTorch's defaults differ between the two: `Adam` has no weight decay, `AdamW` has λ = 0.01 — `Adam.adamW(...)`
/// builds the latter with that default.
public final class Adam: Optimizer {
    public var learningRate: Float
    /// β₁, the decay of the running mean of the gradient.
    public let beta1: Float
    /// β₂, the decay of the running mean of the squared gradient.
    public let beta2: Float
    /// ε, added to the bias-corrected √v.
    public let epsilon: Float
    /// λ: the L2 coefficient added to the gradient (Adam), or the decoupled decay rate (AdamW).
    public let weightDecay: Float
    /// `true` = AdamW: the weights shrink by `lr·λ` directly instead of `λ·p` joining the gradient.
    public let decoupledWeightDecay: Bool

    let store: ParameterStateStore

    /// An optimizer over `parameters` (typically `model.namedParameters()`; buffers among them are ignored).
    public init(parameters: [(name: String, parameter: Parameter)], learningRate: Float, beta1: Float = 0.9,
                beta2: Float = 0.999, epsilon: Float = 1e-8, weightDecay: Float = 0, decoupledWeightDecay: Bool = false) {
        precondition(learningRate >= 0, "Adam: learning rate \(learningRate) is negative")
        precondition(beta1 >= 0 && beta1 < 1 && beta2 >= 0 && beta2 < 1, "Adam: betas (\(beta1), \(beta2)) outside [0, 1)")
        precondition(epsilon >= 0, "Adam: epsilon \(epsilon) is negative")
        precondition(weightDecay >= 0, "Adam: weight decay \(weightDecay) is negative")
        self.learningRate = learningRate
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.weightDecay = weightDecay
        self.decoupledWeightDecay = decoupledWeightDecay
        store = ParameterStateStore(optimizer: decoupledWeightDecay ? "AdamW" : "Adam", parameters: parameters,
                                    kinds: ["exp_avg", "exp_avg_sq"], countsSteps: true)
    }

    /// AdamW (`torch.optim.AdamW`) with PyTorch's defaults: decoupled weight decay λ = 0.01, β = (0.9, 0.999), ε = 1e-8.
    public static func adamW(parameters: [(name: String, parameter: Parameter)], learningRate: Float,
                             weightDecay: Float = 0.01, beta1: Float = 0.9, beta2: Float = 0.999,
                             epsilon: Float = 1e-8) -> Adam {
        Adam(parameters: parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
             weightDecay: weightDecay, decoupledWeightDecay: true)
    }

    public func step() {
        let lr = learningRate, eps = epsilon
        let oneMinusBeta1 = 1 - beta1, beta2 = beta2, oneMinusBeta2 = 1 - beta2
        // AdamW multiplies by `decay`; Adam adds `l2·p` to the gradient. The unused one is the identity (1 or 0).
        let decay = decoupledWeightDecay ? Float(1 - Double(learningRate) * Double(weightDecay)) : 1
        let l2: Float = decoupledWeightDecay ? 0 : weightDecay
        for entry in store.entries {
            let gradient = entry.parameter.gradient
            guard gradient.count > 0, gradient.count == entry.parameter.count else { continue }
            entry.prepare(kinds: 2)
            entry.step += 1
            let t = Double(entry.step)
            let correction1 = 1 - pow(Double(beta1), t)
            let correction2Root = Float((1 - pow(Double(self.beta2), t)).squareRoot())
            let stepSize = Float(Double(lr) / correction1)
            let m = entry.buffers[0], v = entry.buffers[1]
            gradient.scalars.withUnsafeBufferPointer { gBuffer in
                entry.parameter.value.scalars.withUnsafeMutableBufferPointer { pBuffer in
                    guard let g = gBuffer.baseAddress, let p = pBuffer.baseAddress,
                          let m = m.baseAddress, let v = v.baseAddress else { return }
                    // On 8-float vectors by hand (see `rmspropUpdate`), the scalar formulas' operations in their order.
                    @inline(__always)
                    func update(_ i: Int, _ lanes: Int) {
                        let weights = Vector8.load(p + i, lanes)
                        let gi = Vector8.load(g + i, lanes) + l2 * weights
                        let old = Vector8.load(m + i, lanes)
                        let mi = old + oneMinusBeta1 * (gi - old)
                        let vi = beta2 * Vector8.load(v + i, lanes) + oneMinusBeta2 * (gi * gi)
                        Vector8.store(mi, m + i, lanes)
                        Vector8.store(vi, v + i, lanes)
                        let denominator = vi.squareRoot() / correction2Root + eps
                        Vector8.store(weights * decay - stepSize * (mi / denominator), p + i, lanes)
                    }
                    parallelUpdate(pBuffer.count) { range in
                        var i = range.lowerBound
                        while i + 8 <= range.upperBound {
                            update(i, 8)
                            i += 8
                        }
                        if i < range.upperBound { update(i, range.upperBound - i) }
                    }
                }
            }
        }
    }

    public func state() -> [String: Tensor] { store.export() }

    public func loadState(_ state: [String: Tensor]) throws { try store.load(state) }
}

// MARK: Choosing an optimizer by name

/// The optimizers `litecnn train --optimizer` offers, by name.
public enum OptimizerKind: String, CaseIterable, Sendable {
    /// SGD with momentum 0.9 and weight decay 1e-4 (torchvision's reference recipe; SqueezeNet, ShuffleNet, ResNet).
    case sgd
    /// SGD with Nesterov momentum 0.9 and weight decay 1e-4.
    case nesterov
    /// RMSProp as the MobileNet/EfficientNet papers used it (TensorFlow's): α 0.9, momentum 0.9, ε 1e-3 inside the
    /// square root, weight decay 4e-5 (MobileNet V2).
    case rmsprop
    /// Adam with PyTorch's defaults: β (0.9, 0.999), ε 1e-8, no weight decay.
    case adam
    /// AdamW with PyTorch's defaults: β (0.9, 0.999), ε 1e-8, decoupled weight decay 0.01.
    case adamw

    /// The momentum used when none is given (β₁ for Adam and AdamW).
    public var defaultMomentum: Float {
        switch self {
        case .sgd, .nesterov, .rmsprop, .adam, .adamw: 0.9
        }
    }

    /// The weight decay used when none is given.
    public var defaultWeightDecay: Float {
        switch self {
        case .sgd, .nesterov: 1e-4
        case .rmsprop: 4e-5
        case .adam: 0
        case .adamw: 0.01
        }
    }
}

/// Why a training argument was refused (names the argument, as the CLI spells it).
public struct TrainingArgumentError: Error, CustomStringConvertible, Equatable {
    public let argument: String
    public let reason: String
    public init(argument: String, reason: String) {
        self.argument = argument
        self.reason = reason
    }
    public var description: String { "\(argument): \(reason)" }
}

/// Builds the optimizer `kind` over `parameters` with the recipe defaults listed on `OptimizerKind`; `momentum` (β₁ for
/// Adam/AdamW) and `weightDecay` override them when given. Throws `TrainingArgumentError` naming `--lr`, `--momentum`
/// or `--weight-decay` for a negative or non-finite value, or a momentum of 1 or more.
public func makeOptimizer(kind: OptimizerKind, parameters: [(name: String, parameter: Parameter)], learningRate: Float,
                          momentum: Float? = nil, weightDecay: Float? = nil) throws -> any Optimizer {
    guard learningRate.isFinite, learningRate >= 0 else {
        throw TrainingArgumentError(argument: "--lr", reason: "\(learningRate) is not a non-negative number")
    }
    let momentum = momentum ?? kind.defaultMomentum
    guard momentum.isFinite, momentum >= 0, momentum < 1 else {
        throw TrainingArgumentError(argument: "--momentum", reason: "\(momentum) is outside [0, 1)")
    }
    if kind == .nesterov && momentum == 0 {
        throw TrainingArgumentError(argument: "--momentum", reason: "Nesterov momentum needs a momentum above 0")
    }
    let weightDecay = weightDecay ?? kind.defaultWeightDecay
    guard weightDecay.isFinite, weightDecay >= 0 else {
        throw TrainingArgumentError(argument: "--weight-decay", reason: "\(weightDecay) is not a non-negative number")
    }
    switch kind {
    case .sgd:
        return SGD(parameters: parameters, learningRate: learningRate, momentum: momentum, weightDecay: weightDecay)
    case .nesterov:
        return SGD(parameters: parameters, learningRate: learningRate, momentum: momentum, nesterov: true,
                   weightDecay: weightDecay)
    case .rmsprop:
        return RMSProp(parameters: parameters, learningRate: learningRate, alpha: 0.9, epsilon: 1e-3, momentum: momentum,
                       weightDecay: weightDecay, epsilonInsideSquareRoot: true)
    case .adam:
        return Adam(parameters: parameters, learningRate: learningRate, beta1: momentum, weightDecay: weightDecay)
    case .adamw:
        return Adam.adamW(parameters: parameters, learningRate: learningRate, weightDecay: weightDecay, beta1: momentum)
    }
}
