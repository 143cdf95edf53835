import LiteCNNGraph
import LiteCNNLayers

extension ShuffleNetV2: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// The unit's forward: stride 2: `Concat(branch1(x), branch2(x))`; stride 1: `Split` x in two channel halves,
/// `Concat(x1, branch2(x2))`; then the channel shuffle (2 groups).
extension ShuffleNetV2.InvertedResidual: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let first: String, second: String
        if stride == 2 {
            first = try emitLayer(branch1, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "branch1"))
            second = try emitLayer(branch2, into: &builder, input: input, inputShape: inputShape, prefix: graphPath(prefix, "branch2"))
        } else {
            let half = inputChannels / 2, rest = inputChannels - half
            let halves: [String]
            if builder.opset >= 13 {
                halves = builder.addNode("Split", name: graphNodeName(prefix, "Split"), inputs: [input, builder.int([half, rest])],
                                         outputCount: 2, attributes: ["axis": .int(1)])
            } else {
                halves = builder.addNode("Split", name: graphNodeName(prefix, "Split"), inputs: [input], outputCount: 2,
                                         attributes: ["axis": .int(1), "split": .ints([half, rest])])
            }
            first = halves[0]
            second = try emitLayer(branch2, into: &builder, input: halves[1],
                                   inputShape: [inputShape[0], inputShape[1], inputShape[2], rest], prefix: graphPath(prefix, "branch2"))
        }
        let joined = builder.add("Concat", name: graphNodeName(prefix, "Concat"), inputs: [first, second],
                                 attributes: ["axis": .int(1)])
        return try emitLayer(shuffle, into: &builder, input: joined, inputShape: outputShape(for: inputShape),
                             prefix: graphPath(prefix, "shuffle"))
    }
}
