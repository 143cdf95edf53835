import LiteCNNGraph
import LiteCNNLayers

extension ShuffleNetV1: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// The unit's forward: branch `gconv1 → shuffle → dw → gconv2`; stride 2: `Concat(AvgPool(x), branch)` on the
/// channels, stride 1: `Add(x, branch)`; then `Relu`.
extension ShuffleNetV1.ShuffleUnit: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let branch: [(name: String, layer: any Layer)] = [("gconv1", gconv1), ("shuffle", shuffle), ("dw", dw), ("gconv2", gconv2)]
        let y = try emitChain(branch, into: &builder, input: input, inputShape: inputShape, prefix: prefix)
        let joined: String
        if stride == 2 {
            let pooled = try emitLayer(shortcutPool, into: &builder, input: input, inputShape: inputShape,
                                       prefix: graphPath(prefix, "shortcut_pool"))
            joined = builder.add("Concat", name: graphNodeName(prefix, "Concat"), inputs: [pooled, y.value],
                                 attributes: ["axis": .int(1)])
        } else {
            joined = builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [input, y.value])
        }
        return try emitLayer(relu, into: &builder, input: joined, inputShape: outputShape(for: inputShape),
                             prefix: graphPath(prefix, "relu"))
    }
}
