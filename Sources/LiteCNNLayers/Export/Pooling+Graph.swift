import LiteCNNGraph

/// `MaxPool` with `ceil_mode`; symmetric pads.
extension MaxPool2D: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4 else {
            throw layerError("MaxPool2D needs an image input, got \(inputShape)", prefix: prefix, opType: "MaxPool", opset: builder.opset)
        }
        return builder.add("MaxPool", name: graphNodeName(prefix, "MaxPool"), inputs: [input], attributes: [
            "kernel_shape": .ints([kernelSize, kernelSize]), "strides": .ints([stride, stride]),
            "pads": .ints([padding, padding, padding, padding]), "ceil_mode": .int(ceilMode ? 1 : 0),
            "dilations": .ints([1, 1]),
        ])
    }
}

/// `AveragePool` with `ceil_mode` and `count_include_pad`.
extension AvgPool2D: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4 else {
            throw layerError("AvgPool2D needs an image input, got \(inputShape)", prefix: prefix, opType: "AveragePool",
                             opset: builder.opset)
        }
        if ceilMode && padding > 0 && countIncludePad {
            // PyTorch's divisor then excludes the part of a ceil-mode window beyond the right padding; ONNX's
            // definition of that case differs between runtimes.
            throw layerError("AvgPool2D with ceil_mode, padding and count_include_pad has no exact ONNX form",
                             prefix: prefix, opType: "AveragePool", opset: builder.opset)
        }
        return builder.add("AveragePool", name: graphNodeName(prefix, "AveragePool"), inputs: [input], attributes: [
            "kernel_shape": .ints([kernelSize, kernelSize]), "strides": .ints([stride, stride]),
            "pads": .ints([padding, padding, padding, padding]), "ceil_mode": .int(ceilMode ? 1 : 0),
            "count_include_pad": .int(countIncludePad ? 1 : 0),
        ])
    }
}

/// Output 1×1: `GlobalAveragePool`; output = input size: nothing; sizes that divide evenly: `AveragePool` with
/// kernel = stride = input / output. Other sizes (PyTorch's overlapping or repeated bins, e.g. AlexNet's 6×6 from a
/// 2×2 map at low resolution): the pooling is separable, so each output row `i` is `ReduceMean` over the rows
/// `⌊i·H/oh⌋ ..< ⌈(i+1)·H/oh⌉` (a `Slice`), the rows are `Concat`enated on axis 2, and the same is done for the
/// columns on axis 3 — exact, parameter-free, and channel-agnostic.
extension AdaptiveAvgPool2D: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4 else {
            throw layerError("AdaptiveAvgPool2D needs an image input, got \(inputShape)", prefix: prefix,
                             opType: "AveragePool", opset: builder.opset)
        }
        let (h, w) = (inputShape[1], inputShape[2])
        let (oh, ow) = (outputSize.height, outputSize.width)
        if oh == 1 && ow == 1 {
            return builder.add("GlobalAveragePool", name: graphNodeName(prefix, "GlobalAveragePool"), inputs: [input])
        }
        if oh == h && ow == w { return input }
        if h % oh == 0, w % ow == 0 {
            let (kh, kw) = (h / oh, w / ow)
            return builder.add("AveragePool", name: graphNodeName(prefix, "AveragePool"), inputs: [input], attributes: [
                "kernel_shape": .ints([kh, kw]), "strides": .ints([kh, kw]), "pads": .ints([0, 0, 0, 0]),
                "ceil_mode": .int(0), "count_include_pad": .int(0),
            ])
        }
        let rows = emitBins(axis: 2, inputSize: h, outputSize: oh, input: input, into: &builder, prefix: prefix)
        return emitBins(axis: 3, inputSize: w, outputSize: ow, input: rows, into: &builder, prefix: prefix)
    }

    /// Adaptive average pooling along one axis of an NCHW value: one `Slice` + `ReduceMean` per output position,
    /// `Concat`enated (nothing when the sizes are equal).
    private func emitBins(axis: Int, inputSize: Int, outputSize: Int, input: String, into builder: inout GraphBuilder,
                          prefix: String) -> String {
        if inputSize == outputSize { return input }
        var parts: [String] = []
        let axes = builder.int([axis])
        for i in 0..<outputSize {
            let start = i * inputSize / outputSize, end = ((i + 1) * inputSize + outputSize - 1) / outputSize
            let slice = builder.add("Slice", name: graphNodeName(prefix, "Slice"),
                                    inputs: [input, builder.int([start]), builder.int([end]), axes])
            if builder.opset >= 18 {
                parts.append(builder.add("ReduceMean", name: graphNodeName(prefix, "ReduceMean"), inputs: [slice, axes],
                                         attributes: ["keepdims": .int(1)]))
            } else {
                parts.append(builder.add("ReduceMean", name: graphNodeName(prefix, "ReduceMean"), inputs: [slice],
                                         attributes: ["axes": .ints([axis]), "keepdims": .int(1)]))
            }
        }
        return builder.add("Concat", name: graphNodeName(prefix, "Concat"), inputs: parts, attributes: ["axis": .int(axis)])
    }
}

/// `GlobalAveragePool` then `Flatten(axis 1)`: `[N, C, H, W]` → `[N, C]`.
extension GlobalAvgPool: GraphEmitting {
    public func emit(into builder: inout GraphBuilder, input: String, inputShape: [Int], prefix: String) throws -> String {
        guard inputShape.count == 4 else {
            throw layerError("GlobalAvgPool needs an image input, got \(inputShape)", prefix: prefix,
                             opType: "GlobalAveragePool", opset: builder.opset)
        }
        let pooled = builder.add("GlobalAveragePool", name: graphNodeName(prefix, "GlobalAveragePool"), inputs: [input])
        return builder.add("Flatten", name: graphNodeName(prefix, "Flatten"), inputs: [pooled], attributes: ["axis": .int(1)])
    }
}
