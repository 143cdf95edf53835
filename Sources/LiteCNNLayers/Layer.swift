import LiteCNNTensor

/// A trainable tensor (or a buffer such as BatchNorm's running statistics) with its accumulated gradient.
///
/// Optimizers, pruning, quantization and the compression operators all reach parameters through
/// `Layer.namedParameters()`, whose names follow torchvision's `state_dict` (`features.0.weight`).
public final class Parameter: @unchecked Sendable {
    /// What a tensor is for: a trained weight, or state that is saved but not trained.
    public enum Kind: String, Sendable, Codable { case weight, buffer }

    public let kind: Kind
    /// The value once materialized (`isMaterialized`); an empty placeholder before.
    private var storedValue = Tensor(shape: [0])
    public private(set) var isMaterialized: Bool
    private var storedGradient = Tensor(shape: [0])
    private var pendingShape: [Int]
    private var initializer: (@Sendable () -> Tensor)?

    /// A parameter holding `value`.
    public init(_ value: Tensor, kind: Kind = .weight) {
        self.storedValue = value
        self.isMaterialized = true
        self.pendingShape = value.shape
        self.kind = kind
    }

    /// A parameter of `shape` whose value is made by `initializer` on first access. Building a model therefore costs
    /// no memory until its weights are used (`litecnn zoo` counts VGG-16's 138 M parameters without allocating them).
    /// The initializer must be deterministic (draw its seed when the parameter is created, not when it runs).
    public init(shape: [Int], kind: Kind = .weight, initializer: @escaping @Sendable () -> Tensor) {
        self.pendingShape = shape
        self.isMaterialized = false
        self.kind = kind
        self.initializer = initializer
    }

    /// Uniform in [-bound, bound), seeded from `WeightInitialization` now, generated on first access.
    public static func uniform(_ shape: [Int], bound: Float, kind: Kind = .weight) -> Parameter {
        let seed = WeightInitialization.nextSeed()
        return Parameter(shape: shape, kind: kind) { WeightInitialization.uniform(shape, bound: bound, seed: seed) }
    }

    /// Normal with mean 0 and standard deviation `std`, seeded now, generated on first access.
    public static func normal(_ shape: [Int], std: Float, kind: Kind = .weight) -> Parameter {
        let seed = WeightInitialization.nextSeed()
        return Parameter(shape: shape, kind: kind) { WeightInitialization.normal(shape, std: std, seed: seed) }
    }

    /// Replaces the value by a lazily generated one of the same shape (architectures' own initialization schemes).
    public func reinitialize(uniformBound bound: Float) {
        let seed = WeightInitialization.nextSeed(), shape = self.shape
        dematerialize { WeightInitialization.uniform(shape, bound: bound, seed: seed) }
    }

    /// Replaces the value by a lazily generated normal one of the same shape.
    public func reinitialize(normalStd std: Float) {
        let seed = WeightInitialization.nextSeed(), shape = self.shape
        dematerialize { WeightInitialization.normal(shape, std: std, seed: seed) }
    }

    /// Replaces the value by a constant of the same shape.
    public func reinitialize(constant: Float) {
        let shape = self.shape
        dematerialize { Tensor(shape: shape, repeating: constant) }
    }

    private func dematerialize(_ makeValue: @escaping @Sendable () -> Tensor) {
        pendingShape = shape
        storedValue = Tensor(shape: [0])
        isMaterialized = false
        initializer = makeValue
    }

    @inline(__always)
    private func materialize() {
        if !isMaterialized {
            storedValue = initializer?() ?? Tensor(shape: pendingShape)
            initializer = nil
            isMaterialized = true
        }
    }

    public var value: Tensor {
        get {
            materialize()
            return storedValue
        }
        _modify {
            materialize()
            yield &storedValue
            pendingShape = storedValue.shape
        }
        set {
            storedValue = newValue
            isMaterialized = true
            initializer = nil
            pendingShape = newValue.shape
        }
    }

    /// ∂L/∂value, accumulated by `backward` (`+=`) until `zeroGradient()`; zeros of `shape` until then.
    /// Empty (shape `[0]`) for buffers.
    public var gradient: Tensor {
        get {
            makeGradient()
            return storedGradient
        }
        _modify {
            makeGradient()
            yield &storedGradient
        }
        set { storedGradient = newValue }
    }

    @inline(__always)
    private func makeGradient() {
        let wanted = kind == .weight ? pendingShape : [0]
        if storedGradient.shape != wanted { storedGradient = Tensor(shape: wanted) }
    }

    /// Frees the gradient's memory (inference-only use).
    public func releaseGradient() { storedGradient = Tensor(shape: [0]) }

