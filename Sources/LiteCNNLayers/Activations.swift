import LiteCNNTensor

// Parameter-free elementwise activations. Each keeps the tensor its derivative needs (input or output) from the
// last training-mode forward; derivatives at the kinks follow PyTorch's autograd formulas. The scalar functions are
// types (`ElementwiseMap`/`ElementwiseZip`) so that every loop is specialized and vectorized.

/// `max(0, x)` (`torch.nn.ReLU`). Derivative 1 where the output is positive, 0 elsewhere (0 at x = 0).
public final class ReLU: ShapePreservingLayer {
    public var isTraining = false
    private var savedOutput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { x > 0 ? x : 0 }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ y: Float, _ g: Float) -> Float { y > 0 ? g : 0 }
    }

    public func forward(_ input: Tensor) -> Tensor {
        let y = mapElements(input, Forward.self)
        savedOutput = isTraining ? y : nil
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("ReLU.backward without a training-mode forward") }
        return zipElements(y, gradOutput, Backward.self)
    }
}

/// `min(max(0, x), 6)` (`torch.nn.ReLU6`, i.e. hardtanh(0, 6)). Derivative 1 on the open interval (0, 6), 0 elsewhere.
public final class ReLU6: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { Swift.min(Swift.max(x, 0), 6) }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ x: Float, _ g: Float) -> Float { x > 0 && x < 6 ? g : 0 }
    }

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input, Forward.self)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("ReLU6.backward without a training-mode forward") }
        return zipElements(x, gradOutput, Backward.self)
    }
}

/// `1 / (1 + e^(−x))` (`torch.nn.Sigmoid`). Derivative `y·(1 − y)`.
public final class Sigmoid: ShapePreservingLayer {
    public var isTraining = false
    private var savedOutput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { 1 / (1 + vectorizableExp(-x)) }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ y: Float, _ g: Float) -> Float { g * y * (1 - y) }
    }

    public func forward(_ input: Tensor) -> Tensor {
        let y = mapElements(input, Forward.self)
        savedOutput = isTraining ? y : nil
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("Sigmoid.backward without a training-mode forward") }
        return zipElements(y, gradOutput, Backward.self)
    }
}

/// `relu6(x + 3) / 6` (`torch.nn.Hardsigmoid`). Derivative 1/6 on the open interval (−3, 3), 0 elsewhere.
public final class HardSigmoid: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { Swift.min(Swift.max(x + 3, 0), 6) * (1 / 6) }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ x: Float, _ g: Float) -> Float { x > -3 && x < 3 ? g * (1 / 6) : 0 }
    }

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input, Forward.self)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("HardSigmoid.backward without a training-mode forward") }
        return zipElements(x, gradOutput, Backward.self)
    }
}

/// `x · relu6(x + 3) / 6` (`torch.nn.Hardswish`). Derivative as PyTorch: 0 for x < −3, `x/3 + 1/2` for
/// −3 ≤ x ≤ 3, 1 for x > 3.
public final class HardSwish: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { x * Swift.min(Swift.max(x + 3, 0), 6) * (1 / 6) }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ x: Float, _ g: Float) -> Float {
            x < -3 ? 0 : (x <= 3 ? g * (x * (1 / 3) + 0.5) : g)
        }
    }

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input, Forward.self)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("HardSwish.backward without a training-mode forward") }
        return zipElements(x, gradOutput, Backward.self)
    }
}

/// `x · sigmoid(x)` (`torch.nn.SiLU`, also called Swish). Derivative `s·(1 + x·(1 − s))` with `s = sigmoid(x)`.
public final class SiLU: ShapePreservingLayer {
    public var isTraining = false
    private var savedInput: Tensor?

    public init() {}

    enum Forward: ElementwiseMap {
        @inline(__always) static func apply(_ x: Float) -> Float { x / (1 + vectorizableExp(-x)) }
    }
    enum Backward: ElementwiseZip {
        @inline(__always) static func apply(_ x: Float, _ g: Float) -> Float {
            let s = 1 / (1 + vectorizableExp(-x))
            return g * s * (1 + x * (1 - s))
        }
    }

    public func forward(_ input: Tensor) -> Tensor {
        savedInput = isTraining ? input : nil
        return mapElements(input, Forward.self)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let x = savedInput else { preconditionFailure("SiLU.backward without a training-mode forward") }
        return zipElements(x, gradOutput, Backward.self)
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
