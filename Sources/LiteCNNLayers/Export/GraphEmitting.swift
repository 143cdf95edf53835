import LiteCNNGraph
import LiteCNNTensor

/// A layer that can write itself into a graph with ONNX semantics, in inference form (running statistics, no
/// dropout). Every layer of LiteCNNLayers conforms (one extension file per layer family in this folder); the zoo's
/// models and blocks conform in LiteCNNModels/Export.
///
/// - `input`: the name of the value the layer consumes. Its logical ONNX layout is NCHW for images, `[N, F]` for
///   vectors; `inputShape` gives the same tensor in LiteCNN's own layout (NHWC `[N, H, W, C]`, or `[N, F]`), which is
///   what `outputShape(for:)` takes.
/// - `prefix`: the layer's dotted path in the tree (`features.3`); parameters become initializers named
///   `prefix.localName` — the torchvision state_dict names of `namedParameters()`.
/// - Returns the name of the output value (the input itself for layers that are the identity at inference).
/// - Throws `GraphError` (naming the layer's path) when the layer has no exact ONNX form for this shape or opset.
public protocol GraphEmitting: Layer {
    func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String
}

/// Joins a path and a child name with a dot (`features` + `0` = `features.0`).
public func graphPath(_ prefix: String, _ name: String) -> String { prefix.isEmpty ? name : prefix + "." + name }

/// A node name for an operator of the layer at `prefix` (`/features.0/Conv`, PyTorch's exporter style).
public func graphNodeName(_ prefix: String, _ opType: String) -> String { "/" + (prefix.isEmpty ? "" : prefix + "/") + opType }

/// Emits any layer: the layer's own `GraphEmitting` conformance, or an error naming its path and type.
public func emitLayer(_ layer: any Layer, into builder: inout GraphBuilder, input: String, inputShape: [Int],
                      prefix: String) throws -> String {
    guard let emitting = layer as? any GraphEmitting else {
        throw GraphError("layer '\(prefix.isEmpty ? "<model>" : prefix)' of type \(layer.typeName) has no graph export",
                         opset: builder.opset)
    }
    return try emitting.emit(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
}

/// Emits `layers` one after another (each child's prefix is `prefix.name`); returns the last output and its shape.
public func emitChain(_ layers: [(name: String, layer: any Layer)], into builder: inout GraphBuilder, input: String,
                      inputShape: [Int], prefix: String) throws -> (value: String, shape: [Int]) {
    var value = input, shape = inputShape
    for (name, layer) in layers {
        value = try emitLayer(layer, into: &builder, input: value, inputShape: shape, prefix: graphPath(prefix, name))
        shape = layer.outputShape(for: shape)
    }
    return (value, shape)
}

/// Adds the layer's parameter `local` as the initializer `prefix.local` (OIHW / `[out, in]` / `[C]`: LiteCNN stores
/// parameters in ONNX's order already) and returns its name.
func emitParameter(_ parameter: Parameter, _ local: String, prefix: String, into builder: inout GraphBuilder) -> String {
    builder.addInitializer(graphPath(prefix, local), parameter.value)
}

/// The ONNX axis of LiteCNN's last (channel) axis for a tensor of `rank`: 1 for images (NHWC → NCHW), else `rank − 1`.
func channelAxis(rank: Int) -> Int { rank == 4 ? 1 : rank - 1 }

/// A graph error about the layer at `prefix`.
func layerError(_ message: String, prefix: String, opType: String? = nil, opset: Int) -> GraphError {
    GraphError("layer '\(prefix.isEmpty ? "<model>" : prefix)': \(message)", node: nil, opType: opType, opset: opset)
}
