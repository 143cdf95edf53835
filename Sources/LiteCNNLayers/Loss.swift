import Foundation
import LiteCNNTensor

/// Softmax followed by cross-entropy against integer labels (`torch.nn.CrossEntropyLoss`, mean reduction).
///
/// - Logits `[N, K]`, labels `N` integers in `0..<K`.
/// - With label smoothing ε the target distribution is `q = (1 − ε)·onehot(label) + ε/K`, so
///   `L = (1/N) Σ_n Σ_k −q_k · log softmax(logits_n)_k` (PyTorch's formula).
/// - `gradient()` returns `∂L/∂logits = (softmax(logits) − q) / N` of the last `loss` call.
public final class SoftmaxCrossEntropy {
    public let labelSmoothing: Float
    private var lastGradient: Tensor?

    public init(labelSmoothing: Float = 0) {
        precondition(labelSmoothing >= 0 && labelSmoothing <= 1, "SoftmaxCrossEntropy: label smoothing \(labelSmoothing) outside [0, 1]")
        self.labelSmoothing = labelSmoothing
    }

    /// The mean loss over the batch; remembers `∂L/∂logits` for `gradient()`.
    public func loss(logits: Tensor, labels: [Int]) -> Float {
        precondition(logits.rank == 2, "SoftmaxCrossEntropy: logits must be [N, classes], got \(logits.shape)")
        let (n, k) = (logits.shape[0], logits.shape[1])
        precondition(labels.count == n, "SoftmaxCrossEntropy: \(labels.count) labels for a batch of \(n)")
        precondition(labels.allSatisfy { $0 >= 0 && $0 < k }, "SoftmaxCrossEntropy: labels must be in 0..<\(k)")
        let smoothing = labelSmoothing
        let uniform = smoothing / Float(k)
        var total = 0.0
        let gradient = Tensor(shape: [n, k], layout: .plain) { grad in
            logits.scalars.withUnsafeBufferPointer { x in
                let invBatch = 1 / Float(n)
                for row in 0..<n {
                    let base = row * k
                    var largest = -Float.infinity
                    for j in 0..<k { largest = max(largest, x[base + j]) }
                    var sumExp: Double = 0
                    for j in 0..<k {
                        let e = exp(x[base + j] - largest)
                        grad[base + j] = e
                        sumExp += Double(e)
                    }
                    let logSumExp = Double(largest) + log(sumExp)
                    // −Σ q_j·log p_j with log p_j = x_j − logSumExp and Σ q_j = 1.
                    var weightedLogits = 0.0
                    if uniform > 0 {
                        var sumLogits = 0.0
                        for j in 0..<k { sumLogits += Double(x[base + j]) }
                        weightedLogits += Double(uniform) * sumLogits
                    }
                    weightedLogits += Double(1 - smoothing) * Double(x[base + labels[row]])
                    total += logSumExp - weightedLogits
                    let inverse = Float(1 / sumExp)
                    for j in 0..<k { grad[base + j] = (grad[base + j] * inverse - uniform) * invBatch }
                    grad[base + labels[row]] -= (1 - smoothing) * invBatch
                }
            }
        }
        lastGradient = gradient
        return Float(total / Double(n))
    }

    /// `∂L/∂logits` of the last `loss(logits:labels:)` call, `[N, K]`.
    public func gradient() -> Tensor {
        guard let lastGradient else { preconditionFailure("SoftmaxCrossEntropy.gradient() before loss(logits:labels:)") }
        return lastGradient
    }
}