    public var isTrainable: Bool { kind == .weight }
    public var shape: [Int] { isMaterialized ? storedValue.shape : pendingShape }
    public var count: Int { shape.reduce(1, *) }

    public func zeroGradient() {
        guard kind == .weight else { return }
        if storedGradient.shape != shape { storedGradient = Tensor(shape: shape); return }
        storedGradient.scalars.withUnsafeMutableBufferPointer { $0.update(repeating: 0) }
    }

    /// Adds `delta` into the gradient (shapes must match).
    public func accumulateGradient(_ delta: Tensor) {
        precondition(delta.count == count, "gradient of \(delta.shape) for parameter of \(shape)")
        gradient.scalars.withUnsafeMutableBufferPointer { g in
            delta.scalars.withUnsafeBufferPointer { d in
                for i in 0..<g.count { g[i] += d[i] }
            }
        }
    }
}

/// One line of a model summary: a leaf layer with the shape it produced.
public struct LayerTrace: Sendable {
    public var path: String
    public var type: String
    public var inputShape: [Int]
    public var outputShape: [Int]
    public var parameters: Int
    public var multiplyAdds: Int
}

/// A network layer with an explicit forward and hand-written backward pass.
///
/// Shapes: image tensors are NHWC `[batch, height, width, channels]`; vectors are `[batch, features]`.
///
/// Contract (llm.c style):
/// - `forward` computes the output; in training mode (`isTraining`) it also saves what `backward` needs.
///   Inference mode saves nothing.
/// - `backward(gradOutput)` must follow the `forward` it differentiates; it returns ∂L/∂input and *adds*
///   ∂L/∂parameter into each parameter's `gradient`.
/// - A layer instance appears once in a network (its saved state belongs to one call site).
public protocol Layer: AnyObject {
    func forward(_ input: Tensor) -> Tensor
    func backward(_ gradOutput: Tensor) -> Tensor

    /// Whether forward saves state for backward and uses batch statistics / dropout. Set it with `train()`/`eval()`.
    var isTraining: Bool { get set }

    /// This layer's own parameters and buffers (not its children's), with their local names.
    var localParameters: [(name: String, parameter: Parameter)] { get }

    /// Sub-layers with their local names; `namedParameters()` joins names with dots.
    var children: [(name: String, layer: any Layer)] { get }

    /// The output shape for an input shape, without computing anything.
    func outputShape(for inputShape: [Int]) -> [Int]

    /// Multiply-adds of this layer alone (convolutions and linear layers; 0 elsewhere) for one forward pass.
    func localMultiplyAdds(for inputShape: [Int]) -> Int

    /// Walks the leaf layers in execution order, reporting the shape each one produces. Leaves use the default;
    /// containers and blocks thread shapes through their children. Returns the output shape.
    func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int]

    /// A short type name for summaries (defaults to the Swift type name).
    var typeName: String { get }
}

extension Layer {
    public var localParameters: [(name: String, parameter: Parameter)] { [] }
    public var children: [(name: String, layer: any Layer)] { [] }
    public func localMultiplyAdds(for inputShape: [Int]) -> Int { 0 }
    public var typeName: String { String(describing: type(of: self)) }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        let output = outputShape(for: inputShape)
        visit(LayerTrace(path: path, type: typeName, inputShape: inputShape, outputShape: output,
                         parameters: localParameters.filter { $0.parameter.isTrainable }.reduce(0) { $0 + $1.parameter.count },
                         multiplyAdds: localMultiplyAdds(for: inputShape)))
        return output
    }

    /// Traces `children` as a chain (for blocks whose forward is a plain sequence).
    public func traceChain(_ layers: [(name: String, layer: any Layer)], _ inputShape: [Int], path: String,
                           _ visit: (LayerTrace) -> Void) -> [Int] {
        var shape = inputShape
        for (name, layer) in layers { shape = layer.trace(shape, path: Self.join(path, name), visit) }
        return shape
    }

    static func join(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

    /// Every parameter and buffer of the tree, named like torchvision's `state_dict` (`features.3.squeeze.weight`).
    public func namedParameters(prefix: String = "") -> [(name: String, parameter: Parameter)] {
        var result = localParameters.map { (Self.join(prefix, $0.name), $0.parameter) }
        for (name, child) in children {
            result += child.namedParameters(prefix: Self.join(prefix, name))
        }
        return result
    }

    /// Trainable parameters only.
    public var trainableParameters: [Parameter] { namedParameters().map(\.parameter).filter(\.isTrainable) }

    /// Number of trainable scalars (torchvision's `num_params` convention: buffers excluded).
    public var parameterCount: Int { trainableParameters.reduce(0) { $0 + $1.count } }

    /// Multiply-adds of one forward pass for `inputShape` (NHWC), summed over the whole tree.
    public func multiplyAdds(for inputShape: [Int]) -> Int {
        var total = 0
        _ = trace(inputShape, path: "") { total += $0.multiplyAdds }
        return total
    }

    /// Every layer of the tree, depth first, with its dotted path.
    public func namedLayers(prefix: String = "") -> [(name: String, layer: any Layer)] {
        var result: [(name: String, layer: any Layer)] = [(prefix, self)]
        for (name, child) in children { result += child.namedLayers(prefix: Self.join(prefix, name)) }
        return result
    }

    /// Switches the whole tree to training mode (batch statistics, dropout, saved activations).
    public func train() { for (_, layer) in namedLayers() { layer.isTraining = true } }
    /// Switches the whole tree to inference mode.
    public func eval() { for (_, layer) in namedLayers() { layer.isTraining = false } }

    /// Zeroes every gradient of the tree.
    public func zeroGradients() { for p in trainableParameters { p.zeroGradient() } }
}

