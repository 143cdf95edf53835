import LiteCNNGraph
import LiteCNNLayers

extension ResNet: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// The block's forward: `Relu(Add(body(x), downsample(x) or x))`. The body is `children` minus `downsample` and the
/// final activation (the last child).
extension ResNet.Block: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let all = children
        guard let last = all.last else { throw GraphError("layer '\(prefix)': ResNet block without children", opset: builder.opset) }
        let body = all.dropLast().filter { $0.name != "downsample" }
        let out = try emitChain(Array(body), into: &builder, input: input, inputShape: inputShape, prefix: prefix)
        let side = try downsample.map {
            try emitLayer($0, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "downsample"))
        } ?? input
        let sum = builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [out.value, side])
        return try emitLayer(last.layer, into: &builder, input: sum, inputShape: out.shape, prefix: graphPath(prefix, last.name))
    }
}
