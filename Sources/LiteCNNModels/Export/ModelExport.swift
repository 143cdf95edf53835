import LiteCNNGraph
import LiteCNNLayers
import LiteCNNTensor

/// Exports `model` (any zoo model or `GraphEmitting` layer tree, with its current weights) to a graph with ONNX
/// semantics, in inference form: Conv (+ bias), BatchNormalization with the running statistics, activations as ONNX
/// operators, dropout and stochastic depth removed.
///
/// - Input: `input`, float32 NCHW `[batch, inputChannels, height, width]` (`batch` symbolic when `dynamicBatch`,
///   else 1). Output: `logits`, `[batch, classes]` (or NCHW for a model that ends on an image).
/// - Initializers: every parameter and buffer under its torchvision state_dict name (`namedParameters()`), plus the
///   shared constants of shape arithmetic (`const.*`: Clip bounds, Reshape targets, Split sizes).
/// - Metadata: `litecnn.model` (zoo name where recognized, else the type), `litecnn.architecture`,
///   `litecnn.input_shape` (`C,H,W`), `litecnn.classes`, `litecnn.parameters`, `litecnn.layout` (`NCHW`).
/// - Throws `GraphError` naming the layer when a layer has no exact ONNX form (e.g. an adaptive pooling whose input
///   does not divide into its output) or the opset is outside 11...21.
public func exportGraph(_ model: any Layer, inputChannels: Int, height: Int, width: Int, dynamicBatch: Bool = true,
                        opset: Int = 17) throws -> Graph {
    guard (11...21).contains(opset) else {
        throw GraphError("export supports opsets 11 to 21, asked for \(opset)", opset: opset)
    }
    guard inputChannels >= 1, height >= 1, width >= 1 else {
        throw GraphError("export needs a positive input size, got \(inputChannels)×\(height)×\(width)", opset: opset)
    }
    let architecture = String(describing: type(of: model))
    var builder = GraphBuilder(name: modelName(model) ?? architecture, opset: opset)
    let batch: ValueInfo.Dimension = dynamicBatch ? .symbolic("batch") : .fixed(1)
    builder.addInput("input", shape: [batch, .fixed(inputChannels), .fixed(height), .fixed(width)])
    let inputShape = [1, height, width, inputChannels]
    var output = try emitLayer(model, into: &builder, input: "input", inputShape: inputShape, prefix: "")
    let outputShape = model.outputShape(for: inputShape)
    if builder.isNodeOutput(output) {
        builder.renameValue(output, to: "logits")
    } else {
        // The model is the identity on its input (or ends on a constant): name the result with an Identity node.
        output = builder.add("Identity", name: "/Identity", inputs: [output])
        builder.renameValue(output, to: "logits")
    }
    let logical = outputShape.count == 4 ? [outputShape[0], outputShape[3], outputShape[1], outputShape[2]] : outputShape
    builder.addOutput("logits", shape: [batch] + logical.dropFirst().map { .fixed($0) })

    builder.setMetadata("litecnn.model", modelName(model) ?? architecture)
    builder.setMetadata("litecnn.architecture", architecture)
    builder.setMetadata("litecnn.input_shape", "\(inputChannels),\(height),\(width)")
    builder.setMetadata("litecnn.layout", "NCHW")
    builder.setMetadata("litecnn.parameters", String(model.parameterCount))
    if let classes = outputShape.last, outputShape.count == 2 { builder.setMetadata("litecnn.classes", String(classes)) }
    return builder.build()
}

/// The zoo name of a model built with a zoo variant's defaults, where it can be told from the model.
func modelName(_ model: any Layer) -> String? {
    switch model {
    case let m as SqueezeNet:
        let base = m.version == .v1_0 ? "squeezenet1_0" : "squeezenet1_1"
        switch (m.bypassKind, m.batchNorm) {
        case (.none, false): return base
        case (.none, true): return base + "_bn"
        case (.simple, false): return base + "_bypass"
        case (.complex, false): return base + "_complex_bypass"
        default: return nil
        }
    case let m as MobileNetV1: return m.width == 1 ? "mobilenet_v1" : "mobilenet_v1 (width \(m.width))"
    case let m as MobileNetV2: return m.width == 1 ? "mobilenet_v2" : "mobilenet_v2 (width \(m.width))"
    case let m as MobileNetV3:
        let base = "mobilenet_v3_\(m.variant.rawValue)"
        return m.width == 1 ? base : base + " (width \(m.width))"
    case let m as ShuffleNetV1:
        let base = "shufflenet_v1_g\(m.groups)"
        return m.scale == 1 ? base : base + " (scale \(m.scale))"
    case let m as ShuffleNetV2: return "shufflenet_v2_\(m.variant.rawValue)"
    case let m as EfficientNet: return m.variant.name
    case is AlexNet: return "alexnet"
    case let m as VGG: return m.kind.rawValue + (m.batchNorm ? "_bn" : "")
    case let m as ResNet:
        let known: [(String, ResNet.Configuration)] = [
            ("resnet18", .resnet18), ("resnet34", .resnet34), ("resnet50", .resnet50), ("resnet101", .resnet101),
            ("resnet152", .resnet152), ("resnext50_32x4d", .resnext50_32x4d), ("wide_resnet50_2", .wideResnet50_2),
        ]
        return known.first { $0.1 == m.configuration }?.0
    default: return nil
    }
}
