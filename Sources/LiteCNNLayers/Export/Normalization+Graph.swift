import LiteCNNGraph

/// `BatchNormalization(X, scale, B, mean, var)` in inference form: `prefix.weight`, `prefix.bias`,
/// `prefix.running_mean`, `prefix.running_var`, `epsilon`; ONNX's `momentum` is `1 − momentum` (PyTorch's convention).
/// Kept as its own node: the runtime folds it into the preceding convolution.
extension BatchNorm2D: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.last == channels, inputShape.count >= 2 else {
            throw layerError("BatchNorm2D(\(channels)) got input \(inputShape)", prefix: prefix,
                             opType: "BatchNormalization", opset: builder.opset)
        }
        let inputs = [input,
                      emitParameter(weight, "weight", prefix: prefix, into: &builder),
                      emitParameter(bias, "bias", prefix: prefix, into: &builder),
                      emitParameter(runningMean, "running_mean", prefix: prefix, into: &builder),
                      emitParameter(runningVariance, "running_var", prefix: prefix, into: &builder)]
        return builder.add("BatchNormalization", name: graphNodeName(prefix, "BatchNormalization"), inputs: inputs,
                           attributes: ["epsilon": .float(epsilon), "momentum": .float(1 - momentum)])
    }
}
