import LiteCNNGraph
import LiteCNNLayers

extension SqueezeNet: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        try emitChildren(into: &builder, input: input, inputShape: inputShape, prefix: prefix)
    }
}

/// Fire's forward: `squeeze` stage, then `Concat(expand1x1(s), expand3x3(s))` on the channels, plus the bypass
/// (`Add` of the input, or of the `bypass` stage's 1×1 convolution of the input). The stages are read back from
/// `children`, whose names start with the stage name (`squeeze`, `squeeze_bn`, `squeeze_activation`, …).
extension SqueezeNet.Fire: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        func stage(_ name: String) -> [(name: String, layer: any Layer)] {
            children.filter { $0.name.split(separator: "_").first.map(String.init) == name }
        }
        let squeezed = try emitChain(stage("squeeze"), into: &builder, input: input, inputShape: inputShape, prefix: prefix)
        let a = try emitChain(stage("expand1x1"), into: &builder, input: squeezed.value, inputShape: squeezed.shape, prefix: prefix)
        let b = try emitChain(stage("expand3x3"), into: &builder, input: squeezed.value, inputShape: squeezed.shape, prefix: prefix)
        let joined = builder.add("Concat", name: graphNodeName(prefix, "Concat"), inputs: [a.value, b.value],
                                 attributes: ["axis": .int(1)])
        switch bypass {
        case .none:
            return joined
        case .identity:
            return builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [joined, input])
        case .projection:
            let side = try emitChain(stage("bypass"), into: &builder, input: input, inputShape: inputShape, prefix: prefix)
            return builder.add("Add", name: graphNodeName(prefix, "Add"), inputs: [joined, side.value])
        }
    }
}
