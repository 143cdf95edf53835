import LiteCNNTensor

/// Squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation Networks", arXiv:1709.01507), as torchvision's
/// `ops.SqueezeExcitation`: `y = x ⊙ gate(fc2(activation(fc1(avgpool(x)))))`.
///
/// - Input/output: NHWC `[N, H, W, C]`, `C = inputChannels`. The per-channel scale `[N, 1, 1, C]` broadcasts over
///   H and W.
/// - Children (torchvision names): `fc1` = 1×1 `Conv2D(C → squeezeChannels)` with bias, `activation`,
///   `fc2` = 1×1 `Conv2D(squeezeChannels → C)` with bias, `scale_activation` (the gate).
public final class SqueezeExcitation: Layer {
    public let inputChannels: Int
    public let squeezeChannels: Int
    public let fc1: Conv2D
    public let fc2: Conv2D
    public let activation: any Layer
    public let gate: any Layer
    public var isTraining = false {
        didSet { for (_, child) in children { child.isTraining = isTraining } }
    }
    private var savedInput: Tensor?
    private var savedScale: Tensor?

    public init(inputChannels: Int, squeezeChannels: Int, activation: any Layer = ReLU(), gate: any Layer = Sigmoid()) {
        precondition(inputChannels > 0 && squeezeChannels > 0, "SqueezeExcitation: channel counts must be positive")
        self.inputChannels = inputChannels
        self.squeezeChannels = squeezeChannels
        fc1 = Conv2D(inputChannels, squeezeChannels, kernelSize: 1)
        fc2 = Conv2D(squeezeChannels, inputChannels, kernelSize: 1)
        self.activation = activation
        self.gate = gate
    }

    public var children: [(name: String, layer: any Layer)] {
        [("fc1", fc1), ("activation", activation), ("fc2", fc2), ("scale_activation", gate)]
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == 4 && inputShape[3] == inputChannels,
                     "SqueezeExcitation(\(inputChannels)): expected NHWC input with \(inputChannels) channels, got \(inputShape)")
        return inputShape
    }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        let pooled = [outputShape(for: inputShape)[0], 1, 1, inputChannels]
        _ = traceChain(children, pooled, path: path, visit)
        return inputShape
    }

    /// The per-channel scale `[N, 1, 1, C]` for an input.
    private func channelScale(_ input: Tensor) -> Tensor {
        let pooled = globalAveragePool(input).reshaped(to: [input.shape[0], 1, 1, inputChannels], layout: .nhwc)
        return gate.forward(fc2.forward(activation.forward(fc1.forward(pooled))))
    }

    public func forward(_ input: Tensor) -> Tensor {
        let shape = outputShape(for: input.shape)
        let scale = channelScale(input)
        if isTraining {
            savedInput = input
            savedScale = scale
        } else {
            savedInput = nil
            savedScale = nil
        }
        let pixels = shape[1] * shape[2], c = inputChannels
        return Tensor(shape: shape, layout: .nhwc) { out in
            input.scalars.withUnsafeBufferPointer { x in
                scale.scalars.withUnsafeBufferPointer { s in
                    parallelRows(shape[0] * pixels, rowLength: c) { range in
                        for row in range {
                            let factors = s.baseAddress! + (row / pixels) * c
                            let base = row * c
                            for k in 0..<c { out[base + k] = x[base + k] * factors[k] }
                        }
                    }
                }
            }
        }
    }

    /// `dx = dy ⊙ s + broadcast(∂L/∂pooled)/(H·W)` where `∂L/∂s[n, c] = Σ_hw dy·x` flows back through the gate,
    /// `fc2`, the activation and `fc1`.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let input = savedInput, let scale = savedScale else {
            preconditionFailure("SqueezeExcitation.backward without a training-mode forward")
        }
        precondition(gradOutput.shape == input.shape, "SqueezeExcitation.backward: gradient \(gradOutput.shape) vs input \(input.shape)")
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let pixels = h * w
        let gradScale = Tensor(shape: [n, 1, 1, c], layout: .nhwc) { gs in
            gs.update(repeating: 0)
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                input.scalars.withUnsafeBufferPointer { x in
                    WorkerPool.shared.parallelRanges(n) { batch in
                        for b in batch {
                            let g = gs.baseAddress! + b * c
                            for p in 0..<pixels {
                                let base = (b * pixels + p) * c
                                for k in 0..<c { g[k] += dy[base + k] * x[base + k] }
                            }
                        }
                    }
                }
            }
        }
        let gradPooled = fc1.backward(activation.backward(fc2.backward(gate.backward(gradScale))))
        let poolScale = 1 / Float(pixels)
        return Tensor(shape: input.shape, layout: .nhwc) { dx in
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                scale.scalars.withUnsafeBufferPointer { s in
                    gradPooled.scalars.withUnsafeBufferPointer { gp in
                        parallelRows(n * pixels, rowLength: c) { range in
                            for row in range {
                                let b = row / pixels
                                let factors = s.baseAddress! + b * c, pooled = gp.baseAddress! + b * c
                                let base = row * c
                                for k in 0..<c { dx[base + k] = dy[base + k] * factors[k] + pooled[k] * poolScale }
                            }
                        }
                    }
                }
            }
        }
    }
}
