// Where a pluggable operator can go: the standard k×k convolutions of a trained network and, on request, its fully
// connected layers.
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
///
/// A **fully connected** slot (`kind == .fullyConnected`, found only with `OperatorSlots.find(…, fullyConnected:
/// true)`) is a `Gemm` `y = x·Wᵀ + b` on a 2-D input `[N, C_i]`, and its unit the Gemm plus the `Relu` that alone reads
/// its output (no BatchNorm). Its convolution fields are neutral — `kernel` `[1, 1]`, `strides` `[1, 1]`, `pads`
/// `[0, 0, 0, 0]`, `dilations` `[1, 1]`, `inputSize` and `outputSize` `[1, 1]` — so that every formula below holds
/// unchanged: `multiplyAdds = C_i·C` and `parameterCount = C_i·C + C` (with a bias). `transB` records how the Gemm
/// stores its weight (`[C, C_i]` when true, `[C_i, C]` when false).
public struct OperatorSlot: Sendable, Codable, Equatable {
    /// What a slot replaces: a convolution unit or a fully connected one.
    public enum Kind: String, Sendable, Codable, CaseIterable {
        case convolution
        case fullyConnected = "fully_connected"
    }
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
    /// A convolution (the default, and what a slot without the field decodes as) or a fully connected layer.
    public var kind: Kind = .convolution
    /// Fully connected slots: the Gemm's `transB` (weight stored `[C, C_i]` when true, `[C_i, C]` when false). Always
    /// false for convolutions.
    public var transB: Bool = false

    public var hasBatchNorm: Bool { batchNorm != nil }
    public var isFullyConnected: Bool { kind == .fullyConnected }

    /// The shape of the unit's input without the batch dimension: `[C_i, H, W]` for a convolution, `[C_i]` for a fully
    /// connected slot (what `GraphNetwork(graph:imageShape:)` of a unit or operator graph takes).
    public var unitInputShape: [Int] { isFullyConnected ? [inputChannels] : [inputChannels] + inputSize }
    /// The shape of the unit's output without the batch dimension: `[C, H_out, W_out]`, or `[C]`.
    public var unitOutputShape: [Int] { isFullyConnected ? [outputChannels] : [outputChannels] + outputSize }

    /// Multiply-adds of the convolution: `H_out·W_out·C_out·C_in·k_h·k_w` (BatchNorm and ReLU count 0); `C_in·C_out`
    /// for a fully connected slot (its neutral fields are all 1).
    public var multiplyAdds: Int {
        outputSize[0] * outputSize[1] * outputChannels * inputChannels * kernel[0] * kernel[1]
    }

    /// Parameters of the unit: the weight, the bias, and BatchNorm's scale and shift (torchvision's convention: running
    /// statistics are buffers, not parameters); `C_in·C_out` (+ `C_out` with a bias) for a fully connected slot.
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

    public init(index: Int, name: String, input: String, output: String, nodes: [String], weight: String, bias: String?,
                batchNorm: [String]?, batchNormEpsilon: Float?, hasReLU: Bool, inputChannels: Int, outputChannels: Int,
                kernel: [Int], strides: [Int], pads: [Int], dilations: [Int], inputSize: [Int], outputSize: [Int],
                kind: Kind = .convolution, transB: Bool = false) {
        self.index = index; self.name = name; self.input = input; self.output = output; self.nodes = nodes
        self.weight = weight; self.bias = bias; self.batchNorm = batchNorm; self.batchNormEpsilon = batchNormEpsilon
        self.hasReLU = hasReLU; self.inputChannels = inputChannels; self.outputChannels = outputChannels
        self.kernel = kernel; self.strides = strides; self.pads = pads; self.dilations = dilations
        self.inputSize = inputSize; self.outputSize = outputSize; self.kind = kind; self.transB = transB
    }

    enum CodingKeys: String, CodingKey {
        case index, name, input, output, nodes, weight, bias, batchNorm, batchNormEpsilon, hasReLU, inputChannels
        case outputChannels, kernel, strides, pads, dilations, inputSize, outputSize, kind, transB
    }

