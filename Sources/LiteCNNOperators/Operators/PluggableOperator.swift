// One pluggable operator prepared for one slot: its parameters, and its widths, costs and tensor shapes in closed form.
import LiteCNNGraph
import LiteCNNTensor

/// One operator prepared for one slot: its kind, β, and its own parameters (parameter separation).
///
/// The operator replaces the slot's whole unit: it reads `slot.input` (NCHW `[N, C_i, H, W]`) and writes
/// `slot.output` (NCHW `[N, C, H_out, W_out]`), and ends in its own BatchNorm (+ ReLU exactly when `slot.hasReLU`).
/// Its convolutions have no bias. Notation below: `C = slot.outputChannels`, `C_i = slot.inputChannels`,
/// `[k_h, k_w] = slot.kernel`, `[H, W] = slot.inputSize`, `[H_out, W_out] = slot.outputSize`.
///
/// **Tensors** (`tensors`, keyed by local name; conv weights OIHW, BatchNorm arrays `[channels]`; every BatchNorm
/// `X` has the four tensors `X.scale`, `X.bias`, `X.mean`, `X.var`):
///
/// | kind | convolutions | BatchNorms |
/// |---|---|---|
/// | bottleneck | `reduce.weight` `[R, C_i, 1, 1]`, `core.weight` `[R, R, k_h, k_w]`, `expand.weight` `[C, R, 1, 1]` | `bn` `[C]` |
/// | lowRank | `row.weight` `[R, C_i, 1, k_w]`, `column.weight` `[C, R, k_h, 1]` | `bn` `[C]` |
/// | multiBranch | `row.weight` `[C_a, C_i, 1, k_w]`, `column.weight` `[C_b, C_i, k_h, 1]` | `row.bn` `[C_a]`, `column.bn` `[C_b]` |
/// | fire | `squeeze.weight` `[S, C_i, 1, 1]`, `expand1x1.weight` `[E_1, S, 1, 1]`, `expand3x3.weight` `[E_3, S, 3, 3]` | `squeeze.bn` `[S]`, `expand1x1.bn` `[E_1]`, `expand3x3.bn` `[E_3]` |
/// | depthwise | `depthwise.weight` `[C_i, 1, k_h, k_w]`, `pointwise.weight` `[C, C_i, 1, 1]` | `bn` `[C]` |
///
/// with `R = max(1, round(β·C))`, `S = max(1, round(β·C))`, `C_a = ⌈C/2⌉`, `C_b = C − C_a`, `E_1 = ⌊C/2⌋`,
/// `E_3 = C − E_1`. In a graph (`nodes(input:output:prefix:)`) each tensor is the initializer `prefix + local name`.
///
/// **Fully connected slots** (`slot.isFullyConnected`, input `[N, C_i]`, output `[N, C]`) take only `lowRank`, a
/// truncated factorization `W ≈ U·V` of the `[C, C_i]` weight: `first.weight` `[R, C_i]` (V), `second.weight` `[C, R]`
/// (U) and `second.bias` `[C]` (the slot's bias, or zeros), no BatchNorm, with `R = max(1, round(β·min(C_i, C)))`:
/// β is the rank as a fraction of the largest rank the weight can have.
public struct PluggableOperator: Sendable, Equatable {
    public var kind: OperatorKind
    public var beta: Double
    public var slot: OperatorSlot
    /// Parameters and BatchNorm statistics by local name, ONNX layouts (conv weights OIHW).
    public var tensors: [String: Tensor]

    public init(kind: OperatorKind, beta: Double, slot: OperatorSlot, tensors: [String: Tensor]) {
        self.kind = kind; self.beta = beta; self.slot = slot; self.tensors = tensors
    }

