// Stochastic gradient descent with momentum, Nesterov momentum and L2 weight decay — `torch.optim.SGD`'s formulas
// (Sutskever et al. 2013, "On the importance of initialization and momentum in deep learning"), and the per-parameter
// state bookkeeping that SGD, RMSProp and Adam share.
import LiteCNNLayers
import LiteCNNTensor

/// Stochastic gradient descent, exactly `torch.optim.SGD`.
///
/// For every trainable parameter `p` with gradient `∇` (learning rate `lr`, momentum `μ`, dampening `τ`, weight decay `λ`):
///
///     g ← ∇ + λ·p
///     b ← g                      on the parameter's first update (when μ ≠ 0)
///     b ← μ·b + (1 − τ)·g        afterwards
///     g ← nesterov ? g + μ·b : b (when μ ≠ 0)
///     p ← p − lr·g
///
/// State (`state()`): `"momentum.<name>"`, the buffer `b` with the parameter's shape, when `μ ≠ 0`.
/// Buffers (`Parameter.Kind.buffer`, e.g. BatchNorm's running statistics) are never updated; neither is a parameter
/// whose gradient is empty. Updates of large tensors are split over `WorkerPool.shared`.
public final class SGD: Optimizer {
    public var learningRate: Float
    /// μ; 0 disables momentum (and its state).
    public let momentum: Float
    /// τ, the fraction of the new gradient left out of the momentum buffer (PyTorch's `dampening`).
    public let dampening: Float
    /// Nesterov momentum (PyTorch's `nesterov=True`; needs `μ > 0` and `τ = 0`).
    public let nesterov: Bool
    /// λ, the L2 penalty coefficient added to the gradient (`λ·p`).
    public let weightDecay: Float

    let store: ParameterStateStore

    /// An optimizer over `parameters` (typically `model.namedParameters()`; buffers among them are ignored).
    /// Names must be unique: they key the state.
    public init(parameters: [(name: String, parameter: Parameter)], learningRate: Float, momentum: Float = 0,
                dampening: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
        precondition(learningRate >= 0, "SGD: learning rate \(learningRate) is negative")
        precondition(momentum >= 0, "SGD: momentum \(momentum) is negative")
        precondition(weightDecay >= 0, "SGD: weight decay \(weightDecay) is negative")
        precondition(!nesterov || (momentum > 0 && dampening == 0), "SGD: Nesterov momentum needs momentum > 0 and dampening 0")
        self.learningRate = learningRate
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        self.weightDecay = weightDecay
        store = ParameterStateStore(optimizer: "SGD", parameters: parameters, kinds: momentum != 0 ? ["momentum"] : [],
                                    countsSteps: false)
    }

    public func step() {
        let lr = learningRate, wd = weightDecay, mu = momentum
        for entry in store.entries {
            let gradient = entry.parameter.gradient
            guard gradient.count > 0, gradient.count == entry.parameter.count else { continue }
            let first = entry.buffers.isEmpty
            entry.prepare(kinds: store.kinds.count)
            entry.step += 1
            let hasMomentum = mu != 0
            // b ← keep·b + take·g: (0, 1) on the first update, (μ, 1 − τ) afterwards.
            let keep: Float = first ? 0 : mu
            let take: Float = first ? 1 : 1 - dampening
            // The step direction is gradientPart·g + bufferPart·b.
            let gradientPart: Float = hasMomentum ? (nesterov ? 1 : 0) : 1
            let bufferPart: Float = hasMomentum ? (nesterov ? mu : 1) : 0
            let momentumBuffer = entry.buffers.first
            gradient.scalars.withUnsafeBufferPointer { g in
                entry.parameter.value.scalars.withUnsafeMutableBufferPointer { buffer in
                    let p = buffer  // a local copy: the inout argument is reloaded after every store, which blocks vectorization
                    parallelUpdate(p.count) { range in
                        if let b = momentumBuffer {
                            for i in range {
                                let d = g[i] + wd * p[i]
                                let buffer = keep * b[i] + take * d
                                b[i] = buffer
                                p[i] = p[i] - lr * (gradientPart * d + bufferPart * buffer)
                            }
                        } else {
                            for i in range { p[i] = p[i] - lr * (g[i] + wd * p[i]) }
                        }
                    }
                }
            }
        }
    }

    public func state() -> [String: Tensor] { store.export() }

    public func loadState(_ state: [String: Tensor]) throws { try store.load(state) }
}

// MARK: Shared by SGD, RMSProp and Adam

/// Elements below which an optimizer update stays on the calling thread (about 128 KB of each array).
let optimizerParallelThreshold = 1 << 15

/// Runs `body` over `0..<count`, split over the worker pool for large tensors.
@inline(__always)
func parallelUpdate(_ count: Int, _ body: (Range<Int>) -> Void) {
    WorkerPool.shared.parallelRanges(count, minimumChunk: optimizerParallelThreshold, body)
}

/// Why `Optimizer.loadState` refused a state dictionary.
public struct OptimizerStateError: Error, CustomStringConvertible, Equatable {
    /// The optimizer (`SGD`, `RMSProp`, `Adam`).
    public let optimizer: String
    /// The state key concerned (`"momentum.features.0.weight"`).
    public let key: String
    public let reason: String

    public init(optimizer: String, key: String, reason: String) {
        self.optimizer = optimizer
        self.key = key
        self.reason = reason
    }

    public var description: String { "\(optimizer) state \"\(key)\": \(reason)" }
}

/// One parameter an optimizer updates, with its state arrays (allocated on its first update).
final class ParameterState {
    let name: String
    let parameter: Parameter
    /// One array of `parameter.count` elements per state kind, in the store's `kinds` order; empty until first used.
    private(set) var buffers: [UnsafeMutableBufferPointer<Float>] = []
    /// Updates applied so far (Adam's bias correction uses it).
    var step = 0

