// RMSProp (Tieleman & Hinton 2012, Lecture 6.5 of "Neural Networks for Machine Learning"; centered form from Graves
// 2013, "Generating sequences with recurrent neural networks") with `torch.optim.RMSprop`'s formulas, plus the
// TensorFlow placement of ε used by the MobileNet and EfficientNet training recipes.
import LiteCNNLayers
import LiteCNNTensor

/// RMSProp, exactly `torch.optim.RMSprop` (and TensorFlow's ε placement on request).
///
/// For every trainable parameter `p` with gradient `∇` (learning rate `lr`, smoothing `α`, momentum `μ`, weight decay
/// `λ`), with all state starting at zero:
///
///     g ← ∇ + λ·p
///     v ← α·v + (1 − α)·g²
///     centered:  m ← m + (1 − α)·(g − m),  v̂ = v − m²;   otherwise v̂ = v
///     denom = √v̂ + ε                 (PyTorch)
///     denom = √(v̂ + ε)               (`epsilonInsideSquareRoot`, TensorFlow's `tf.keras.optimizers.RMSprop`)
///     μ ≠ 0:  buf ← μ·buf + g/denom,  p ← p − lr·buf
///     μ = 0:  p ← p − lr·g/denom
///
/// The MobileNet V1/V2/V3 and EfficientNet papers trained with TensorFlow's RMSProp, decay 0.9, momentum 0.9 and
/// ε = 0.001 — that is `RMSProp(alpha: 0.9, epsilon: 1e-3, momentum: 0.9, epsilonInsideSquareRoot: true)` (torchvision's
/// reference recipe emulates it in PyTorch with ε = 0.0316 ≈ √0.001 outside the root). Two differences from TF 1.x's
/// `tf.train.RMSPropOptimizer` remain: it starts `v` at one instead of zero, and it folds `lr` into the momentum buffer,
/// which matters only while the learning rate changes.
///
/// State (`state()`): `"square_avg.<name>"` (v), `"grad_avg.<name>"` (m, when centered), `"momentum.<name>"` (buf,
/// when μ ≠ 0), each with the parameter's shape. Buffers and parameters with an empty gradient are skipped.
public final class RMSProp: Optimizer {
    public var learningRate: Float
    /// α, the smoothing constant of the running averages (PyTorch's `alpha`, TensorFlow's `rho`/`decay`).
    public let alpha: Float
    /// ε, added to the denominator (outside or inside the square root).
    public let epsilon: Float
    /// μ; 0 disables the momentum buffer.
    public let momentum: Float
    /// Whether the variance estimate is centered by the running mean of the gradient.
    public let centered: Bool
    /// λ, the L2 penalty coefficient added to the gradient.
    public let weightDecay: Float
    /// `true`: `denom = √(v̂ + ε)` (TensorFlow); `false`: `denom = √v̂ + ε` (PyTorch).
    public let epsilonInsideSquareRoot: Bool

    let store: ParameterStateStore

    /// An optimizer over `parameters` (typically `model.namedParameters()`; buffers among them are ignored).
    public init(parameters: [(name: String, parameter: Parameter)], learningRate: Float, alpha: Float = 0.99,
                epsilon: Float = 1e-8, momentum: Float = 0, centered: Bool = false, weightDecay: Float = 0,
                epsilonInsideSquareRoot: Bool = false) {
        precondition(learningRate >= 0, "RMSProp: learning rate \(learningRate) is negative")
        precondition(alpha >= 0 && alpha < 1, "RMSProp: alpha \(alpha) outside [0, 1)")
        precondition(epsilon >= 0, "RMSProp: epsilon \(epsilon) is negative")
        precondition(momentum >= 0, "RMSProp: momentum \(momentum) is negative")
        precondition(weightDecay >= 0, "RMSProp: weight decay \(weightDecay) is negative")
        self.learningRate = learningRate
        self.alpha = alpha
        self.epsilon = epsilon
        self.momentum = momentum
        self.centered = centered
        self.weightDecay = weightDecay
        self.epsilonInsideSquareRoot = epsilonInsideSquareRoot
        var kinds = ["square_avg"]
        if centered { kinds.append("grad_avg") }
        if momentum != 0 { kinds.append("momentum") }
        store = ParameterStateStore(optimizer: "RMSProp", parameters: parameters, kinds: kinds, countsSteps: false)
    }

