import LiteCNNGraph

/// `Conv(X, W[, B])` with OIHW weights `prefix.weight`, bias `prefix.bias`; pads `[top, left, bottom, right]`.
extension Conv2D: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4, inputShape[3] == inputChannels else {
            throw layerError("Conv2D(\(inputChannels)→\(outputChannels)) got input \(inputShape)", prefix: prefix,
                             opType: "Conv", opset: builder.opset)
        }
        var inputs = [input, emitParameter(weight, "weight", prefix: prefix, into: &builder)]
        if let bias { inputs.append(emitParameter(bias, "bias", prefix: prefix, into: &builder)) }
        return builder.add("Conv", name: graphNodeName(prefix, "Conv"), inputs: inputs, attributes: [
            "kernel_shape": .ints([kernelSize.height, kernelSize.width]),
            "strides": .ints([stride.height, stride.width]),
            "dilations": .ints([dilation.height, dilation.width]),
            "pads": .ints([padding.top, padding.left, padding.bottom, padding.right]),
            "group": .int(groups),
        ])
    }
}
