import LiteCNNGraph

/// `x · gate(fc2(act(fc1(GlobalAveragePool(x)))))`: the 1×1 convolutions run on `[N, C, 1, 1]`, `Mul` broadcasts.
extension SqueezeExcitation: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4, inputShape[3] == inputChannels else {
            throw layerError("SqueezeExcitation(\(inputChannels)) got input \(inputShape)", prefix: prefix,
                             opType: "GlobalAveragePool", opset: builder.opset)
        }
        let pooled = builder.add("GlobalAveragePool", name: graphNodeName(prefix, "GlobalAveragePool"), inputs: [input])
        let scale = try emitChain(children, into: &builder, input: pooled,
                                  inputShape: [inputShape[0], 1, 1, inputChannels], prefix: prefix)
        return builder.add("Mul", name: graphNodeName(prefix, "Mul"), inputs: [input, scale.value])
    }
}
