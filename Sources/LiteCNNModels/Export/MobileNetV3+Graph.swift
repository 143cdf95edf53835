import LiteCNNGraph
import LiteCNNLayers

extension MobileNetV3: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// `block(x)`, plus `x` (`Add`) when the block keeps stride and channels.
extension MobileNetV3.InvertedResidual: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let out = try emitLayer(block, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "block"))
        return usesResidual ? builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [out, input]) : out
    }
}
