import LiteCNNGraph

// Activations as ONNX operators. Elementwise, so the same node serves NCHW images and [N, F] vectors.

extension ReLU: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        builder.add("Relu", name: graphNodeName(prefix, "Relu"), inputs: [input])
    }
}

/// `Clip(x, 0, 6)`: min/max as scalar inputs from opset 11, as attributes before.
extension ReLU6: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        if builder.opset >= 11 {
            let low = builder.floatScalar(0, name: "const.clip_min_0"), high = builder.floatScalar(6, name: "const.clip_max_6")
            return builder.add("Clip", name: graphNodeName(prefix, "Clip"), inputs: [input, low, high])
        }
        return builder.add("Clip", name: graphNodeName(prefix, "Clip"), inputs: [input],
                           attributes: ["min": .float(0), "max": .float(6)])
    }
}

extension Sigmoid: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        builder.add("Sigmoid", name: graphNodeName(prefix, "Sigmoid"), inputs: [input])
    }
}

/// `HardSigmoid(alpha = 1/6, beta = 0.5)` = `min(max(x + 3, 0), 6) / 6`.
extension HardSigmoid: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        builder.add("HardSigmoid", name: graphNodeName(prefix, "HardSigmoid"), inputs: [input],
                    attributes: ["alpha": .float(1 / 6), "beta": .float(0.5)])
    }
}

/// `HardSwish` from opset 14; `x · HardSigmoid(x)` before.
extension HardSwish: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        if builder.opset >= 14 {
            return builder.add("HardSwish", name: graphNodeName(prefix, "HardSwish"), inputs: [input])
        }
        let gate = builder.add("HardSigmoid", name: graphNodeName(prefix, "HardSigmoid"), inputs: [input],
                               attributes: ["alpha": .float(1 / 6), "beta": .float(0.5)])
        return builder.add("Mul", name: graphNodeName(prefix, "Mul"), inputs: [input, gate])
    }
}

/// `x · Sigmoid(x)` (PyTorch's export of SiLU).
extension SiLU: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        let gate = builder.add("Sigmoid", name: graphNodeName(prefix, "Sigmoid"), inputs: [input])
        return builder.add("Mul", name: graphNodeName(prefix, "Mul"), inputs: [input, gate])
    }
}

/// Nothing: the output is the input.
extension Identity: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        input
    }
}
