import Foundation
import LiteCNNTensor

// Parameter-free elementwise activations. Each keeps the tensor its derivative needs (input or output) from the
// last training-mode forward; derivatives at the kinks follow PyTorch's autograd formulas.

/// `max(0, x)` (`torch.nn.ReLU`). Derivative 1 where the output is positive, 0 elsewhere (0 at x = 0).
public final class ReLU: ShapePreservingLayer {
    public var isTraining = false
    private var savedOutput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        let y = mapElements(input) { $0 > 0 ? $0 : 0 }
        savedOutput = isTraining ? y : nil
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("ReLU.backward without a training-mode forward") }
        return zipElements(y, gradOutput) { y, g in y > 0 ? g : 0 }
    }
}

/// `min(max(0, x), 6)` (`torch.nn.ReLU6`, i.e. hardtanh(0, 6)). Derivative 1 on the open interval (0, 6), 0 elsewhere.
public final class ReLU6: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input) { Swift.min(Swift.max($0, 0), 6) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("ReLU6.backward without a training-mode forward") }
        return zipElements(x, gradOutput) { x, g in x > 0 && x < 6 ? g : 0 }
    }
}

/// `1 / (1 + e^(−x))` (`torch.nn.Sigmoid`). Derivative `y·(1 − y)`.
public final class Sigmoid: ShapePreservingLayer {
    public var isTraining = false
    private var savedOutput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        let y = mapElements(input) { 1 / (1 + exp(-$0)) }
        savedOutput = isTraining ? y : nil
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("Sigmoid.backward without a training-mode forward") }
        return zipElements(y, gradOutput) { y, g in g * y * (1 - y) }
    }
}

/// `relu6(x + 3) / 6` (`torch.nn.Hardsigmoid`). Derivative 1/6 on the open interval (−3, 3), 0 elsewhere.
public final class HardSigmoid: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input) { Swift.min(Swift.max($0 + 3, 0), 6) * (1 / 6) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("HardSigmoid.backward without a training-mode forward") }
        return zipElements(x, gradOutput) { x, g in x > -3 && x < 3 ? g * (1 / 6) : 0 }
    }
}

/// `x · relu6(x + 3) / 6` (`torch.nn.Hardswish`). Derivative as PyTorch: 0 for x < −3, `x/3 + 1/2` for
/// −3 ≤ x ≤ 3, 1 for x > 3.
public final class HardSwish: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input) { $0 * Swift.min(Swift.max($0 + 3, 0), 6) * (1 / 6) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("HardSwish.backward without a training-mode forward") }
        return zipElements(x, gradOutput) { x, g in
            x < -3 ? 0 : (x <= 3 ? g * (x * (1 / 3) + 0.5) : g)
        }
    }
}

/// `x · sigmoid(x)` (`torch.nn.SiLU`, also called Swish). Derivative `s·(1 + x·(1 − s))` with `s = sigmoid(x)`.
public final class SiLU: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input) { $0 / (1 + exp(-$0)) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("SiLU.backward without a training-mode forward") }
        return zipElements(x, gradOutput) { x, g in
            let s = 1 / (1 + exp(-x))
            return g * s * (1 + x * (1 - s))
        }
    }
}

/// Swish (Ramachandran et al.) is SiLU.
public typealias Swish = SiLU

/// Passes its input through unchanged (`torch.nn.Identity`).
public final class Identity: ShapePreservingLayer {
    public var isTraining = false

    public init() {}

    public func forward(_ input: Tensor) -> Tensor { input }
    public func backward(_ gradOutput: Tensor) -> Tensor { gradOutput }
}
