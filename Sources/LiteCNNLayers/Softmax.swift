import LiteCNNTensor

/// Softmax over the last axis (`torch.nn.Softmax(dim=-1)`), computed stably as `e^(x − max) / Σ e^(x − max)`.
/// Shape-preserving; backward is `dx = y ⊙ (dy − Σ dy ⊙ y)` per row.
public final class Softmax: ShapePreservingLayer {
    public var isTraining = false
    private var savedOutput: Tensor?

    public init() {}

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank >= 1, "Softmax on a scalar")
        let y = softmaxRows(input)
        savedOutput = isTraining ? y : nil
        return y
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let y = savedOutput else { preconditionFailure("Softmax.backward without a training-mode forward") }
        precondition(gradOutput.shape == y.shape, "Softmax.backward: gradient \(gradOutput.shape) vs output \(y.shape)")
        let width = y.shape[y.rank - 1]
        let rows = width == 0 ? 0 : y.count / width
        return Tensor(shape: y.shape, layout: y.layout) { dx in
            y.scalars.withUnsafeBufferPointer { p in
                gradOutput.scalars.withUnsafeBufferPointer { dy in
                    parallelRows(rows, rowLength: width) { range in
                        for r in range {
                            let base = r * width
                            var dot: Float = 0
                            for k in 0..<width { dot += dy[base + k] * p[base + k] }
                            for k in 0..<width { dx[base + k] = p[base + k] * (dy[base + k] - dot) }
                        }
                    }
                }
            }
        }
    }
}

/// Row-wise stable softmax over the last axis.
func softmaxRows(_ input: Tensor) -> Tensor {
    let width = input.shape[input.rank - 1]
    let rows = width == 0 ? 0 : input.count / width
    return Tensor(shape: input.shape, layout: input.layout) { out in
        input.scalars.withUnsafeBufferPointer { x in
            parallelRows(rows, rowLength: width * 4) { range in
                for r in range {
                    let base = r * width
                    var largest = -Float.infinity
                    for k in 0..<width { largest = max(largest, x[base + k]) }
                    var total: Float = 0
                    for k in 0..<width {
                        let e = vectorizableExp(x[base + k] - largest)
                        out[base + k] = e
                        total += e
                    }
                    let inverse = 1 / total
                    for k in 0..<width { out[base + k] *= inverse }
                }
            }
        }
    }
}
