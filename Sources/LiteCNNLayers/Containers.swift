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