/// A layer without parameters whose output shape equals its input shape (activations, dropout).
public protocol ShapePreservingLayer: Layer {}
extension ShapePreservingLayer {
    public func outputShape(for inputShape: [Int]) -> [Int] { inputShape }
}

// MARK: Loop helpers shared by the layers

/// Elements below which an elementwise layer stays on the calling thread.
let elementwiseParallelThreshold = 1 << 15

/// A scalar function applied elementwise. Passed as a type (not a closure) so that the loops below are specialized
/// and vectorized for each function instead of calling a closure per element.
protocol ElementwiseMap {
    static func apply(_ x: Float) -> Float
}

/// A scalar function of two tensors' elements (`a[i]`, `b[i]`), passed as a type for the same reason.
protocol ElementwiseZip {
    static func apply(_ a: Float, _ b: Float) -> Float
}

/// `out[i] = F(x[i])` over a whole tensor, split over the worker pool when large.
func mapElements<F: ElementwiseMap>(_ input: Tensor, _: F.Type) -> Tensor {
    Tensor(shape: input.shape, layout: input.layout) { out in
        input.scalars.withUnsafeBufferPointer { x in
            WorkerPool.shared.parallelRanges(out.count, minimumChunk: elementwiseParallelThreshold) { range in
                for i in range { out[i] = F.apply(x[i]) }
            }
        }
    }
}

/// `out[i] = F(a[i], b[i])` for two tensors with the same element count (shape taken from `b`).
func zipElements<F: ElementwiseZip>(_ a: Tensor, _ b: Tensor, _: F.Type) -> Tensor {
    precondition(a.count == b.count, "elementwise: \(a.shape) vs \(b.shape)")
    return Tensor(shape: b.shape, layout: b.layout) { out in
        a.scalars.withUnsafeBufferPointer { x in
            b.scalars.withUnsafeBufferPointer { y in
                WorkerPool.shared.parallelRanges(out.count, minimumChunk: elementwiseParallelThreshold) { range in
                    for i in range { out[i] = F.apply(x[i], y[i]) }
                }
            }
        }
    }
}

/// `a · b`.
enum Product: ElementwiseZip {
    @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b }
}

/// `e^x` without a library call, so loops over it vectorize (Cephes' single-precision polynomial; relative error
/// about 2·10⁻⁷ on [−87.3, 88.3]; 0 below, where e^x is subnormal, and saturating at e^88.3 above).
@inline(__always)
func vectorizableExp(_ x: Float) -> Float {
    let clamped = Swift.min(Swift.max(x, -87.3), 88.3)
    // Round x·log2(e) to an integer n with the 1.5·2²³ trick: n then sits in the low mantissa bits of `shifted`.
    let magic: Float = 12_582_912
    let shifted = clamped * 1.442_695_04 + magic
    let n = shifted - magic
    let r = clamped - n * 0.693_359_375 + n * 2.121_944_40e-4
    var p: Float = 1.987_569_15e-4
    p = p * r + 1.398_199_950_7e-3
    p = p * r + 8.333_451_907_3e-3
    p = p * r + 4.166_579_589_4e-2
    p = p * r + 1.666_666_545_9e-1
    p = p * r + 5.000_000_120_1e-1
    let expR = p * r * r + r + 1
    let twoToN = Float(bitPattern: (shifted.bitPattern &- magic.bitPattern &+ 127) &<< 23)
    return x < -87.3 ? 0 : expR * twoToN
}

/// Splits `rows` rows of `rowLength` elements over the worker pool in chunks of at least ~32 K elements.
@inline(__always)
func parallelRows(_ rows: Int, rowLength: Int, _ body: (Range<Int>) -> Void) {
    WorkerPool.shared.parallelRanges(rows, minimumChunk: max(1, elementwiseParallelThreshold / max(1, rowLength)), body)
}