    /// Decodes every field; `kind` and `transB` may be absent (slots written before fully connected slots existed):
    /// a convolution, `transB` false.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(index: try c.decode(Int.self, forKey: .index), name: try c.decode(String.self, forKey: .name),
                  input: try c.decode(String.self, forKey: .input), output: try c.decode(String.self, forKey: .output),
                  nodes: try c.decode([String].self, forKey: .nodes), weight: try c.decode(String.self, forKey: .weight),
                  bias: try c.decodeIfPresent(String.self, forKey: .bias),
                  batchNorm: try c.decodeIfPresent([String].self, forKey: .batchNorm),
                  batchNormEpsilon: try c.decodeIfPresent(Float.self, forKey: .batchNormEpsilon),
                  hasReLU: try c.decode(Bool.self, forKey: .hasReLU),
                  inputChannels: try c.decode(Int.self, forKey: .inputChannels),
                  outputChannels: try c.decode(Int.self, forKey: .outputChannels),
                  kernel: try c.decode([Int].self, forKey: .kernel), strides: try c.decode([Int].self, forKey: .strides),
                  pads: try c.decode([Int].self, forKey: .pads), dilations: try c.decode([Int].self, forKey: .dilations),
                  inputSize: try c.decode([Int].self, forKey: .inputSize),
                  outputSize: try c.decode([Int].self, forKey: .outputSize),
                  kind: try c.decodeIfPresent(Kind.self, forKey: .kind) ?? .convolution,
                  transB: try c.decodeIfPresent(Bool.self, forKey: .transB) ?? false)
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
    ///
    /// With `fullyConnected`, also every `Gemm` `y = x·Wᵀ + b` — `transA` 0, `alpha` and `beta` 1 (or absent), a
    /// constant 2-D float weight (`transB` 0 or 1, recorded), an optional constant float bias of `C` values, a 2-D input
    /// `[N, C_i]` — as a fully connected slot whose unit is the Gemm and the `Relu` that alone reads its output (see
    /// `OperatorSlot`); slots of both kinds in execution order. Off, the result is exactly the convolution slots.
    public static func find(in graph: Graph, imageShape: [Int], fullyConnected: Bool = false) throws -> [OperatorSlot] {
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
        for node in graph.nodes {
            if node.opType == "Conv" && (node.int("group") ?? 1) == 1 {
                if let slot = convolutionSlot(node, index: slots.count, graph: graph, shapes: shapes, sole: sole) {
                    slots.append(slot)
                }
            } else if fullyConnected && node.opType == "Gemm" {
                if let slot = fullyConnectedSlot(node, index: slots.count, graph: graph, shapes: shapes, sole: sole) {
                    slots.append(slot)
                }
            }
        }
        return slots
    }

    /// The slot a `Conv` heads, or nil when it is not one.
    private static func convolutionSlot(_ node: Node, index: Int, graph: Graph, shapes: GraphShapes,
                                        sole: (String) -> Node?) -> OperatorSlot? {
        guard node.inputs.count >= 2, case let .float(w)? = graph.initializers[node.inputs[1]], w.shape.count == 4,
              max(w.shape[2], w.shape[3]) >= 3,
              let x = shapes.shape(node.inputs[0]), x.count == 4, let y = shapes.shape(node.outputs[0]), y.count == 4
        else { return nil }
        let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
        if let bias { guard case .float? = graph.initializers[bias] else { return nil } }
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
        return OperatorSlot(
            index: index, name: node.name, input: node.inputs[0], output: output, nodes: unit,
            weight: node.inputs[1], bias: bias, batchNorm: batchNorm, batchNormEpsilon: epsilon, hasReLU: relu,
            inputChannels: x[1], outputChannels: w.shape[0], kernel: kernel, strides: node.ints("strides") ?? [1, 1],
            pads: GraphFolding.windowPads(node, input: [x[2], x[3]], kernel: kernel),
            dilations: node.ints("dilations") ?? [1, 1], inputSize: [x[2], x[3]], outputSize: [y[2], y[3]])
    }

    /// The fully connected slot a `Gemm` heads, or nil when it is not one (see `find`).
    private static func fullyConnectedSlot(_ node: Node, index: Int, graph: Graph, shapes: GraphShapes,
                                           sole: (String) -> Node?) -> OperatorSlot? {
        let transA = node.int("transA") ?? 0, transB = node.int("transB") ?? 0
        guard transA == 0, transB == 0 || transB == 1, (node.float("alpha") ?? 1) == 1, (node.float("beta") ?? 1) == 1,
              node.inputs.count >= 2, case let .float(w)? = graph.initializers[node.inputs[1]], w.shape.count == 2,
              let x = shapes.shape(node.inputs[0]), x.count == 2, let y = shapes.shape(node.outputs[0]), y.count == 2
        else { return nil }
        let (outputChannels, inputChannels) = transB == 1 ? (w.shape[0], w.shape[1]) : (w.shape[1], w.shape[0])
        guard x[1] == inputChannels, y[1] == outputChannels, inputChannels >= 1, outputChannels >= 1 else { return nil }
        let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
        if let bias {
            guard case let .float(b)? = graph.initializers[bias], b.shape == [outputChannels] || b.shape == [1, outputChannels]
            else { return nil }
        }
        var unit = [node.name], output = node.outputs[0], relu = false
        if let r = sole(output), r.opType == "Relu" {
            relu = true
            unit.append(r.name)
            output = r.outputs[0]
        }
        return OperatorSlot(
            index: index, name: node.name, input: node.inputs[0], output: output, nodes: unit, weight: node.inputs[1],
            bias: bias, batchNorm: nil, batchNormEpsilon: nil, hasReLU: relu, inputChannels: inputChannels,
            outputChannels: outputChannels, kernel: [1, 1], strides: [1, 1], pads: [0, 0, 0, 0], dilations: [1, 1],
            inputSize: [1, 1], outputSize: [1, 1], kind: .fullyConnected, transB: transB == 1)
    }
}
