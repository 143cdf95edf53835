// Where a pluggable operator can go: the standard k×k convolutions of a trained network.
import LiteCNNCompression
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor

/// One standard convolution of a base network that a lighter operator may replace, with the unit it heads.
///
/// A slot is a `Conv` node with `group = 1` and a kernel of at least 3 on one side. Its **unit** is the convolution plus
/// the `BatchNormalization` that alone reads its output (if any) plus the `Relu` that alone reads that (if any): an
/// operator replaces the whole unit, reads the unit's `input` and writes its `output`. So the operators end in their
/// own BatchNorm (initialized from the unit's) and apply ReLU exactly when the unit does (a ResNet block's second
/// convolution has no ReLU before the residual addition).
///
/// Shapes are for one image of the bank's image shape: `inputSize` `[H, W]`, `outputSize` `[H_out, W_out]` with
/// `H_out = ⌊(H + pad_top + pad_bottom − d_h·(k_h − 1) − 1) / s_h⌋ + 1` (the same for W).
public struct OperatorSlot: Sendable, Codable, Equatable {
    /// Position among the network's slots, in execution order.
    public var index: Int
    /// The convolution node's name (the slot's identity in a bank).
    public var name: String
    /// The value the unit reads (NCHW `[N, inputChannels, H, W]`).
    public var input: String
    /// The value the unit produces (NCHW `[N, outputChannels, H_out, W_out]`): the ReLU's output, else the
    /// BatchNorm's, else the convolution's.
    public var output: String
    /// The unit's nodes in order: the convolution, then the BatchNorm and the ReLU when present.
    public var nodes: [String]
    /// Initializer names of the convolution's weight (OIHW) and bias (nil when the convolution has none).
    public var weight: String
    public var bias: String?
    /// Initializer names of the unit's BatchNorm (scale, B, mean, var) and its epsilon; nil without BatchNorm.
    public var batchNorm: [String]?
    public var batchNormEpsilon: Float?
    public var hasReLU: Bool
    public var inputChannels: Int
    public var outputChannels: Int
    /// `[k_h, k_w]`, `[s_h, s_w]`, `[top, left, bottom, right]` (auto_pad resolved), `[d_h, d_w]`.
    public var kernel: [Int]
    public var strides: [Int]
    public var pads: [Int]
    public var dilations: [Int]
    public var inputSize: [Int]
    public var outputSize: [Int]

    public var hasBatchNorm: Bool { batchNorm != nil }

    /// Multiply-adds of the convolution: `H_out·W_out·C_out·C_in·k_h·k_w` (BatchNorm and ReLU count 0).
    public var multiplyAdds: Int {
        outputSize[0] * outputSize[1] * outputChannels * inputChannels * kernel[0] * kernel[1]
    }

    /// Parameters of the unit: the weight, the bias, and BatchNorm's scale and shift (torchvision's convention: running
    /// statistics are buffers, not parameters).
    public var parameterCount: Int {
        outputChannels * inputChannels * kernel[0] * kernel[1] + (bias == nil ? 0 : outputChannels)
            + (hasBatchNorm ? 2 * outputChannels : 0)
    }

    /// Whether the padding keeps `H_out = ⌈H / s⌉` on both axes for every kernel size (`pad_begin + pad_end =
    /// d·(k − 1)` with the extra pixel at the end or split evenly): operators with branches of different kernel
    /// shapes (multi-branch, Fire) need it to produce one output size.
    public var isSamePadded: Bool {
        for axis in 0..<2 {
            let total = pads[axis] + pads[axis + 2], span = dilations[axis] * (kernel[axis] - 1)
            guard total == span, span % 2 == 0, pads[axis] == pads[axis + 2] else { return false }
        }
        return true
    }
}

/// Finds the slots of a graph.
public enum OperatorSlots {
    /// Every `Conv` with `group = 1` and `max(k_h, k_w) ≥ 3` whose weight is a constant, in execution order, with its
    /// unit and shapes for one `imageShape` (`[C, H, W]`) image. Throws `GraphError` when the graph's shapes cannot be
    /// inferred.
    ///
    /// On MobileNet V1 this finds only the 3×3 stem: its depthwise-separable pairs are already operator 5, so the
    /// pointwise convolutions (95 % of its multiply-adds) are left to structured pruning and the width multiplier.
    public static func find(in graph: Graph, imageShape: [Int]) throws -> [OperatorSlot] {
        let shapes = try GraphShapes(graph, imageShape: imageShape)
        var readers: [String: [Int]] = [:]
        for (i, n) in graph.nodes.enumerated() { for v in n.inputs where !v.isEmpty { readers[v, default: []].append(i) } }
        let outputs = Set(graph.outputs.map(\.name))
        func sole(_ value: String) -> Node? {
            guard !outputs.contains(value), let r = readers[value], r.count == 1 else { return nil }
            let n = graph.nodes[r[0]]
            return n.inputs.first == value ? n : nil
        }
        var slots: [OperatorSlot] = []
        for node in graph.nodes where node.opType == "Conv" && (node.int("group") ?? 1) == 1 {
            guard node.inputs.count >= 2, case let .float(w)? = graph.initializers[node.inputs[1]], w.shape.count == 4,
                  max(w.shape[2], w.shape[3]) >= 3,
                  let x = shapes.shape(node.inputs[0]), x.count == 4, let y = shapes.shape(node.outputs[0]), y.count == 4
            else { continue }
            let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
            if let bias { guard case .float? = graph.initializers[bias] else { continue } }
            var unit = [node.name], output = node.outputs[0]
            var batchNorm: [String]?, epsilon: Float?, relu = false
            if let bn = sole(output), bn.opType == "BatchNormalization", bn.inputs.count >= 5,
               bn.inputs[1...4].allSatisfy({ if case .float? = graph.initializers[$0] { return true } else { return false } }),
               !bn.outputs.dropFirst().contains(where: { !$0.isEmpty }) {
                batchNorm = Array(bn.inputs[1...4])
                epsilon = bn.float("epsilon") ?? 1e-5
                unit.append(bn.name)
                output = bn.outputs[0]
            }
            if let r = sole(output), r.opType == "Relu" {
                relu = true
                unit.append(r.name)
                output = r.outputs[0]
            }
            let kernel = [w.shape[2], w.shape[3]]
            slots.append(OperatorSlot(
                index: slots.count, name: node.name, input: node.inputs[0], output: output, nodes: unit,
                weight: node.inputs[1], bias: bias, batchNorm: batchNorm, batchNormEpsilon: epsilon, hasReLU: relu,
                inputChannels: x[1], outputChannels: w.shape[0], kernel: kernel, strides: node.ints("strides") ?? [1, 1],
                pads: GraphFolding.windowPads(node, input: [x[2], x[3]], kernel: kernel),
                dilations: node.ints("dilations") ?? [1, 1], inputSize: [x[2], x[3]], outputSize: [y[2], y[3]]))
        }
        return slots
    }
}
