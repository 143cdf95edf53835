import LiteCNNGraph

/// `Gemm(X, W, B, transB = 1)` on `[N, in]` inputs: `Y = X·Wᵀ + B` with `prefix.weight` `[out, in]`.
extension Linear: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 2, inputShape[1] == inFeatures else {
            throw layerError("Linear(\(inFeatures)→\(outFeatures)) exports as Gemm and needs a [N, \(inFeatures)] input, got \(inputShape)",
                             prefix: prefix, opType: "Gemm", opset: builder.opset)
        }
        var inputs = [input, emitParameter(weight, "weight", prefix: prefix, into: &builder)]
        if let bias { inputs.append(emitParameter(bias, "bias", prefix: prefix, into: &builder)) }
        return builder.add("Gemm", name: graphNodeName(prefix, "Gemm"), inputs: inputs,
                           attributes: ["alpha": .float(1), "beta": .float(1), "transB": .int(1)])
    }
}
