import LiteCNNGraph
import LiteCNNLayers

extension MobileNetV2: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

extension MobileNetV2.InvertedResidual: GraphEmitting {}