    init(name: String, parameter: Parameter) {
        self.name = name
        self.parameter = parameter
    }

    deinit { for buffer in buffers { buffer.deallocate() } }

    /// Allocates `kinds` zero-filled arrays with the parameter's element count, once.
    func prepare(kinds: Int) {
        if let first = buffers.first {
            // The state was sized for the old shape; updating with it would read and write out of bounds.
            precondition(first.count == parameter.count,
                         "optimizer state of \"\(name)\" has \(first.count) elements but the parameter now has \(parameter.count) (shape \(parameter.shape)); build a new optimizer after changing a parameter's shape")
            return
        }
        guard kinds > 0 else { return }
        buffers = (0..<kinds).map { _ in
            let buffer = UnsafeMutableBufferPointer<Float>.allocate(capacity: parameter.count)
            buffer.initialize(repeating: 0)
            return buffer
        }
    }

    func release() {
        for buffer in buffers { buffer.deallocate() }
        buffers = []
        step = 0
    }
}

/// The parameters of one optimizer and their named state; `state()`/`loadState` for all three optimizers.
final class ParameterStateStore {
    let optimizer: String
    /// State kinds, in buffer order (`["momentum"]`, `["exp_avg", "exp_avg_sq"]`).
    let kinds: [String]
    /// Whether `"step.<name>"` (a one-element tensor) is part of the state.
    let countsSteps: Bool
    let entries: [ParameterState]
    private let entryIndex: [String: Int]

    init(optimizer: String, parameters: [(name: String, parameter: Parameter)], kinds: [String], countsSteps: Bool) {
        self.optimizer = optimizer
        self.kinds = kinds
        self.countsSteps = countsSteps
        entries = parameters.filter { $0.parameter.isTrainable }.map { ParameterState(name: $0.name, parameter: $0.parameter) }
        var index: [String: Int] = [:]
        for (i, entry) in entries.enumerated() {
            precondition(index[entry.name] == nil, "\(optimizer): parameter name \"\(entry.name)\" appears twice")
            index[entry.name] = i
        }
        entryIndex = index
    }

    func export() -> [String: Tensor] {
        var state: [String: Tensor] = [:]
        for entry in entries where !entry.buffers.isEmpty || (countsSteps && entry.step > 0) {
            for (kind, buffer) in zip(kinds, entry.buffers) {
                state["\(kind).\(entry.name)"] = Tensor(shape: entry.parameter.shape, scalars: Array(buffer))
            }
            if countsSteps { state["step.\(entry.name)"] = Tensor(shape: [1], scalars: [Float(entry.step)]) }
        }
        return state
    }

    /// Validates everything before changing anything: every key must be `<kind>.<parameter>` of this optimizer, a
    /// parameter's keys come all or none, and when any parameter has state every parameter must (they are updated
    /// together), shapes must match and step counts must be non-negative integers.
    func load(_ state: [String: Tensor]) throws {
        let perParameter = kinds + (countsSteps ? ["step"] : [])
        var found = [Set<String>](repeating: [], count: entries.count)
        for key in state.keys.sorted() {
            guard let (kind, name) = splitKey(key), perParameter.contains(kind) else {
                throw OptimizerStateError(optimizer: optimizer, key: key, reason: perParameter.isEmpty
                    ? "this optimizer keeps no state (e.g. SGD without momentum)"
                    : "not a state of this optimizer (expected \(perParameter.map { "\"\($0).<parameter>\"" }.joined(separator: ", ")))")
            }
            guard let i = entryIndex[name] else {
                throw OptimizerStateError(optimizer: optimizer, key: key, reason: "no trainable parameter is named \"\(name)\"")
            }
            let tensor = state[key]!
            let expected = kind == "step" ? [1] : entries[i].parameter.shape
            guard tensor.shape == expected else {
                throw OptimizerStateError(optimizer: optimizer, key: key,
                                          reason: "shape \(tensor.shape) does not match the expected \(expected)")
            }
            if kind == "step" {
                let value = tensor.scalars[0]
                guard value.isFinite, value >= 0, value == value.rounded() else {
                    throw OptimizerStateError(optimizer: optimizer, key: key, reason: "step count \(value) is not a non-negative integer")
                }
            } else if let bad = tensor.scalars.firstIndex(where: { !$0.isFinite }) {
                throw OptimizerStateError(optimizer: optimizer, key: key, reason: "element \(bad) is \(tensor.scalars[bad])")
            }
            found[i].insert(kind)
        }
        let anyState = found.contains { !$0.isEmpty }
        if anyState {
            for (i, entry) in entries.enumerated() {
                for kind in perParameter where !found[i].contains(kind) {
                    throw OptimizerStateError(optimizer: optimizer, key: "\(kind).\(entry.name)",
                                              reason: "missing (the state covers other parameters, so it must cover this one)")
                }
            }
        }
        for entry in entries {
            entry.release()
            guard anyState else { continue }
            entry.prepare(kinds: kinds.count)
            for (k, kind) in kinds.enumerated() {
                _ = entry.buffers[k].update(fromContentsOf: state["\(kind).\(entry.name)"]!.scalars)
            }
            entry.step = countsSteps ? Int(state["step.\(entry.name)"]!.scalars[0]) : 1
        }
    }

    private func splitKey(_ key: String) -> (kind: String, name: String)? {
        guard let dot = key.firstIndex(of: ".") else { return nil }
        let kind = String(key[..<dot]), name = String(key[key.index(after: dot)...])
        return name.isEmpty ? nil : (kind, name)
    }
}
