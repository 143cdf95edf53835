// Magnitude pruning — Han et al. 2015, "Learning both Weights and Connections for Efficient Neural Networks"
// (arXiv:1506.02626), the first stage of Deep Compression (arXiv:1510.00149): the weights of smallest magnitude are set
// to zero and kept at zero while the network is fine-tuned.
import LiteCNNGraph
import LiteCNNLayers
import LiteCNNTensor
import LiteCNNTraining

/// Keep flags for the weights of a network: the pruned weights (flag `false`) are held at exactly zero.
///
/// `masks[name]` has one flag per element of the parameter `name`, in the parameter's row-major order (OIHW for
/// convolution weights, `[out, in]` for linear layers — the same order as `Parameter.value.scalars` and as the graph
/// initializer of that name). Parameters without a mask are not pruned.
///
/// During fine-tuning call `maskGradients(of:)` before every optimizer step and `apply(to:)` after it (`install(on:)`
/// wires both into a `Trainer`): the first keeps the gradient step from moving pruned weights, the second removes
/// what momentum or weight decay still adds, so pruned weights are exactly 0 after every step.
public struct PruningMasks: Sendable, Equatable, Codable {
    public var masks: [String: [Bool]]

    public init(masks: [String: [Bool]] = [:]) { self.masks = masks }

    /// Masks that keep exactly the non-zero weights of `parameters` (for a network pruned elsewhere).
    public static func keepingNonZeros(of parameters: [(name: String, parameter: Parameter)]) -> PruningMasks {
        var masks: [String: [Bool]] = [:]
        for (name, parameter) in parameters { masks[name] = parameter.value.scalars.map { $0 != 0 } }
        return PruningMasks(masks: masks)
    }

    /// Zeroes every pruned weight of the masked parameters among `parameters` (others are left alone).
    public func apply(to parameters: [(name: String, parameter: Parameter)]) {
        for (name, parameter) in parameters {
            guard let mask = masks[name] else { continue }
            precondition(mask.count == parameter.count,
                         "PruningMasks: mask of \(mask.count) flags for parameter '\(name)' of shape \(parameter.shape)")
            parameter.value.scalars.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count where !mask[i] { p[i] = 0 }
            }
        }
    }

    /// Zeroes the gradients of the pruned weights (a parameter whose gradient is empty is skipped).
    public func maskGradients(of parameters: [(name: String, parameter: Parameter)]) {
        for (name, parameter) in parameters {
            guard let mask = masks[name], parameter.isTrainable else { continue }
            precondition(mask.count == parameter.count,
                         "PruningMasks: mask of \(mask.count) flags for parameter '\(name)' of shape \(parameter.shape)")
            guard parameter.gradient.count == mask.count else { continue }
            parameter.gradient.scalars.withUnsafeMutableBufferPointer { g in
                for i in 0..<g.count where !mask[i] { g[i] = 0 }
            }
        }
    }

    /// Installs the masks on a trainer: gradients masked before every optimizer step, weights after it. Replaces the
    /// trainer's `beforeOptimizerStep` / `afterOptimizerStep` hooks. Also zeroes the pruned weights now.
    public func install(on trainer: Trainer, parameters: [(name: String, parameter: Parameter)]) {
        apply(to: parameters)
        let masks = self
        trainer.beforeOptimizerStep = { masks.maskGradients(of: parameters) }
        trainer.afterOptimizerStep = { masks.apply(to: parameters) }
    }

    /// Number of masked weights.
    public var totalCount: Int { masks.values.reduce(0) { $0 + $1.count } }
    /// Number of pruned (flag `false`) weights.
    public var prunedCount: Int { masks.values.reduce(0) { $0 + $1.lazy.filter { !$0 }.count } }
    /// Fraction of the masked weights that are pruned (0 when nothing is masked).
    public var sparsity: Double { totalCount == 0 ? 0 : Double(prunedCount) / Double(totalCount) }

    /// Fraction of the parameter's weights that are pruned, `nil` when it has no mask.
    public func sparsity(of name: String) -> Double? {
        guard let mask = masks[name], !mask.isEmpty else { return masks[name] == nil ? nil : 0 }
        return Double(mask.lazy.filter { !$0 }.count) / Double(mask.count)
    }

    /// The union of the pruned sets: a weight is kept only if every mask that covers it keeps it.
    public func intersecting(_ other: PruningMasks) -> PruningMasks {
        var result = masks
        for (name, mask) in other.masks {
            if let mine = result[name] {
                precondition(mine.count == mask.count, "PruningMasks: masks of '\(name)' differ in size (\(mine.count) vs \(mask.count))")
                result[name] = zip(mine, mask).map { $0 && $1 }
            } else {
                result[name] = mask
            }
        }
        return PruningMasks(masks: result)
    }
}

/// Unstructured pruning by weight magnitude.
///
/// The weights with the smallest `|w|` are pruned, exactly `round(sparsity · count)` of them (ties between equal
/// magnitudes are broken by position, lowest index first, so results are deterministic). Weights that are already 0
/// count among the smallest, so pruning an already pruned network to a higher sparsity keeps the old zeros pruned.
public enum MagnitudePruning {
    /// Names of the prunable weights of a graph, in graph order: the weight initializer of every `Conv` (input 1) and
    /// `Gemm` (input 1), and the constant operand of every `MatMul`. Biases and BatchNorm parameters are not prunable.
    public static func prunableWeights(_ graph: Graph) -> [String] {
        var names: [String] = []
        var seen: Set<String> = []
        func take(_ name: String) {
            guard case .float? = graph.initializers[name], !seen.contains(name) else { return }
            seen.insert(name)
            names.append(name)
        }
        for node in graph.nodes {
            switch node.opType {
            case "Conv", "Gemm":
                if node.inputs.count > 1 { take(node.inputs[1]) }
            case "MatMul":
                for input in node.inputs.prefix(2) { take(input) }
            default:
                break
            }
        }
        return names
    }

