import LiteCNNGraph

/// `Softmax` over LiteCNN's last axis: ONNX axis −1 for vectors, 1 (channels) for NCHW images.
extension Softmax: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let axis = inputShape.count == 4 ? 1 : -1
        if builder.opset < 13 && !(inputShape.count == 2 || axis == inputShape.count - 1) {
            throw layerError("Softmax over the channels of an image needs opset 13 or later", prefix: prefix,
                             opType: "Softmax", opset: builder.opset)
        }
        return builder.add("Softmax", name: graphNodeName(prefix, "Softmax"), inputs: [input], attributes: ["axis": .int(axis)])
    }
}
