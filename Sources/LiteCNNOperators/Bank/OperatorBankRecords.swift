// The JSON header of an operator bank file (`.lcb`), field by field with its snake_case keys.
import LiteCNNTensor

/// The header as stored: everything of a bank except the tensor values, which the `tensors` records locate in the
/// payload (offsets and counts in elements of `precision` from the payload's start).
struct BankHeaderRecord: Codable {
    var baseFingerprint: UInt32
    var imageShape: [Int]
    var slots: [SlotRecord]
    var base: BaseRecord
    var metadata: [String: String]
    var entries: [EntryRecord]
    /// `BankPrecision` raw value (`float32`, `float16`); absent in 1.0 files, meaning `float32`. Kept as text so that
    /// an unknown value is reported by name.
    var precision: String?
    /// Whether the slots include fully connected ones (`OperatorBank.fullyConnectedSlots`); written (as true) only by
    /// 1.2 files that have it set, absent meaning false.
    var fullyConnectedSlots: Bool?

    enum CodingKeys: String, CodingKey {
        case baseFingerprint = "base_fingerprint", imageShape = "image_shape", slots, base, metadata, entries, precision
        case fullyConnectedSlots = "fully_connected_slots"
    }
}

/// `OperatorSlot` with snake_case keys. `kind` and `trans_b` are written for fully connected slots only (1.2); absent
/// they mean a convolution and false.
struct SlotRecord: Codable {
    var index: Int
    var name: String
    var input: String
    var output: String
    var nodes: [String]
    var weight: String
    var bias: String?
    var batchNorm: [String]?
    var batchNormEpsilon: Float?
    var hasReLU: Bool
    var inputChannels: Int
    var outputChannels: Int
    var kernel: [Int]
    var strides: [Int]
    var pads: [Int]
    var dilations: [Int]
    var inputSize: [Int]
    var outputSize: [Int]
    /// `OperatorSlot.Kind` raw value (`convolution`, `fully_connected`); kept as text so that an unknown kind is
    /// reported by name.
    var kind: String?
    var transB: Bool?

    enum CodingKeys: String, CodingKey {
        case index, name, input, output, nodes, weight, bias, kernel, strides, pads, dilations, kind
        case transB = "trans_b"
        case batchNorm = "batch_norm", batchNormEpsilon = "batch_norm_epsilon", hasReLU = "has_relu"
        case inputChannels = "input_channels", outputChannels = "output_channels"
        case inputSize = "input_size", outputSize = "output_size"
    }

    init(_ s: OperatorSlot) {
        index = s.index; name = s.name; input = s.input; output = s.output; nodes = s.nodes; weight = s.weight
        bias = s.bias; batchNorm = s.batchNorm; batchNormEpsilon = s.batchNormEpsilon; hasReLU = s.hasReLU
        inputChannels = s.inputChannels; outputChannels = s.outputChannels; kernel = s.kernel; strides = s.strides
        pads = s.pads; dilations = s.dilations; inputSize = s.inputSize; outputSize = s.outputSize
        kind = s.isFullyConnected ? s.kind.rawValue : nil
        transB = s.isFullyConnected ? s.transB : nil
    }

    /// The slot; an unknown `kind` (which the reader refuses first) reads as a convolution.
    var slot: OperatorSlot {
        OperatorSlot(index: index, name: name, input: input, output: output, nodes: nodes, weight: weight, bias: bias,
                     batchNorm: batchNorm, batchNormEpsilon: batchNormEpsilon, hasReLU: hasReLU,
                     inputChannels: inputChannels, outputChannels: outputChannels, kernel: kernel, strides: strides,
                     pads: pads, dilations: dilations, inputSize: inputSize, outputSize: outputSize,
                     kind: kind.flatMap(OperatorSlot.Kind.init(rawValue:)) ?? .convolution, transB: transB ?? false)
    }
}

/// `BaseMeasurement` with snake_case keys.
struct BaseRecord: Codable {
    var top1: Double?
    var top5: Double?
    var multiplyAdds: Int
    var parameters: Int
    var latencyMs: Double?
    var slotLatencyMs: [Double]?

    enum CodingKeys: String, CodingKey {
        case top1, top5, parameters
        case multiplyAdds = "multiply_adds", latencyMs = "latency_ms", slotLatencyMs = "slot_latency_ms"
    }

    init(_ b: BaseMeasurement) {
        top1 = b.top1; top5 = b.top5; multiplyAdds = b.multiplyAdds; parameters = b.parameters; latencyMs = b.latencyMs
        slotLatencyMs = b.slotLatencyMs
    }

    var measurement: BaseMeasurement {
        BaseMeasurement(top1: top1, top5: top5, multiplyAdds: multiplyAdds, parameters: parameters, latencyMs: latencyMs,
                        slotLatencyMs: slotLatencyMs)
    }
}

/// `OperatorMeasurement` with snake_case keys.
struct MeasurementRecord: Codable {
    var parameters: Int
    var multiplyAdds: Int
    var latencyMs: Double?
    var top1: Double?
    var distillationError: Double?
    var outputDivergence: Double?

    enum CodingKeys: String, CodingKey {
        case parameters, top1
        case multiplyAdds = "multiply_adds", latencyMs = "latency_ms", distillationError = "distillation_error"
        case outputDivergence = "output_divergence"
    }

    init(_ m: OperatorMeasurement) {
        parameters = m.parameters; multiplyAdds = m.multiplyAdds; latencyMs = m.latencyMs; top1 = m.top1
        distillationError = m.distillationError; outputDivergence = m.outputDivergence
    }

    var measurement: OperatorMeasurement {
        OperatorMeasurement(parameters: parameters, multiplyAdds: multiplyAdds, latencyMs: latencyMs, top1: top1,
                            distillationError: distillationError, outputDivergence: outputDivergence)
    }
}

/// One operator: its slot (index, and name as a cross-check), kind, β, measurement and tensors.
struct EntryRecord: Codable {
    var slot: Int
    var slotName: String
    var kind: String
    var beta: Double
    var measurement: MeasurementRecord
    var tensors: [TensorRecord]

    enum CodingKeys: String, CodingKey {
        case slot, kind, beta, measurement, tensors
        case slotName = "slot_name"
    }
}

/// Where one tensor's values lie in the payload: `count` elements (float32 or float16, the header's `precision`)
/// from element `offset`.
struct TensorRecord: Codable {
    var name: String
    var shape: [Int]
    var offset: Int
    var count: Int
    /// `Tensor.Layout` raw value (`plain`, `nhwc`, `nchw`); the rank's default when absent.
    var layout: String?
}
