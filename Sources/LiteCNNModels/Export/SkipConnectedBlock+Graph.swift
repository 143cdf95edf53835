import LiteCNNGraph
import LiteCNNLayers

/// `body(x)`, plus `x` (`Add`) when the block keeps stride and channels.
extension SkipConnectedBlock {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let out = try emitLayer(body, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, bodyName))
        return usesResidual ? builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [out, input]) : out
    }
}
