import LiteCNNGraph
import LiteCNNLayers

extension EfficientNet: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// `block(x)`, plus `x` (`Add`) when the block keeps stride and channels; stochastic depth is the identity at
/// inference, so it emits nothing.
extension EfficientNet.MBConv: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let out = try emitLayer(block, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "block"))
        guard usesResidual else { return out }
        let dropped = try emitLayer(stochasticDepth, into: &builder, input: out, inputShape: block.outputShape(for: inputShape),
                                    prefix: graphPath(prefix, "stochastic_depth"))
        return builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [dropped, input])
    }
}
