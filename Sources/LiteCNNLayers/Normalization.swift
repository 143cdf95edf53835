import LiteCNNTensor

/// Batch normalization over the channel axis (`torch.nn.BatchNorm2d`).
///
/// - Input/output: NHWC `[N, H, W, C]` (or any tensor whose last axis is `C`); statistics are taken over the other
///   axes, `M = N·H·W` values per channel.
/// - Parameters: `weight` (γ, ones) and `bias` (β, zeros), `[C]`. Buffers: `running_mean` (zeros), `running_var` (ones).
/// - Training: `y = γ·(x − μ_B)/√(σ²_B + ε) + β` with the biased batch variance σ²_B; the running statistics become
///   `(1 − momentum)·running + momentum·batch`, using the unbiased variance `σ²_B·M/(M − 1)` as PyTorch does.
/// - Inference: the running statistics replace the batch statistics.
/// - Frozen statistics (`freezesStatistics`, training mode): the running statistics normalize and stay as they are,
///   as in inference, while backward still gives `dx = γ·istd·dy`, `dγ += Σ dy·x̂`, `dβ += Σ dy` with
///   `x̂ = (x − running_mean)·istd` (PyTorch's BatchNorm in `eval()` with parameters that require gradients): for
///   fine-tuning part of a network whose statistics must not move.
public final class BatchNorm2D: Layer {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Parameter
    public let runningVariance: Parameter
    public var isTraining = false
    /// In training mode, normalize with the running statistics and leave them unchanged (see the type's documentation).
    public var freezesStatistics = false

    /// Input, batch mean and 1/√(σ² + ε) of the last training forward (x̂ is recomputed in backward rather than
    /// stored: one less full-size write in forward).
    private var savedInput: Tensor?
    private var savedMean: [Float] = []
    private var savedInverseStd: [Float] = []
    /// Whether the last training forward used the running statistics.
    private var savedFrozen = false

    public init(_ channels: Int, epsilon: Float = 1e-5, momentum: Float = 0.1) {
        precondition(channels > 0, "BatchNorm2D: channel count must be positive")
        self.channels = channels
        self.epsilon = epsilon
        self.momentum = momentum
        weight = Parameter(Tensor(shape: [channels], repeating: 1))
        bias = Parameter(Tensor(shape: [channels], repeating: 0))
        runningMean = Parameter(Tensor(shape: [channels], repeating: 0), kind: .buffer)
        runningVariance = Parameter(Tensor(shape: [channels], repeating: 1), kind: .buffer)
    }