    /// Prunes each parameter named in `sparsity` to its own target (fraction in [0, 1] of its weights set to zero).
    /// Parameters not named get no mask. Naming a parameter that is not in `parameters` is a programmer error.
    public static func layerwise(_ parameters: [(name: String, parameter: Parameter)], sparsity: [String: Double]) -> PruningMasks {
        let available = Set(parameters.map(\.name))
        for (name, s) in sparsity {
            precondition(available.contains(name), "MagnitudePruning.layerwise: no parameter named '\(name)'")
            precondition(s >= 0 && s <= 1, "MagnitudePruning.layerwise: sparsity \(s) of '\(name)' is outside [0, 1]")
        }
        var masks: [String: [Bool]] = [:]
        for (name, parameter) in parameters {
            guard let s = sparsity[name] else { continue }
            let values = parameter.value.scalars
            let pruneCount = Int((s * Double(values.count)).rounded())
            masks[name] = keepFlags(magnitudes: [values.map(abs)], pruneCount: pruneCount)[0]
        }
        return PruningMasks(masks: masks)
    }

    /// Prunes all `parameters` together to `sparsity` with one magnitude threshold across them (Han et al.'s global
    /// variant): layers with many small weights lose more. Every parameter gets a mask.
    public static func global(_ parameters: [(name: String, parameter: Parameter)], sparsity: Double) -> PruningMasks {
        precondition(sparsity >= 0 && sparsity <= 1, "MagnitudePruning.global: sparsity \(sparsity) is outside [0, 1]")
        let magnitudes = parameters.map { $0.parameter.value.scalars.map(abs) }
        let total = magnitudes.reduce(0) { $0 + $1.count }
        let flags = keepFlags(magnitudes: magnitudes, pruneCount: Int((sparsity * Double(total)).rounded()))
        var masks: [String: [Bool]] = [:]
        for (i, (name, _)) in parameters.enumerated() { masks[name] = flags[i] }
        return PruningMasks(masks: masks)
    }

    /// Masks for the prunable weights of `parameters` at one sparsity: the same fraction in every layer (`global`
    /// false) or one threshold over all (`global` true). `names` restricts which parameters are pruned (e.g.
    /// `prunableWeights(graph)`); `nil` prunes every parameter of rank ≥ 2 (convolution and linear weights).
    public static func masks(_ parameters: [(name: String, parameter: Parameter)], sparsity: Double, global: Bool,
                             names: [String]? = nil) -> PruningMasks {
        let selected: [(name: String, parameter: Parameter)]
        if let names {
            let wanted = Set(names)
            selected = parameters.filter { wanted.contains($0.name) }
        } else {
            selected = parameters.filter { $0.parameter.isTrainable && $0.parameter.shape.count >= 2 }
        }
        if global { return self.global(selected, sparsity: sparsity) }
        return layerwise(selected, sparsity: Dictionary(uniqueKeysWithValues: selected.map { ($0.name, sparsity) }))
    }

    /// Keep flags over several arrays of magnitudes so that exactly `pruneCount` elements (the smallest; ties by
    /// array then index order) are pruned.
    static func keepFlags(magnitudes: [[Float]], pruneCount: Int) -> [[Bool]] {
        let total = magnitudes.reduce(0) { $0 + $1.count }
        let k = min(max(pruneCount, 0), total)
        if k == 0 { return magnitudes.map { [Bool](repeating: true, count: $0.count) } }
        if k == total { return magnitudes.map { [Bool](repeating: false, count: $0.count) } }
        // The k-th smallest magnitude (0-based k − 1) is the threshold: everything below it is pruned, and among
        // the elements equal to it the first ones (in order) until k are pruned.
        var all = [Float]()
        all.reserveCapacity(total)
        for m in magnitudes { all.append(contentsOf: m) }
        let threshold = select(&all, k - 1)
        var below = 0
        for m in magnitudes { for v in m where v < threshold { below += 1 } }
        var equalBudget = k - below
        return magnitudes.map { m in
            m.map { v in
                if v < threshold { return false }
                if v == threshold && equalBudget > 0 { equalBudget -= 1; return false }
                return true
            }
        }
    }

    /// The element that would sit at `index` if `values` were sorted ascending (quickselect, median-of-three pivot;
    /// NaN magnitudes sort last). Reorders `values`. O(n) on average.
    public static func select(_ values: inout [Float], _ index: Int) -> Float {
        precondition(index >= 0 && index < values.count)
        func less(_ a: Float, _ b: Float) -> Bool { a < b || (!a.isNaN && b.isNaN) }
        var lo = 0, hi = values.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            // Median of three as the pivot.
            if less(values[mid], values[lo]) { values.swapAt(mid, lo) }
            if less(values[hi], values[lo]) { values.swapAt(hi, lo) }
            if less(values[hi], values[mid]) { values.swapAt(hi, mid) }
            let pivot = values[mid]
            var i = lo, j = hi
            while i <= j {
                while less(values[i], pivot) { i += 1 }
                while less(pivot, values[j]) { j -= 1 }
                if i <= j { values.swapAt(i, j); i += 1; j -= 1 }
            }
            if index <= j { hi = j } else if index >= i { lo = i } else { return values[index] }
        }
        return values[index]
    }
}
