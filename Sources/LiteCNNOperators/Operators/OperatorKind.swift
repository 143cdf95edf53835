// The five lighter operators that can replace a slot's unit, and when each one applies.
import LiteCNNGraph
import LiteCNNTensor

/// The five lighter operators that can replace a slot's unit (convolution + BatchNorm + ReLU).
///
/// With `C` the slot's output channels, `C_i` its input channels and `k_h×k_w` its kernel:
/// - `bottleneck`: 1×1 `C_i→R` → `k_h×k_w` `R→R` → 1×1 `R→C`, `R = max(1, round(β·C))` (Tucker-2 shape);
/// - `lowRank`: `1×k_w` `C_i→R` → `k_h×1` `R→C`, `R = max(1, round(β·C))` (spatially separable). The issue puts the
///   stride on the right (second) factor; here each factor strides, pads and dilates its own axis (the row factor W,
///   the column factor H), which is the same function with fewer multiply-adds (the column factor runs on `W_out`
///   columns instead of `W`);
/// - `multiBranch`: a `1×k_w` branch of `⌈C/2⌉` channels and a `k_h×1` branch of `⌊C/2⌋`, concatenated;
/// - `fire`: SqueezeNet's Fire module, squeeze 1×1 `C_i→S` (`S = max(1, round(β·C))`) then 1×1 and 3×3 expands;
/// - `depthwise`: depthwise `k_h×k_w` `C_i→C_i` → pointwise 1×1 `C_i→C` (depthwise separable).
///
/// On a fully connected slot only `lowRank` applies: `x → x·Vᵀ → ·Uᵀ + b` with `R = max(1, round(β·min(C_i, C)))`.
public enum OperatorKind: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case bottleneck
    case lowRank = "lowrank"
    case multiBranch = "multibranch"
    case fire
    case depthwise

    public var description: String { rawValue }

    /// Whether β (the inner width) means something for this kind: true for bottleneck, low rank and Fire.
    public var usesBeta: Bool {
        switch self {
        case .bottleneck, .lowRank, .fire: return true
        case .multiBranch, .depthwise: return false
        }
    }

    /// How reports name the operator with inner width `beta`: `lowrank β=0.5`, or just `depthwise` for the kinds without β.
    public func label(beta: Double) -> String { usesBeta ? "\(rawValue) β=\(beta)" : rawValue }

    /// β when the user gives none: 0.5 for bottleneck and low rank, 0.25 for Fire (0.125 gives SqueezeNet's C/8
    /// squeeze), 1 (unused) for multi-branch and depthwise.
    public var defaultBeta: Double {
        switch self {
        case .bottleneck, .lowRank: return 0.5
        case .fire: return 0.25
        case .multiBranch, .depthwise: return 1
        }
    }

    /// Whether the operator can replace `slot` exactly in shape.
    ///
    /// Bottleneck, low rank and depthwise apply to every slot (each keeps the slot's geometry on the axis it
    /// convolves). Multi-branch and Fire put branches of different kernel shapes side by side, so they need a
    /// same-padded slot (`slot.isSamePadded`: every branch then has `H_out = ⌈H/s_h⌉`, `W_out = ⌈W/s_w⌉`) and at least
    /// two output channels (one per branch). A fully connected slot takes only the low-rank operator (two Gemms
    /// through `R` features, `PluggableOperator`).
    public func isApplicable(to slot: OperatorSlot) -> Bool {
        if slot.isFullyConnected { return self == .lowRank }
        switch self {
        case .bottleneck, .lowRank, .depthwise: return true
        case .multiBranch, .fire: return slot.isSamePadded && slot.outputChannels >= 2
        }
    }
}

/// Why an operator could not be prepared for a slot (not applicable, a weight or BatchNorm of the wrong shape, a
/// graph without a tensor the operator needs): the message names the slot, the operator and the tensor.
public struct PluggableOperatorError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// BatchNormalization constants, per channel.
public struct BatchNormParameters: Sendable, Equatable {
    public var scale: [Float]
    public var bias: [Float]
    public var mean: [Float]
    public var variance: [Float]
    public var epsilon: Float
    public init(scale: [Float], bias: [Float], mean: [Float], variance: [Float], epsilon: Float) {
        self.scale = scale; self.bias = bias; self.mean = mean; self.variance = variance; self.epsilon = epsilon
    }

    /// Channels `range` of every array (a branch's slice of a BatchNorm).
    public func slice(_ range: Range<Int>) -> BatchNormParameters {
        BatchNormParameters(scale: Array(scale[range]), bias: Array(bias[range]), mean: Array(mean[range]),
                            variance: Array(variance[range]), epsilon: epsilon)
    }

    /// `channels` channels of the identity up to rounding: scale 1, bias 0, mean 0, variance 1.
    public static func identity(channels: Int, epsilon: Float = 1e-5) -> BatchNormParameters {
        BatchNormParameters(scale: .init(repeating: 1, count: channels), bias: .init(repeating: 0, count: channels),
                            mean: .init(repeating: 0, count: channels), variance: .init(repeating: 1, count: channels),
                            epsilon: epsilon)
    }
}