    public var localParameters: [(name: String, parameter: Parameter)] {
        [("weight", weight), ("bias", bias), ("running_mean", runningMean), ("running_var", runningVariance)]
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.last == channels, "BatchNorm2D(\(channels)): input \(inputShape) has the wrong channel count")
        return inputShape
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.shape.last == channels, "BatchNorm2D(\(channels)): input \(input.shape) has the wrong channel count")
        let rows = input.count / channels
        if isTraining && freezesStatistics {
            var inverseStd = [Float](repeating: 0, count: channels)
            var scale = inverseStd
            for c in 0..<channels {
                let std = (runningVariance.value.scalars[c] + epsilon).squareRoot()
                inverseStd[c] = 1 / std
                scale[c] = weight.value.scalars[c] / std  // as in inference, to the last bit
            }
            savedInput = input
            savedMean = runningMean.value.scalars
            savedInverseStd = inverseStd
            savedFrozen = true
            return normalize(input, center: savedMean, scale: scale, shift: bias.value.scalars, rows: rows)
        }
        if !isTraining {
            savedInput = nil
            var scale = [Float](repeating: 0, count: channels)
            for c in 0..<channels {
                scale[c] = weight.value.scalars[c] / (runningVariance.value.scalars[c] + epsilon).squareRoot()
            }
            return normalize(input, center: runningMean.value.scalars, scale: scale, shift: bias.value.scalars, rows: rows)
        }
        precondition(rows > 1, "BatchNorm2D: training needs more than one value per channel, got input \(input.shape)")
        let (mean, variance) = batchStatistics(input, rows: rows)
        var inverseStd = [Float](repeating: 0, count: channels)
        for c in 0..<channels { inverseStd[c] = 1 / (variance[c] + epsilon).squareRoot() }
        let correction = Float(rows) / Float(rows - 1)
        runningMean.value.scalars.withUnsafeMutableBufferPointer { rm in
            runningVariance.value.scalars.withUnsafeMutableBufferPointer { rv in
                for c in 0..<channels {
                    rm[c] = (1 - momentum) * rm[c] + momentum * mean[c]
                    rv[c] = (1 - momentum) * rv[c] + momentum * variance[c] * correction
                }
            }
        }
        var scale = [Float](repeating: 0, count: channels)
        for c in 0..<channels { scale[c] = weight.value.scalars[c] * inverseStd[c] }
        savedInput = input
        savedMean = mean
        savedInverseStd = inverseStd
        savedFrozen = false
        return normalize(input, center: mean, scale: scale, shift: bias.value.scalars, rows: rows)
    }

    /// `dx = γ·istd·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ += Σ dy·x̂`, `dβ += Σ dy` (per channel), with
    /// `x̂ = (x − μ)·istd` (with frozen statistics μ and istd are constants: `dx = γ·istd·dy`). Two passes: the channel sums, then `dx = k·dy + q·(x − μ) + r` with per-channel `k, q, r`
    /// (`x − μ` formed first for precision).
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let input = savedInput else { preconditionFailure("BatchNorm2D.backward without a training-mode forward") }
        precondition(gradOutput.shape == input.shape, "BatchNorm2D.backward: gradient \(gradOutput.shape) vs input \(input.shape)")
        let c = channels
        let rows = input.count / c
        let (sumGrad, sumGradCentered) = channelSums(gradOutput, input, mean: savedMean, rows: rows)
        var sumGradXhat = [Float](repeating: 0, count: c)
        for j in 0..<c { sumGradXhat[j] = sumGradCentered[j] * savedInverseStd[j] }
        weight.accumulateGradient(Tensor(shape: [c], scalars: sumGradXhat))
        bias.accumulateGradient(Tensor(shape: [c], scalars: sumGrad))
        let invRows = 1 / Float(rows)
        var k = [Float](repeating: 0, count: c), q = k, r = k
        for j in 0..<c {
            let istd = savedInverseStd[j]
            k[j] = weight.value.scalars[j] * istd
            if !savedFrozen {
                q[j] = -k[j] * istd * sumGradXhat[j] * invRows
                r[j] = -k[j] * sumGrad[j] * invRows
            }
        }
        return Tensor(shape: input.shape, layout: input.layout) { dx in
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                input.scalars.withUnsafeBufferPointer { x in
                    k.withUnsafeBufferPointer { k in
                        q.withUnsafeBufferPointer { q in
                            r.withUnsafeBufferPointer { r in
                                savedMean.withUnsafeBufferPointer { mu in
                                    parallelRows(rows, rowLength: c) { range in
                                        for row in range {
                                            let base = row * c
                                            for j in 0..<c {
                                                dx[base + j] = k[j] * dy[base + j] + q[j] * (x[base + j] - mu[j]) + r[j]
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    // MARK: Helpers

    /// `y = (x − center)·scale + shift` per channel, in one pass. (Centering first keeps precision when the mean is
    /// large compared with the spread.)
    private func normalize(_ input: Tensor, center: [Float], scale: [Float], shift: [Float], rows: Int) -> Tensor {
        Tensor(shape: input.shape, layout: input.layout) { out in
            input.scalars.withUnsafeBufferPointer { x in
                center.withUnsafeBufferPointer { m in
                    scale.withUnsafeBufferPointer { a in
                        shift.withUnsafeBufferPointer { b in
                            let c = channels
                            parallelRows(rows, rowLength: c) { range in
                                for r in range {
                                    let base = r * c
                                    for j in 0..<c { out[base + j] = (x[base + j] - m[j]) * a[j] + b[j] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Per-channel mean and biased variance in one pass. Values are shifted by the first row before squaring so
    /// that a large mean does not cancel the variance; partial sums are combined in double precision.
    private func batchStatistics(_ input: Tensor, rows: Int) -> (mean: [Float], variance: [Float]) {
        let c = channels
        let parts = max(1, min(WorkerPool.shared.threadCount, rows * c / elementwiseParallelThreshold))
        var partialSums = [Double](repeating: 0, count: parts * c * 2)
        input.scalars.withUnsafeBufferPointer { x in
            partialSums.withUnsafeMutableBufferPointer { partial in
                WorkerPool.shared.parallelFor(parts) { p in
                    let lo = rows * p / parts, hi = rows * (p + 1) / parts
                    let first = x.baseAddress!
                    var r = lo
                    // Float sums over blocks of 256 rows, folded into double partial sums.
                    while r < hi {
                        let end = min(hi, r + 256)
                        forEachChannelBlock(c) { j, width in
                            switch width {
                            case 16: shiftedSums(SIMD16<Float>.self, first, c, j, r..<end, partial, (p * c + j) * 2)
                            case 8: shiftedSums(SIMD8<Float>.self, first, c, j, r..<end, partial, (p * c + j) * 2)
                            default: shiftedSums(SIMD2<Float>.self, first, c, j, r..<end, partial, (p * c + j) * 2, lanes: 1)
                            }
                        }
                        r = end
                    }
                }
            }
        }
        var mean = [Float](repeating: 0, count: c), variance = mean
        let m = Double(rows)
        input.scalars.withUnsafeBufferPointer { x in
            for j in 0..<c {
                var s = 0.0, q = 0.0
                for p in 0..<parts { s += partialSums[(p * c + j) * 2]; q += partialSums[(p * c + j) * 2 + 1] }
                let shiftedMean = s / m
                mean[j] = Float(Double(x[j]) + shiftedMean)
                variance[j] = Float(max(0, q / m - shiftedMean * shiftedMean))
            }
        }
        return (mean, variance)
    }

    /// Per-channel `Σ dy` and `Σ dy·(x − μ)`.
    private func channelSums(_ gradOutput: Tensor, _ input: Tensor, mean: [Float], rows: Int) -> ([Float], [Float]) {
        let c = channels
        let parts = max(1, min(WorkerPool.shared.threadCount, rows * c / elementwiseParallelThreshold))
        var partialSums = [Double](repeating: 0, count: parts * c * 2)
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            input.scalars.withUnsafeBufferPointer { x in
                mean.withUnsafeBufferPointer { mu in
                    partialSums.withUnsafeMutableBufferPointer { partial in
                        WorkerPool.shared.parallelFor(parts) { p in
                            let lo = rows * p / parts, hi = rows * (p + 1) / parts
                            let g = dy.baseAddress!, xs = x.baseAddress!, m = mu.baseAddress!
                            var r = lo
                            while r < hi {
                                let end = min(hi, r + 256)
                                forEachChannelBlock(c) { j, width in
                                    switch width {
                                    case 16: gradientSums(SIMD16<Float>.self, g, xs, m, c, j, r..<end, partial, (p * c + j) * 2)
                                    case 8: gradientSums(SIMD8<Float>.self, g, xs, m, c, j, r..<end, partial, (p * c + j) * 2)
                                    default: gradientSums(SIMD2<Float>.self, g, xs, m, c, j, r..<end, partial, (p * c + j) * 2, lanes: 1)
                                    }
                                }
                                r = end
                            }
                        }
                    }
                }
            }
        }
        var sumGrad = [Float](repeating: 0, count: c), sumGradCentered = sumGrad
        for j in 0..<c {
            var s = 0.0, d = 0.0
            for p in 0..<parts { s += partialSums[(p * c + j) * 2]; d += partialSums[(p * c + j) * 2 + 1] }
            sumGrad[j] = Float(s)
            sumGradCentered[j] = Float(d)
        }
        return (sumGrad, sumGradCentered)
    }
}

/// Calls `body(j, 16)` for each full block of 16 channels, `body(j, 8)` for a block of 8, then `body(j, 1)` for each
/// remaining channel.
@inline(__always)
private func forEachChannelBlock(_ channels: Int, _ body: (Int, Int) -> Void) {
    var j = 0
    while j + 16 <= channels { body(j, 16); j += 16 }
    while j + 8 <= channels { body(j, 8); j += 8 }
    while j < channels { body(j, 1); j += 1 }
}

/// Loads `lanes` floats (all of `V`, or just the first with the rest zero).
@inline(__always)
private func load<V: SIMD>(_: V.Type, _ pointer: UnsafePointer<Float>, lanes: Int) -> V where V.Scalar == Float {
    if lanes == V.scalarCount { return UnsafeRawPointer(pointer).loadUnaligned(as: V.self) }
    var v = V()
    for k in 0..<lanes { v[k] = pointer[k] }
    return v
}

/// For channels `j ..< j + lanes` over `rows`: adds `Σ (x − x₀)` and `Σ (x − x₀)²` (x₀ = the first row) into
/// `partial[offset + 2k]` and `partial[offset + 2k + 1]`.
@inline(__always)
private func shiftedSums<V: SIMD>(_: V.Type, _ x: UnsafePointer<Float>, _ c: Int, _ j: Int, _ rows: Range<Int>,
                                  _ partial: UnsafeMutableBufferPointer<Double>, _ offset: Int,
                                  lanes: Int = V.scalarCount) where V.Scalar == Float {
    let shift = load(V.self, x + j, lanes: lanes)
    var sum = V(), squares = V()
    for row in rows {
        let d = load(V.self, x + row * c + j, lanes: lanes) - shift
        sum += d
        squares += d * d
    }
    for k in 0..<lanes {
        partial[offset + 2 * k] += Double(sum[k])
        partial[offset + 2 * k + 1] += Double(squares[k])
    }
}

/// For channels `j ..< j + lanes` over `rows`: adds `Σ dy` and `Σ dy·(x − μ)` into `partial` as `shiftedSums`.
@inline(__always)
private func gradientSums<V: SIMD>(_: V.Type, _ dy: UnsafePointer<Float>, _ x: UnsafePointer<Float>,
                                   _ mean: UnsafePointer<Float>, _ c: Int, _ j: Int, _ rows: Range<Int>,
                                   _ partial: UnsafeMutableBufferPointer<Double>, _ offset: Int,
                                   lanes: Int = V.scalarCount) where V.Scalar == Float {
    let center = load(V.self, mean + j, lanes: lanes)
    var sum = V(), dot = V()
    for row in rows {
        let g = load(V.self, dy + row * c + j, lanes: lanes)
        sum += g
        dot += g * (load(V.self, x + row * c + j, lanes: lanes) - center)
    }
    for k in 0..<lanes {
        partial[offset + 2 * k] += Double(sum[k])
        partial[offset + 2 * k + 1] += Double(dot[k])
    }
}