    public func step() {
        let constants = RMSPropConstants(
            learningRate: learningRate, alpha: alpha, oneMinusAlpha: 1 - alpha, momentum: momentum, weightDecay: weightDecay,
            epsilonInside: epsilonInsideSquareRoot ? epsilon : 0, epsilonOutside: epsilonInsideSquareRoot ? 0 : epsilon)
        for entry in store.entries {
            let gradient = entry.parameter.gradient
            guard gradient.count > 0, gradient.count == entry.parameter.count else { continue }
            entry.prepare(kinds: store.kinds.count)
            entry.step += 1
            let v = entry.buffers[0]
            let m = centered ? entry.buffers[1] : v
            let buf = momentum != 0 ? entry.buffers[centered ? 2 : 1] : v
            gradient.scalars.withUnsafeBufferPointer { g in
                entry.parameter.value.scalars.withUnsafeMutableBufferPointer { p in
                    switch (centered, momentum != 0) {
                    case (false, false): rmspropUpdate(StaticFalse.self, StaticFalse.self, constants, p, g, v, m, buf)
                    case (false, true): rmspropUpdate(StaticFalse.self, StaticTrue.self, constants, p, g, v, m, buf)
                    case (true, false): rmspropUpdate(StaticTrue.self, StaticFalse.self, constants, p, g, v, m, buf)
                    case (true, true): rmspropUpdate(StaticTrue.self, StaticTrue.self, constants, p, g, v, m, buf)
                    }
                }
            }
        }
    }

    public func state() -> [String: Tensor] { store.export() }

    public func loadState(_ state: [String: Tensor]) throws { try store.load(state) }
}

// MARK: Kernel

/// A compile-time switch: the update loop is specialized per combination, so no branch stays inside it.
protocol StaticFlag { static var isOn: Bool { get } }
enum StaticTrue: StaticFlag { static var isOn: Bool { true } }
enum StaticFalse: StaticFlag { static var isOn: Bool { false } }

struct RMSPropConstants {
    var learningRate, alpha, oneMinusAlpha, momentum, weightDecay, epsilonInside, epsilonOutside: Float
}

/// One RMSProp update of `p` (see `RMSProp`); `m` and `buf` are only touched when `Centered`/`Momentum` are on.
///
/// Written on 8-float vectors by hand: with up to five arrays the auto-vectorizer gives up on its aliasing checks.
/// The tail is padded into one last vector. Operations and their order are the scalar formulas' (no fused
/// multiply-adds), so the results equal an element-by-element loop.
private func rmspropUpdate<Centered: StaticFlag, Momentum: StaticFlag>(
    _: Centered.Type, _: Momentum.Type, _ c: RMSPropConstants, _ p: UnsafeMutableBufferPointer<Float>,
    _ g: UnsafeBufferPointer<Float>, _ v: UnsafeMutableBufferPointer<Float>, _ m: UnsafeMutableBufferPointer<Float>,
    _ buf: UnsafeMutableBufferPointer<Float>
) {
    let count = p.count
    guard let p = p.baseAddress, let g = g.baseAddress, let v = v.baseAddress, let m = m.baseAddress,
          let buf = buf.baseAddress else { return }
    @inline(__always)
    func update(_ i: Int, _ lanes: Int) {
        let gi = Vector8.load(g + i, lanes) + c.weightDecay * Vector8.load(p + i, lanes)
        let vi = c.alpha * Vector8.load(v + i, lanes) + c.oneMinusAlpha * (gi * gi)
        Vector8.store(vi, v + i, lanes)
        var variance = vi
        if Centered.isOn {
            let old = Vector8.load(m + i, lanes)
            let mi = old + c.oneMinusAlpha * (gi - old)
            Vector8.store(mi, m + i, lanes)
            variance = vi - mi * mi
        }
        let denominator = (variance + c.epsilonInside).squareRoot() + c.epsilonOutside
        let weights = Vector8.load(p + i, lanes)
        if Momentum.isOn {
            let bi = c.momentum * Vector8.load(buf + i, lanes) + gi / denominator
            Vector8.store(bi, buf + i, lanes)
            Vector8.store(weights - c.learningRate * bi, p + i, lanes)
        } else {
            Vector8.store(weights - c.learningRate * (gi / denominator), p + i, lanes)
        }
    }
    parallelUpdate(count) { range in
        var i = range.lowerBound
        while i + 8 <= range.upperBound {
            update(i, 8)
            i += 8
        }
        if i < range.upperBound { update(i, range.upperBound - i) }
    }
}

/// Loads and stores of 8 floats, the last `lanes < 8` of an array padded with zeros.
enum Vector8 {
    @inline(__always)
    static func load(_ pointer: UnsafePointer<Float>, _ lanes: Int) -> SIMD8<Float> {
        if lanes == 8 { return UnsafeRawPointer(pointer).loadUnaligned(as: SIMD8<Float>.self) }
        var vector = SIMD8<Float>(repeating: 0)
        for k in 0..<lanes { vector[k] = pointer[k] }
        return vector
    }

    @inline(__always)
    static func load(_ pointer: UnsafeMutablePointer<Float>, _ lanes: Int) -> SIMD8<Float> {
        load(UnsafePointer(pointer), lanes)
    }

    @inline(__always)
    static func store(_ vector: SIMD8<Float>, _ pointer: UnsafeMutablePointer<Float>, _ lanes: Int) {
        if lanes == 8 { UnsafeMutableRawPointer(pointer).storeBytes(of: vector, as: SIMD8<Float>.self); return }
        for k in 0..<lanes { pointer[k] = vector[k] }
    }
}
