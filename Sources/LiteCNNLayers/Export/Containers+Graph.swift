import LiteCNNGraph

/// The children in order.
extension Sequential: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChain(layers, into: &builder, input: input, inputShape: inputShape, prefix: prefix).value
    }
}

/// `Add(body(x), shortcut(x))`, or `Add(body(x), x)`.
extension Residual: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let out = try emitLayer(body, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, bodyName))
        let side = try shortcut.map {
            try emitLayer($0, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, shortcutName))
        } ?? input
        return builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [out, side])
    }
}

/// `Concat` of the branches on the channel axis (1 for NCHW images, the last axis otherwise).
extension Concat: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        var outputs: [String] = []
        for (name, layer) in branches {
            outputs.append(try emitLayer(layer, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, name)))
        }
        if outputs.count == 1 { return outputs[0] }
        let rank = outputShape(for: inputShape).count
        return builder.add("Concat", name: graphNodeName(prefix, "Concat"), inputs: outputs,
                           attributes: ["axis": .int(channelAxis(rank: rank))])
    }
}
