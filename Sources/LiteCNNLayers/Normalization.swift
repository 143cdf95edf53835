import LiteCNNTensor

/// Batch normalization over the channel axis (`torch.nn.BatchNorm2d`).
///
/// - Input/output: NHWC `[N, H, W, C]` (or any tensor whose last axis is `C`); statistics are taken over the other
///   axes, `M = N·H·W` values per channel.
/// - Parameters: `weight` (γ, ones) and `bias` (β, zeros), `[C]`. Buffers: `running_mean` (zeros), `running_var` (ones).
/// - Training: `y = γ·(x − μ_B)/√(σ²_B + ε) + β` with the biased batch variance σ²_B; the running statistics become
///   `(1 − momentum)·running + momentum·batch`, using the unbiased variance `σ²_B·M/(M − 1)` as PyTorch does.
/// - Inference: the running statistics replace the batch statistics.
public final class BatchNorm2D: Layer {
    public let channels: Int
    public let epsilon: Float
    public let momentum: Float
    public let weight: Parameter
    public let bias: Parameter
    public let runningMean: Parameter
    public let runningVariance: Parameter
    public var isTraining = false

    /// Normalized input x̂ and 1/√(σ² + ε) of the last training forward.
    private var savedNormalized: Tensor?
    private var savedInverseStd: [Float] = []

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
        if !isTraining {
            savedNormalized = nil
            var scale = [Float](repeating: 0, count: channels), shift = scale
            for c in 0..<channels {
                scale[c] = weight.value.scalars[c] / (runningVariance.value.scalars[c] + epsilon).squareRoot()
                shift[c] = bias.value.scalars[c] - runningMean.value.scalars[c] * scale[c]
            }
            return applyAffine(input, scale: scale, shift: shift, rows: rows)
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
        // One pass writes both x̂ (kept for backward) and y = γ·x̂ + β.
        var normalized = Tensor(shape: input.shape, layout: input.layout) { _ in }
        let output = Tensor(shape: input.shape, layout: input.layout) { out in
            input.scalars.withUnsafeBufferPointer { x in
                normalized.scalars.withUnsafeMutableBufferPointer { xhat in
                    weight.value.scalars.withUnsafeBufferPointer { gamma in
                        bias.value.scalars.withUnsafeBufferPointer { beta in
                            mean.withUnsafeBufferPointer { mu in
                                inverseStd.withUnsafeBufferPointer { istd in
                                    let c = channels
                                    parallelRows(rows, rowLength: c) { range in
                                        for r in range {
                                            let base = r * c
                                            for j in 0..<c {
                                                let n = (x[base + j] - mu[j]) * istd[j]
                                                xhat[base + j] = n
                                                out[base + j] = n * gamma[j] + beta[j]
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
        savedNormalized = normalized
        savedInverseStd = inverseStd
        return output
    }

    /// `dx = γ·istd·(dy − mean(dy) − x̂·mean(dy·x̂))`, `dγ += Σ dy·x̂`, `dβ += Σ dy` (per channel).
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let xhat = savedNormalized else { preconditionFailure("BatchNorm2D.backward without a training-mode forward") }
        precondition(gradOutput.shape == xhat.shape, "BatchNorm2D.backward: gradient \(gradOutput.shape) vs input \(xhat.shape)")
        let c = channels
        let rows = xhat.count / c
        let (sumGrad, sumGradXhat) = channelSums(gradOutput, xhat, rows: rows)
        weight.accumulateGradient(Tensor(shape: [c], scalars: sumGradXhat))
        bias.accumulateGradient(Tensor(shape: [c], scalars: sumGrad))
        let invRows = 1 / Float(rows)
        var coefficient = [Float](repeating: 0, count: c), meanGrad = coefficient, meanGradXhat = coefficient
        for j in 0..<c {
            coefficient[j] = weight.value.scalars[j] * savedInverseStd[j]
            meanGrad[j] = sumGrad[j] * invRows
            meanGradXhat[j] = sumGradXhat[j] * invRows
        }
        return Tensor(shape: xhat.shape, layout: xhat.layout) { dx in
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                xhat.scalars.withUnsafeBufferPointer { xh in
                    coefficient.withUnsafeBufferPointer { k in
                        meanGrad.withUnsafeBufferPointer { mg in
                            meanGradXhat.withUnsafeBufferPointer { mgx in
                                parallelRows(rows, rowLength: c) { range in
                                    for r in range {
                                        let base = r * c
                                        for j in 0..<c {
                                            dx[base + j] = k[j] * (dy[base + j] - mg[j] - xh[base + j] * mgx[j])
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

    private func applyAffine(_ input: Tensor, scale: [Float], shift: [Float], rows: Int) -> Tensor {
        Tensor(shape: input.shape, layout: input.layout) { out in
            input.scalars.withUnsafeBufferPointer { x in
                scale.withUnsafeBufferPointer { a in
                    shift.withUnsafeBufferPointer { b in
                        let c = channels
                        parallelRows(rows, rowLength: c) { range in
                            for r in range {
                                let base = r * c
                                for j in 0..<c { out[base + j] = x[base + j] * a[j] + b[j] }
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
                    var blockSum = [Float](repeating: 0, count: c), blockSquares = blockSum
                    blockSum.withUnsafeMutableBufferPointer { bs in
                        blockSquares.withUnsafeMutableBufferPointer { bq in
                            var r = lo
                            // Float accumulation over blocks of 256 rows, folded into double partial sums.
                            while r < hi {
                                let end = min(hi, r + 256)
                                for j in 0..<c { bs[j] = 0; bq[j] = 0 }
                                for row in r..<end {
                                    let base = row * c
                                    for j in 0..<c {
                                        let d = x[base + j] - x[j]
                                        bs[j] += d
                                        bq[j] += d * d
                                    }
                                }
                                for j in 0..<c {
                                    partial[(p * c + j) * 2] += Double(bs[j])
                                    partial[(p * c + j) * 2 + 1] += Double(bq[j])
                                }
                                r = end
                            }
                        }
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

    /// Per-channel `Σ dy` and `Σ dy·x̂`.
    private func channelSums(_ gradOutput: Tensor, _ xhat: Tensor, rows: Int) -> ([Float], [Float]) {
        let c = channels
        let parts = max(1, min(WorkerPool.shared.threadCount, rows * c / elementwiseParallelThreshold))
        var partialSums = [Double](repeating: 0, count: parts * c * 2)
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            xhat.scalars.withUnsafeBufferPointer { xh in
                partialSums.withUnsafeMutableBufferPointer { partial in
                    WorkerPool.shared.parallelFor(parts) { p in
                        let lo = rows * p / parts, hi = rows * (p + 1) / parts
                        var blockSum = [Float](repeating: 0, count: c), blockDot = blockSum
                        blockSum.withUnsafeMutableBufferPointer { bs in
                            blockDot.withUnsafeMutableBufferPointer { bd in
                                var r = lo
                                while r < hi {
                                    let end = min(hi, r + 256)
                                    for j in 0..<c { bs[j] = 0; bd[j] = 0 }
                                    for row in r..<end {
                                        let base = row * c
                                        for j in 0..<c {
                                            bs[j] += dy[base + j]
                                            bd[j] += dy[base + j] * xh[base + j]
                                        }
                                    }
                                    for j in 0..<c {
                                        partial[(p * c + j) * 2] += Double(bs[j])
                                        partial[(p * c + j) * 2 + 1] += Double(bd[j])
                                    }
                                    r = end
                                }
                            }
                        }
                    }
                }
            }
        }
        var sumGrad = [Float](repeating: 0, count: c), sumGradXhat = sumGrad
        for j in 0..<c {
            var s = 0.0, d = 0.0
            for p in 0..<parts { s += partialSums[(p * c + j) * 2]; d += partialSums[(p * c + j) * 2 + 1] }
            sumGrad[j] = Float(s)
            sumGradXhat[j] = Float(d)
        }
        return (sumGrad, sumGradXhat)
    }
}
