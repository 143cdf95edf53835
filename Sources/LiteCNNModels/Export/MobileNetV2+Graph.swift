import LiteCNNGraph
import LiteCNNLayers

extension MobileNetV2: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// `conv(x)`, plus `x` (`Add`) when the block keeps stride and channels.
extension MobileNetV2.InvertedResidual: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let out = try emitLayer(conv, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "conv"))
        return usesResidual ? builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [out, input]) : out
    }
}