    /// The operator's characteristic inner width: `R` for bottleneck and low rank, the squeeze width `S` for Fire
    /// (both `max(1, round(β·C))`), `C_i` (the depthwise width) for depthwise, and `C` for multi-branch (it has no
    /// narrower inner tensor: its branches write `⌈C/2⌉` and `⌊C/2⌋` of the output channels). On a fully connected
    /// slot, low rank's `R = max(1, round(β·min(C_i, C)))`.
    public static func innerChannels(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int {
        if slot.isFullyConnected && kind == .lowRank {
            return max(1, Int((beta * Double(min(slot.inputChannels, slot.outputChannels))).rounded()))
        }
        switch kind {
        case .bottleneck, .lowRank, .fire: return max(1, Int((beta * Double(slot.outputChannels)).rounded()))
        case .multiBranch: return slot.outputChannels
        case .depthwise: return slot.inputChannels
        }
    }

    /// Multiply-adds for one image (Conv: `H_out·W_out·C_out·(C_in/group)·k_h·k_w`; BatchNorm, ReLU, Concat 0):
    /// - bottleneck: `H·W·R·C_i + H_out·W_out·R·R·k_h·k_w + H_out·W_out·C·R`;
    /// - lowRank: `H·W_out·R·C_i·k_w + H_out·W_out·C·R·k_h` (the row factor strides W only, the column factor H only);
    /// - multiBranch: `H_out·W_out·C_i·(C_a·k_w + C_b·k_h)`;
    /// - fire: `H·W·S·C_i + H_out·W_out·S·(E_1 + 9·E_3)`;
    /// - depthwise: `H_out·W_out·C_i·k_h·k_w + H_out·W_out·C·C_i`;
    /// - lowRank on a fully connected slot: `R·(C_i + C)`.
    /// Equal to `StructuredPruning.multiplyAdds(standaloneGraph(), imageShape: slot.unitInputShape)` for applicable
    /// slots.
    public static func multiplyAdds(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int {
        let g = PluggableGeometry(kind: kind, beta: beta, slot: slot)
        if g.isFullyConnected { return g.inner * (g.ci + g.c) }
        let inPixels = g.h * g.w, outPixels = g.ho * g.wo
        switch kind {
        case .bottleneck:
            return inPixels * g.inner * g.ci + outPixels * g.inner * g.inner * g.kh * g.kw + outPixels * g.c * g.inner
        case .lowRank:
            return g.h * g.wo * g.inner * g.ci * g.kw + outPixels * g.c * g.inner * g.kh
        case .multiBranch:
            return outPixels * g.ci * (g.firstHalf * g.kw + g.secondHalf * g.kh)
        case .fire:
            return inPixels * g.inner * g.ci + outPixels * g.inner * (g.expand1 + 9 * g.expand3)
        case .depthwise:
            return outPixels * g.ci * g.kh * g.kw + outPixels * g.c * g.ci
        }
    }

    /// Trainable parameters: convolution weights plus 2 per BatchNorm channel (scale and bias; the running mean and
    /// variance are buffers):
    /// - bottleneck: `R·C_i + R·R·k_h·k_w + C·R + 2C`;
    /// - lowRank: `R·C_i·k_w + C·R·k_h + 2C`;
    /// - multiBranch: `C_i·(C_a·k_w + C_b·k_h) + 2C`;
    /// - fire: `S·C_i + 2S + S·(E_1 + 9·E_3) + 2C`;
    /// - depthwise: `C_i·k_h·k_w + C·C_i + 2C`;
    /// - lowRank on a fully connected slot: `R·C_i + C·R + C` (the bias is always there, zeros when the slot has none).
    /// Equal to `StructuredPruning.parameterCount(standaloneGraph())`.
    public static func parameterCount(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> Int {
        let g = PluggableGeometry(kind: kind, beta: beta, slot: slot)
        if g.isFullyConnected { return g.inner * g.ci + g.c * g.inner + g.c }
        switch kind {
        case .bottleneck:
            return g.inner * g.ci + g.inner * g.inner * g.kh * g.kw + g.c * g.inner + 2 * g.c
        case .lowRank:
            return g.inner * g.ci * g.kw + g.c * g.inner * g.kh + 2 * g.c
        case .multiBranch:
            return g.ci * (g.firstHalf * g.kw + g.secondHalf * g.kh) + 2 * g.c
        case .fire:
            return g.inner * g.ci + 2 * g.inner + g.inner * (g.expand1 + 9 * g.expand3) + 2 * g.c
        case .depthwise:
            return g.ci * g.kh * g.kw + g.c * g.ci + 2 * g.c
        }
    }

    /// The shape of every tensor the operator holds, BatchNorm running statistics included, by local name (the table
    /// in the type's documentation).
    public static func tensorShapes(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> [String: [Int]] {
        let g = PluggableGeometry(kind: kind, beta: beta, slot: slot)
        var shapes: [String: [Int]] = [:]
        for conv in g.convolutions { shapes[conv.name + ".weight"] = conv.weightShape }
        for linear in g.linears {
            shapes[linear.name + ".weight"] = [linear.outputs, linear.inputs]
            if linear.hasBias { shapes[linear.name + ".bias"] = [linear.outputs] }
        }
        for bn in g.batchNorms {
            for field in PluggableGeometry.batchNormFields { shapes[bn.name + "." + field] = [bn.channels] }
        }
        return shapes
    }

    public var multiplyAdds: Int { Self.multiplyAdds(kind: kind, beta: beta, slot: slot) }
    public var parameterCount: Int { Self.parameterCount(kind: kind, beta: beta, slot: slot) }
    /// `innerChannels(kind:beta:slot:)` of this operator.
    public var innerChannels: Int { Self.innerChannels(kind: kind, beta: beta, slot: slot) }
    /// `lowrank β=0.5`, `depthwise`: the kind and, where it has one, β (`OperatorKind.label`).
    public var label: String { kind.label(beta: beta) }
    /// `tensorShapes(kind:beta:slot:)` of this operator.
    public var tensorShapes: [String: [Int]] { Self.tensorShapes(kind: kind, beta: beta, slot: slot) }
}

/// The convolutions and BatchNorms of one operator on one slot, in execution order, derived from the kind, β and the
/// slot alone (no tensors): the single source of the tensor shapes and of the graph structure.
struct PluggableGeometry {
    /// One bias-free convolution: its local name (weight `name.weight`), what it reads and its attributes.
    struct Convolution {
        var name: String
        var outputChannels: Int
        var inputChannels: Int
        var group: Int
        var kernel: [Int]
        var strides: [Int]
        var pads: [Int]
        var dilations: [Int]
        var weightShape: [Int] { [outputChannels, inputChannels / group, kernel[0], kernel[1]] }
    }

    /// One fully connected layer `y = x·Wᵀ (+ b)`: its local name (weight `name.weight` `[outputs, inputs]`, bias
    /// `name.bias` `[outputs]` when it has one).
    struct Linear {
        var name: String
        var outputs: Int
        var inputs: Int
        var hasBias: Bool
    }

    /// One BatchNorm: its local name (tensors `name.scale`, `.bias`, `.mean`, `.var`) and width.
    struct BatchNorm {
        var name: String
        var channels: Int
    }

    /// The four tensor suffixes of a BatchNorm, in ONNX input order (scale, B, input_mean, input_var).
    static let batchNormFields = ["scale", "bias", "mean", "var"]

    let ci, c, kh, kw, h, w, ho, wo: Int
    /// R or S (bottleneck, low rank, Fire), C_i (depthwise), C (multi-branch).
    let inner: Int
    /// Multi-branch: C_a = ⌈C/2⌉ and C_b = C − C_a.
    let firstHalf, secondHalf: Int
    /// Fire: E_1 = ⌊C/2⌋ and E_3 = C − E_1.
    let expand1, expand3: Int
    let convolutions: [Convolution]
    let batchNorms: [BatchNorm]
    /// Low rank on a fully connected slot: `first` `C_i → R`, `second` `R → C` with the bias (no convolution, no
    /// BatchNorm); empty otherwise.
    let linears: [Linear]
    /// Whether this is low rank on a fully connected slot (the only operator such a slot takes).
    let isFullyConnected: Bool

    init(kind: OperatorKind, beta: Double, slot: OperatorSlot) {
        ci = slot.inputChannels; c = slot.outputChannels
        kh = slot.kernel[0]; kw = slot.kernel[1]
        h = slot.inputSize[0]; w = slot.inputSize[1]
        ho = slot.outputSize[0]; wo = slot.outputSize[1]
        inner = PluggableOperator.innerChannels(kind: kind, beta: beta, slot: slot)
        firstHalf = (c + 1) / 2; secondHalf = c - firstHalf
        expand1 = c / 2; expand3 = c - expand1
        let s = slot.strides, p = slot.pads, d = slot.dilations
        let (t, l, b, r) = (p[0], p[1], p[2], p[3])
        isFullyConnected = slot.isFullyConnected && kind == .lowRank
        if isFullyConnected {
            linears = [Linear(name: "first", outputs: inner, inputs: ci, hasBias: false),
                       Linear(name: "second", outputs: c, inputs: inner, hasBias: true)]
            convolutions = []
            batchNorms = []
            return
        }
        linears = []
        func conv(_ name: String, _ o: Int, _ i: Int, group: Int = 1, _ k: [Int], strides: [Int] = [1, 1],
                  pads: [Int] = [0, 0, 0, 0], dilations: [Int] = [1, 1]) -> Convolution {
            Convolution(name: name, outputChannels: o, inputChannels: i, group: group, kernel: k, strides: strides,
                        pads: pads, dilations: dilations)
        }
        switch kind {
        case .bottleneck:
            convolutions = [conv("reduce", inner, ci, [1, 1]),
                            conv("core", inner, inner, [kh, kw], strides: s, pads: p, dilations: d),
                            conv("expand", c, inner, [1, 1])]
            batchNorms = [BatchNorm(name: "bn", channels: c)]
        case .lowRank:
            convolutions = [conv("row", inner, ci, [1, kw], strides: [1, s[1]], pads: [0, l, 0, r], dilations: [1, d[1]]),
                            conv("column", c, inner, [kh, 1], strides: [s[0], 1], pads: [t, 0, b, 0], dilations: [d[0], 1])]
            batchNorms = [BatchNorm(name: "bn", channels: c)]
        case .multiBranch:
            convolutions = [conv("row", firstHalf, ci, [1, kw], strides: s, pads: [0, l, 0, r], dilations: [1, d[1]]),
                            conv("column", secondHalf, ci, [kh, 1], strides: s, pads: [t, 0, b, 0], dilations: [d[0], 1])]
            batchNorms = [BatchNorm(name: "row.bn", channels: firstHalf), BatchNorm(name: "column.bn", channels: secondHalf)]
        case .fire:
            convolutions = [conv("squeeze", inner, ci, [1, 1]),
                            conv("expand1x1", expand1, inner, [1, 1], strides: s),
                            conv("expand3x3", expand3, inner, [3, 3], strides: s, pads: [1, 1, 1, 1])]
            batchNorms = [BatchNorm(name: "squeeze.bn", channels: inner), BatchNorm(name: "expand1x1.bn", channels: expand1),
                          BatchNorm(name: "expand3x3.bn", channels: expand3)]
        case .depthwise:
            convolutions = [conv("depthwise", ci, ci, group: ci, [kh, kw], strides: s, pads: p, dilations: d),
                            conv("pointwise", c, ci, [1, 1])]
            batchNorms = [BatchNorm(name: "bn", channels: c)]
        }
    }

    func convolution(_ name: String) -> Convolution { convolutions.first { $0.name == name }! }
}

extension PluggableOperator {
    /// Whether every tensor value is finite and below binary16's overflow threshold.
    public var fitsHalfPrecision: Bool {
        tensors.values.allSatisfy { $0.scalars.allSatisfy { $0.isFinite && $0.magnitude < HalfPrecision.overflowThreshold } }
    }

    /// Every tensor value rounded to the nearest binary16 value; values binary16 cannot hold (see `fitsHalfPrecision`)
    /// are left as they are, for `OperatorBankFile.check` to name.
    public func roundedToHalfPrecision() -> PluggableOperator {
        var op = self
        for name in op.tensors.keys {
            op.tensors[name]!.scalars = op.tensors[name]!.scalars.map { v in
                v.isFinite && v.magnitude < HalfPrecision.overflowThreshold ? HalfPrecision.rounded(v) : v
            }
        }
        return op
    }

    /// This operator with every BatchNorm's input scaled by a power of two per channel so that its running variance
    /// is at most 2¹⁴ (binary16 holds up to 65504): the convolution that alone feeds the BatchNorm (`X` for `X.bn`,
    /// the last convolution for `bn`) has that output channel's weights multiplied by 2⁻ᵏ, the mean by 2⁻ᵏ and the
    /// variance by 2⁻²ᵏ. Powers of two scale float values exactly, so the operator computes the same function up to
    /// BatchNorm's ε, now relatively 2²ᵏ larger (ε = 1e-5 against a variance of 2¹⁴ or more). Layer-wise distillation
    /// can grow a convolution that a BatchNorm follows without changing its error — the BatchNorm divides the growth
    /// away — until its variance no longer fits a float16 bank.
    public func withBatchNormVariancesBelowHalfRange() -> PluggableOperator {
        var op = self
        let geometry = PluggableGeometry(kind: kind, beta: beta, slot: slot)
        let limit: Float = 16384
        for bn in geometry.batchNorms {
            let convName = bn.name == "bn" ? geometry.convolutions.last!.name : String(bn.name.dropLast(3))
            guard var variance = op.tensors[bn.name + ".var"], var mean = op.tensors[bn.name + ".mean"],
                  var weight = op.tensors[convName + ".weight"], weight.shape[0] == bn.channels else { continue }
            let perChannel = weight.count / bn.channels
            for c in 0..<bn.channels where variance.scalars[c].isFinite && variance.scalars[c] > limit {
                var k = 0
                while variance.scalars[c] > limit && k < 60 {
                    variance.scalars[c] *= 0.25
                    k += 1
                }
                let scale = Float(sign: .plus, exponent: -k, significand: 1)
                mean.scalars[c] *= scale
                for i in (c * perChannel)..<((c + 1) * perChannel) { weight.scalars[i] *= scale }
            }
            op.tensors[bn.name + ".var"] = variance
            op.tensors[bn.name + ".mean"] = mean
            op.tensors[convName + ".weight"] = weight
        }
        return op
    }
}
