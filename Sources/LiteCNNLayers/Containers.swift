import LiteCNNTensor

/// Layers applied one after another (`torch.nn.Sequential`). Children are named `0`, `1`, … unless names are given,
/// so parameter names match torchvision's (`features.3.squeeze.weight`).
public final class Sequential: Layer {
    public private(set) var layers: [(name: String, layer: any Layer)]
    public var isTraining = false

    public init(_ layers: [any Layer]) {
        self.layers = layers.enumerated().map { (String($0.offset), $0.element) }
    }

    public convenience init(_ layers: any Layer...) { self.init(layers) }

    /// Children with explicit names (like an `OrderedDict` passed to `nn.Sequential`).
    public init(named layers: [(String, any Layer)]) {
        self.layers = layers.map { (name: $0.0, layer: $0.1) }
    }

    public var children: [(name: String, layer: any Layer)] { layers }

    /// Replaces the child at `index` (used by compression to swap operators).
    public func replace(at index: Int, with layer: any Layer) { layers[index].layer = layer }

    public func forward(_ input: Tensor) -> Tensor {
        var x = input
        for (_, layer) in layers { x = layer.forward(x) }
        return x
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        var g = gradOutput
        for (_, layer) in layers.reversed() { g = layer.backward(g) }
        return g
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        layers.reduce(inputShape) { $1.layer.outputShape(for: $0) }
    }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        traceChain(layers, inputShape, path: path, visit)
    }
}

/// A residual connection: `y = body(x) + shortcut(x)`, or `body(x) + x` without a shortcut.
///
/// - Shapes: `body` and `shortcut` (or the identity) must produce the same shape.
/// - Children: `body` and, if present, `shortcut`, under the names given (torchvision blocks call them e.g.
///   `conv`/`block` and `downsample`).
public final class Residual: Layer {
    public let body: any Layer
    public let shortcut: (any Layer)?
    public let bodyName: String
    public let shortcutName: String
    public var isTraining = false

    public init(_ body: any Layer, shortcut: (any Layer)? = nil, bodyName: String = "body", shortcutName: String = "shortcut") {
        self.body = body
        self.shortcut = shortcut
        self.bodyName = bodyName
        self.shortcutName = shortcutName
    }

    public var children: [(name: String, layer: any Layer)] {
        var result: [(name: String, layer: any Layer)] = [(bodyName, body)]
        if let shortcut { result.append((shortcutName, shortcut)) }
        return result
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        let out = body.outputShape(for: inputShape)
        let side = shortcut?.outputShape(for: inputShape) ?? inputShape
        precondition(out == side, "Residual: body output \(out) and shortcut output \(side) differ")
        return out
    }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        let out = body.trace(inputShape, path: Self.join(path, bodyName), visit)
        let side = shortcut?.trace(inputShape, path: Self.join(path, shortcutName), visit) ?? inputShape
        precondition(out == side, "Residual: body output \(out) and shortcut output \(side) differ")
        return out
    }

    public func forward(_ input: Tensor) -> Tensor {
        var out = body.forward(input)
        out += shortcut?.forward(input) ?? input
        return out
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        var gradInput = body.backward(gradOutput)
        gradInput += shortcut?.backward(gradOutput) ?? gradOutput
        return gradInput
    }
}

/// Parallel branches on the same input whose outputs are concatenated on the channel (last) axis
/// (Inception/SqueezeNet "fire" expand, ShuffleNet V2 stride-2 units).
///
/// - Every branch receives the same input; outputs must agree on every axis but the last.
/// - Output: `[..., Σ branch channels]` in branch order. Children are the named branches.
public final class Concat: Layer {
    public let branches: [(name: String, layer: any Layer)]
    public var isTraining = false
    private var savedChannelCounts: [Int] = []

    public init(_ branches: [(String, any Layer)]) {
        precondition(!branches.isEmpty, "Concat needs at least one branch")
        self.branches = branches.map { (name: $0.0, layer: $0.1) }
    }

    public var children: [(name: String, layer: any Layer)] { branches }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        combine(branches.map { $0.layer.outputShape(for: inputShape) })
    }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        combine(branches.map { $0.layer.trace(inputShape, path: Self.join(path, $0.name), visit) })
    }

    private func combine(_ shapes: [[Int]]) -> [Int] {
        var result = shapes[0]
        precondition(!result.isEmpty, "Concat: branch outputs must have a channel axis")
        for s in shapes.dropFirst() {
            precondition(s.count == result.count && s.dropLast() == result.dropLast(),
                         "Concat: branch outputs \(shapes) differ off the channel axis")
            result[result.count - 1] += s[s.count - 1]
        }
        return result
    }

    public func forward(_ input: Tensor) -> Tensor {
        let outputs = branches.map { $0.layer.forward(input) }
        if isTraining { savedChannelCounts = outputs.map { $0.shape.last ?? 0 } }
        return outputs.count == 1 ? outputs[0] : Tensor.concatenated(outputs, axis: -1)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(savedChannelCounts.count == branches.count, "Concat.backward without a training-mode forward")
        let pieces = branches.count == 1 ? [gradOutput] : gradOutput.split(axis: -1, sizes: savedChannelCounts)
        var gradInput = branches[0].layer.backward(pieces[0])
        for (branch, piece) in zip(branches.dropFirst(), pieces.dropFirst()) {
            gradInput += branch.layer.backward(piece)
        }
        return gradInput
    }
}

/// A layer whose forward pass is its `children` applied in order: models and blocks that are a named chain
/// (`features → avgpool → classifier`) conform and get `forward`, `backward`, `outputShape` and `trace` from
/// `children`, so only the names and the construction are written per architecture.
public protocol ChainLayer: Layer {}

extension ChainLayer {
    public func forward(_ input: Tensor) -> Tensor {
        children.reduce(input) { $1.layer.forward($0) }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        children.reversed().reduce(gradOutput) { $1.layer.backward($0) }
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        children.reduce(inputShape) { $1.layer.outputShape(for: $0) }
    }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        traceChain(children, inputShape, path: path, visit)
    }
}
