import LiteCNNTensor

/// Inverted dropout (`torch.nn.Dropout`): in training each element is kept with probability `1 − p` and scaled by
/// `1/(1 − p)`, otherwise zeroed; in inference it is the identity. Any shape.
///
/// Masks come from the layer's own `SeededGenerator` (`reseed(_:)` makes them reproducible). The mask of the last
/// training forward is kept for `backward`; with `holdsMask` set, training forwards reuse it instead of drawing a
/// new one (for gradient checks).
public final class Dropout: ShapePreservingLayer {
    public let probability: Float
    public var isTraining = false
    /// When true, a training forward reuses the previous mask (if its size matches) instead of drawing a new one.
    public var holdsMask = false
    private var generator: SeededGenerator
    /// Per-element factor of the last training forward: 0 or `1/(1 − p)`.
    public private(set) var mask: [Float] = []

    public init(probability: Float, seed: UInt64 = 0xD80_0017) {
        precondition(probability >= 0 && probability <= 1, "Dropout: probability \(probability) outside [0, 1]")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    /// Restarts the mask generator.
    public func reseed(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }

    public func forward(_ input: Tensor) -> Tensor {
        guard isTraining, probability > 0 else { return input }
        if !(holdsMask && mask.count == input.count) {
            let keep = 1 - probability
            let scale: Float = keep > 0 ? 1 / keep : 0
            mask = [Float](repeating: 0, count: input.count)
            mask.withUnsafeMutableBufferPointer { m in
                for i in 0..<m.count { m[i] = generator.nextUnit() < keep ? scale : 0 }
            }
        }
        let factors = Tensor(shape: input.shape, scalars: mask, layout: input.layout)
        return zipElements(input, factors, Product.self)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard isTraining, probability > 0 else { return gradOutput }
        precondition(mask.count == gradOutput.count, "Dropout.backward: gradient \(gradOutput.shape) does not match the last mask")
        let factors = Tensor(shape: gradOutput.shape, scalars: mask, layout: gradOutput.layout)
        return zipElements(gradOutput, factors, Product.self)
    }
}

/// Stochastic depth (torchvision's `StochasticDepth(p, mode="row")`): in training each sample's whole input (a
/// residual branch) is kept with probability `1 − p` and scaled by `1/(1 − p)`, otherwise zeroed; identity in
/// inference. Input `[N, ...]`; the outermost axis is the sample.
///
/// Masks come from the layer's own `SeededGenerator`; `holdsMask` reuses the last mask as in `Dropout`.
public final class DropPath: ShapePreservingLayer {
    public let probability: Float
    public var isTraining = false
    /// When true, a training forward reuses the previous per-sample mask (if the batch size matches).
    public var holdsMask = false
    private var generator: SeededGenerator
    /// Per-sample factor of the last training forward: 0 or `1/(1 − p)`.
    public private(set) var mask: [Float] = []

    public init(probability: Float, seed: UInt64 = 0xD809_A7) {
        precondition(probability >= 0 && probability <= 1, "DropPath: probability \(probability) outside [0, 1]")
        self.probability = probability
        generator = SeededGenerator(seed: seed)
    }

    /// Restarts the mask generator.
    public func reseed(_ seed: UInt64) { generator = SeededGenerator(seed: seed) }

    public func forward(_ input: Tensor) -> Tensor {
        guard isTraining, probability > 0 else { return input }
        precondition(input.rank >= 1, "DropPath needs a batch axis")
        let batch = input.shape[0]
        if !(holdsMask && mask.count == batch) {
            let keep = 1 - probability
            let scale: Float = keep > 0 ? 1 / keep : 0
            mask = (0..<batch).map { _ in generator.nextUnit() < keep ? scale : 0 }
        }
        return scaleSamples(input)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard isTraining, probability > 0 else { return gradOutput }
        precondition(mask.count == gradOutput.shape.first, "DropPath.backward: gradient \(gradOutput.shape) does not match the last mask")
        return scaleSamples(gradOutput)
    }

    private func scaleSamples(_ x: Tensor) -> Tensor {
        let batch = x.shape[0]
        let perSample = batch == 0 ? 0 : x.count / batch
        return Tensor(shape: x.shape, layout: x.layout) { out in
            x.scalars.withUnsafeBufferPointer { src in
                mask.withUnsafeBufferPointer { m in
                    parallelRows(batch, rowLength: perSample) { range in
                        for b in range {
                            let factor = m[b]
                            let base = b * perSample
                            for i in 0..<perSample { out[base + i] = src[base + i] * factor }
                        }
                    }
                }
            }
        }
    }
}
