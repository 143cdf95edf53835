// Knowledge distillation loss (Hinton, Vinyals & Dean 2015, "Distilling the Knowledge in a Neural Network"): the
// student matches the teacher's temperature-softened class distribution and the true labels.
import Foundation
import LiteCNNLayers
import LiteCNNTensor

/// Hinton et al.'s distillation loss for student logits `s` and teacher logits `t` (`[N, K]` each) and labels:
///
///     L = alpha · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − alpha) · CE(s, labels)
///
/// where KL is summed over classes and averaged over the batch (PyTorch's
/// `kl_div(log_softmax(s/T), softmax(t/T), reduction="batchmean")`) and CE is `SoftmaxCrossEntropy` with
/// `labelSmoothing` (mean over the batch). The T² factor keeps the soft term's gradient magnitude independent of T.
///
/// `gradient()` is `∂L/∂s = alpha · T · (softmax(s/T) − softmax(t/T)) / N + (1 − alpha) · ∂CE/∂s`, `[N, K]`. The
/// teacher receives no gradient.
public final class DistillationLoss {
    /// T, the softmax temperature (> 0); larger T gives softer distributions.
    public let temperature: Float
    /// Weight of the distillation term, in [0, 1]; `1 − alpha` weights the cross-entropy on the labels.
    public let alpha: Float
    /// ε of the cross-entropy's label smoothing.
    public let labelSmoothing: Float
    /// `T²·KL` of the last `loss` call (before the alpha weighting), for logging.
    public private(set) var lastDistillationTerm: Float = 0
    /// The cross-entropy of the last `loss` call (before the `1 − alpha` weighting), for logging.
    public private(set) var lastCrossEntropy: Float = 0

    private let crossEntropy: SoftmaxCrossEntropy
    private var lastGradient: Tensor?

    public init(temperature: Float = 4, alpha: Float = 0.9, labelSmoothing: Float = 0) {
        precondition(temperature.isFinite && temperature > 0, "DistillationLoss: temperature \(temperature) must be positive")
        precondition(alpha.isFinite && alpha >= 0 && alpha <= 1, "DistillationLoss: alpha \(alpha) outside [0, 1]")
        self.temperature = temperature
        self.alpha = alpha
        self.labelSmoothing = labelSmoothing
        crossEntropy = SoftmaxCrossEntropy(labelSmoothing: labelSmoothing)
    }

    /// The loss averaged over the batch; remembers `∂L/∂studentLogits` for `gradient()`.
    /// `studentLogits` and `teacherLogits` are `[N, K]` with the same shape; `labels` has N entries in `0..<K`.
    public func loss(studentLogits: Tensor, teacherLogits: Tensor, labels: [Int]) -> Float {
        precondition(studentLogits.rank == 2, "DistillationLoss: student logits must be [N, classes], got \(studentLogits.shape)")
        precondition(teacherLogits.shape == studentLogits.shape,
                     "DistillationLoss: teacher logits \(teacherLogits.shape) vs student logits \(studentLogits.shape)")
        let (n, k) = (studentLogits.shape[0], studentLogits.shape[1])
        let hardLoss = crossEntropy.loss(logits: studentLogits, labels: labels)
        let hardGradient = crossEntropy.gradient()
        let inverseT = 1 / Double(temperature)
        let softScale = Float(Double(alpha) * Double(temperature) / Double(n))  // α·T/N
        let hardScale = 1 - alpha
        var divergence = 0.0
        var studentLog = [Double](repeating: 0, count: k), teacherLog = studentLog
        let gradient = Tensor(shape: [n, k], layout: .plain) { grad in
            studentLogits.scalars.withUnsafeBufferPointer { s in
                teacherLogits.scalars.withUnsafeBufferPointer { t in
                    hardGradient.scalars.withUnsafeBufferPointer { hard in
                        for row in 0..<n {
                            let base = row * k
                            logSoftmax(s, base: base, count: k, inverseT: inverseT, into: &studentLog)
                            logSoftmax(t, base: base, count: k, inverseT: inverseT, into: &teacherLog)
                            for j in 0..<k {
                                let pTeacher = exp(teacherLog[j])
                                // 0·log 0 = 0 (PyTorch's xlogy) when the teacher's probability underflows.
                                if pTeacher > 0 { divergence += pTeacher * (teacherLog[j] - studentLog[j]) }
                                let pStudent = exp(studentLog[j])
                                grad[base + j] = softScale * Float(pStudent - pTeacher) + hardScale * hard[base + j]
                            }
                        }
                    }
                }
            }
        }
        let softLoss = Double(temperature) * Double(temperature) * divergence / Double(n)
        lastDistillationTerm = Float(softLoss)
        lastCrossEntropy = hardLoss
        lastGradient = gradient
        return Float(Double(alpha) * softLoss + Double(hardScale) * Double(hardLoss))
    }

    /// `∂L/∂studentLogits` of the last `loss` call, `[N, K]`.
    public func gradient() -> Tensor {
        guard let lastGradient else { preconditionFailure("DistillationLoss.gradient() before loss(studentLogits:teacherLogits:labels:)") }
        return lastGradient
    }

    /// `log softmax(x[base ..< base + count] / T)` in double precision.
    private func logSoftmax(_ x: UnsafeBufferPointer<Float>, base: Int, count: Int, inverseT: Double, into out: inout [Double]) {
        var largest = -Double.infinity
        for j in 0..<count { largest = max(largest, Double(x[base + j]) * inverseT) }
        var sum = 0.0
        for j in 0..<count {
            out[j] = Double(x[base + j]) * inverseT - largest
            sum += exp(out[j])
        }
        let logSum = log(sum)
        for j in 0..<count { out[j] -= logSum }
    }
}
