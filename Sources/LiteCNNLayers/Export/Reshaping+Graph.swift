import LiteCNNGraph

/// `Flatten(axis 1)`: NCHW `[N, C, H, W]` → `[N, C·H·W]` in C, H, W order — the order LiteCNN's `Flatten` uses.
extension Flatten: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        builder.add("Flatten", name: graphNodeName(prefix, "Flatten"), inputs: [input], attributes: ["axis": .int(1)])
    }
}

/// PyTorch's channel shuffle: `Reshape [N, g, C/g, H, W]` → `Transpose [0, 2, 1, 3, 4]` → `Reshape [N, C, H, W]`
/// (rank 2: `[N, g, C/g]`, `[0, 2, 1]`, `[N, C]`). The batch is written as 0 (copied from the input, `allowzero` 0),
/// so a dynamic batch works.
extension ChannelShuffle: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard let channels = inputShape.last, inputShape.count == 4 || inputShape.count == 2, channels % groups == 0 else {
            throw layerError("ChannelShuffle(\(groups)) got input \(inputShape)", prefix: prefix, opType: "Reshape",
                             opset: builder.opset)
        }
        let spatial = inputShape.count == 4 ? [inputShape[1], inputShape[2]] : []
        let split = builder.int([0, groups, channels / groups] + spatial)
        let merged = builder.int([0, channels] + spatial)
        let perm = inputShape.count == 4 ? [0, 2, 1, 3, 4] : [0, 2, 1]
        let grouped = builder.add("Reshape", name: graphNodeName(prefix, "Reshape"), inputs: [input, split])
        let swapped = builder.add("Transpose", name: graphNodeName(prefix, "Transpose"), inputs: [grouped],
                                  attributes: ["perm": .ints(perm)])
        return builder.add("Reshape", name: graphNodeName(prefix, "Reshape"), inputs: [swapped, merged])
    }
}
