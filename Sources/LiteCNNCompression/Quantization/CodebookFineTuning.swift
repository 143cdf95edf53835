// Trained quantization: fine-tuning the shared weights of a codebook (Deep Compression §3.3,
// https://arxiv.org/abs/1510.00149): ∂L/∂C_k = Σ_ij ∂L/∂W_ij · 1(I_ij = k).
import LiteCNNLayers
import LiteCNNTensor
import LiteCNNTraining

/// Codebook fine-tuning: all weights of a cluster share one value; gradients gathered per cluster.
///
/// Use it around any optimizer: `gatherGradients()` after backward, before the step, replaces every weight's gradient
/// by its cluster's gradient (the mean of the cluster members' gradients by default — the centroid gradient of Deep
/// Compression divided by the cluster size, so the learning rate means the same as for ordinary weights; `.sum` gives
/// the paper's centroid gradient). Since all members of a cluster then receive identical gradients, any element-wise
/// optimizer (SGD with momentum, Adam, weight decay) moves them identically. `snap()` after the step sets each
/// centroid to the mean of its members and writes `codebook[index]` back into every weight, so the weights equal
/// `codebooks[name].decoded()` bit for bit. The zero entry (pruned weights) is pinned: its gradient is 0 and its value
/// stays exactly 0. `install(on:)` wires both into a `Trainer`'s hooks.
public final class CodebookFineTuning {
    /// How per-cluster gradients are formed from the members' gradients.
    public enum GradientReduction: Sendable { case mean, sum }

    private struct Entry {
        let name: String
        let parameter: Parameter
        var codebook: CodebookTensor
        /// Codebook index pinned at exactly 0 (pruned weights), if any.
        let pinned: Int?
        let counts: [Int]
    }

    private var entries: [Entry]
    public let reduction: GradientReduction

    /// `codebooks` keyed by parameter name; parameters without a codebook are left alone (they train normally).
    /// Every codebook must match its parameter's shape; the weights are set to the decoded codebook right away.
    public init(parameters: [(name: String, parameter: Parameter)], codebooks: [String: CodebookTensor],
                reduction: GradientReduction = .mean) {
        self.reduction = reduction
        var entries: [Entry] = []
        for (name, parameter) in parameters {
            guard let codebook = codebooks[name] else { continue }
            precondition(parameter.shape.reduce(1, *) == codebook.indices.count,
                         "CodebookFineTuning: codebook of shape \(codebook.shape) for parameter '\(name)' of shape \(parameter.shape)")
            var counts = [Int](repeating: 0, count: codebook.codebook.count)
            for i in codebook.indices {
                precondition(Int(i) < counts.count, "CodebookFineTuning: index \(i) outside the codebook of '\(name)'")
                counts[Int(i)] += 1
            }
            entries.append(Entry(name: name, parameter: parameter, codebook: codebook, pinned: codebook.zeroIndex, counts: counts))
        }
        self.entries = entries
        for e in entries { Self.write(e) }
    }

    /// The current codebooks (centroids move with training; indices never change).
    public var codebooks: [String: CodebookTensor] {
        Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0.codebook) })
    }

    /// Before the optimizer step: each weight's gradient := its cluster's summed/mean gradient (zero cluster: 0).
    public func gatherGradients() {
        for e in entries {
            let k = e.codebook.codebook.count
            var sums = [Double](repeating: 0, count: k)
            let indices = e.codebook.indices
            e.parameter.gradient.scalars.withUnsafeMutableBufferPointer { g in
                indices.withUnsafeBufferPointer { idx in
                    for i in 0..<g.count { sums[Int(idx[i])] += Double(g[i]) }
                    var perCluster = [Float](repeating: 0, count: k)
                    for c in 0..<k where c != e.pinned && e.counts[c] > 0 {
                        perCluster[c] = Float(reduction == .mean ? sums[c] / Double(e.counts[c]) : sums[c])
                    }
                    for i in 0..<g.count { g[i] = perCluster[Int(idx[i])] }
                }
            }
        }
    }

    /// After the step: codebook := cluster means, weights := codebook[index] (zero entry pinned at 0).
    public func snap() {
        for i in entries.indices {
            let k = entries[i].codebook.codebook.count
            var sums = [Double](repeating: 0, count: k)
            let indices = entries[i].codebook.indices
            entries[i].parameter.value.scalars.withUnsafeBufferPointer { w in
                indices.withUnsafeBufferPointer { idx in
                    for j in 0..<w.count { sums[Int(idx[j])] += Double(w[j]) }
                }
            }
            for c in 0..<k where entries[i].counts[c] > 0 {
                let mean = Float(sums[c] / Double(entries[i].counts[c]))
                entries[i].codebook.codebook[c] = c == entries[i].pinned ? 0 : (mean.isFinite ? mean : entries[i].codebook.codebook[c])
            }
            Self.write(entries[i])
        }
    }

    /// Chains `gatherGradients` / `snap` into the trainer's hooks (after any hook already installed).
    public func install(on trainer: Trainer) {
        let before = trainer.beforeOptimizerStep, after = trainer.afterOptimizerStep
        trainer.beforeOptimizerStep = { [self] in before?(); gatherGradients() }
        trainer.afterOptimizerStep = { [self] in after?(); snap() }
    }

    private static func write(_ e: Entry) {
        let book = e.codebook.codebook, indices = e.codebook.indices
        e.parameter.value.scalars.withUnsafeMutableBufferPointer { w in
            indices.withUnsafeBufferPointer { idx in
                for j in 0..<w.count { w[j] = book[Int(idx[j])] }
            }
        }
    }
}
