import LiteCNNTensor

/// Flattens each sample to a vector (`torch.flatten(x, 1)` on an NCHW tensor).
///
/// - Input: NHWC `[N, H, W, C]` → output `[N, C·H·W]` in PyTorch's (C, H, W) order, so that a following `Linear`
///   takes torchvision's weights unchanged. When `H = W = 1` this is a plain reshape.
/// - Input `[N, F]` passes through; other ranks `[N, ...]` are reshaped to `[N, ∏...]` in memory order.
public final class Flatten: Layer {
    public var isTraining = false
    private var savedInputShape: [Int] = []

    public init() {}

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count >= 1, "Flatten needs a batch axis")
        return [inputShape[0], inputShape.dropFirst().reduce(1, *)]
    }

    public func forward(_ input: Tensor) -> Tensor {
        if isTraining { savedInputShape = input.shape }
        let shape = outputShape(for: input.shape)
        guard input.rank == 4, input.shape[1] * input.shape[2] > 1, input.shape[3] > 1 else {
            return input.reshaped(to: shape, layout: .plain)
        }
        // [N, H·W, C] → [N, C, H·W]
        return transposeInner(input, rows: input.shape[1] * input.shape[2], columns: input.shape[3], resultShape: shape)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!savedInputShape.isEmpty, "Flatten.backward without a training-mode forward")
        let shape = savedInputShape
        precondition(gradOutput.count == shape.reduce(1, *), "Flatten.backward: gradient \(gradOutput.shape) vs input \(shape)")
        guard shape.count == 4, shape[1] * shape[2] > 1, shape[3] > 1 else {
            return gradOutput.reshaped(to: shape)
        }
        // [N, C, H·W] → [N, H·W, C]
        return transposeInner(gradOutput, rows: shape[3], columns: shape[1] * shape[2], resultShape: shape)
    }
}

/// Transposes each `[rows, columns]` matrix of a batch `[N, rows, columns]` to `[columns, rows]`.
func transposeInner(_ x: Tensor, rows: Int, columns: Int, resultShape: [Int]) -> Tensor {
    let batch = x.shape[0]
    let perSample = rows * columns
    return Tensor(shape: resultShape) { out in
        x.scalars.withUnsafeBufferPointer { src in
            parallelRows(batch, rowLength: perSample) { range in
                for b in range {
                    let s = src.baseAddress! + b * perSample, d = out.baseAddress! + b * perSample
                    // Tiles keep both the reads and the writes within a few cache lines.
                    let tile = 16
                    var r0 = 0
                    while r0 < rows {
                        let r1 = min(rows, r0 + tile)
                        var c0 = 0
                        while c0 < columns {
                            let c1 = min(columns, c0 + tile)
                            for r in r0..<r1 {
                                for c in c0..<c1 { d[c * rows + r] = s[r * columns + c] }
                            }
                            c0 = c1
                        }
                        r0 = r1
                    }
                }
            }
        }
    }
}

/// ShuffleNet's channel shuffle (`torch.nn.ChannelShuffle`) on the last axis of an NHWC tensor: the channels,
/// viewed as `[groups, C/groups]`, are transposed to `[C/groups, groups]`. Output channel `j·groups + i` is input
/// channel `i·(C/groups) + j`. Shape-preserving.
public final class ChannelShuffle: ShapePreservingLayer {
    public let groups: Int
    public var isTraining = false

    public init(groups: Int) {
        precondition(groups > 0, "ChannelShuffle: groups must be positive")
        self.groups = groups
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank >= 1 && input.shape[input.rank - 1] % groups == 0,
                     "ChannelShuffle(\(groups)): channels of \(input.shape) not divisible by groups")
        return input.channelShuffled(groups: groups)
    }

    /// The inverse permutation: a shuffle with `C/groups` groups.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        gradOutput.channelShuffled(groups: gradOutput.shape[gradOutput.rank - 1] / groups)
    }
}
