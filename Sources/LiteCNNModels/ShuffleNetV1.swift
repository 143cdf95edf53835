// ShuffleNet: An Extremely Efficient Convolutional Neural Network for Mobile Devices
// Xiangyu Zhang, Xinyu Zhou, Mengxiao Lin, Jian Sun — CVPR 2018
// https://arxiv.org/abs/1707.01083
//
// torchvision has no ShuffleNet V1. Structure and parameter names follow the reference definition used for the
// anchor measurements, /work/shared/bench/models.py (`stem.0.weight`, `stages.0.gconv1.0.weight`, `fc.bias`).
import LiteCNNLayers
import LiteCNNTensor

/// ShuffleNet V1 (Zhang et al. 2017), the paper's Table 1: a 3×3 stem (stride 2) with 24 channels and a 3×3
/// max-pool, three stages of 4, 8 and 4 ShuffleNet units, global average pooling and a linear classifier.
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (224 is native).
/// - Output: logits `[N, classCount]`.
///
/// Groups g ∈ {1, 2, 3, 4, 8} pick the stage-2 width of Table 1 (144, 200, 240, 272, 384); stages 3 and 4 double it
/// twice. The bottleneck of every unit has ¼ of the unit's output channels, and the first 1×1 conv of the very
/// first unit is not grouped (its input, 24 channels, is too small — Section 3.3 of the paper).
///
/// Scale factor s ("ShuffleNet s×", Table 2: 0.25, 0.5, 1, 1.5, 2) multiplies the number of filters of the 1× model,
/// the stem included. The paper does not say how to round; LiteCNN keeps every grouped conv valid by rounding with
/// the shared `makeDivisible` rule: stage 2 = `makeDivisible(width_g · s, divisor: 4g)` (so the bottleneck, ¼ of it,
/// splits into g groups) and stem = `makeDivisible(24 · s, divisor: g)` (so the stride-2 unit's
/// `stage2 − stem` grouped outputs split into g groups). At s = 1 this reproduces Table 1 exactly for every g.
public final class ShuffleNetV1: ChainLayer {
    /// Stage-2 output channels of the 1× model for each group count (Table 1).
    public static let stageTwoWidths: [Int: Int] = [1: 144, 2: 200, 3: 240, 4: 272, 8: 384]
    /// The group counts of Table 1.
    public static let allowedGroups = [1, 2, 3, 4, 8]
    /// Units per stage (stages 2, 3, 4); the first unit of each stage has stride 2.
    public static let stageRepeats = [4, 8, 4]
    public static let stemChannels = 24
    /// The scale factors the paper evaluates (Table 2); other positive values also build.
    public static let paperScales: [Double] = [0.25, 0.5, 1, 1.5, 2]

    /// The channel counts of a (groups, scale) model: stem, then stages 2, 3, 4.
    public static func channels(groups: Int, scale: Double) -> (stem: Int, stages: [Int]) {
        precondition(stageTwoWidths[groups] != nil, "ShuffleNetV1: groups must be one of \(allowedGroups), got \(groups)")
        precondition(scale > 0, "ShuffleNetV1: scale must be positive, got \(scale)")
        let stem = makeDivisible(Double(stemChannels) * scale, divisor: groups)
        let stageTwo = makeDivisible(Double(stageTwoWidths[groups]!) * scale, divisor: 4 * groups)
        return (stem, [stageTwo, 2 * stageTwo, 4 * stageTwo])
    }

    /// The ShuffleNet unit (the paper's Fig. 2 b, c).
    ///
    /// `gconv1` = 1×1 group conv-BN-ReLU to `output / 4` channels → channel shuffle → `dw` = 3×3 depthwise conv-BN
    /// (stride s) → `gconv2` = 1×1 group conv-BN. Stride 1: `relu(x + branch)`. Stride 2: the shortcut is a 3×3
    /// average pool (stride 2, padding 1) concatenated with the branch, which then produces `output − input`
    /// channels, and `relu` follows the concatenation.
    public final class ShuffleUnit: Layer {
        public let stride: Int
        public let inputChannels: Int
        public let outputChannels: Int
        public let gconv1: Sequential
        public let shuffle: ChannelShuffle
        public let dw: Sequential
        public let gconv2: Sequential
        public let shortcutPool = AvgPool2D(kernelSize: 3, stride: 2, padding: 1)
        public let relu = ReLU()
        public var isTraining = false

        /// - Parameter groupFirstConv: whether `gconv1` is grouped (false only for the first unit of stage 2).
        public init(inputChannels: Int, outputChannels: Int, stride: Int, groups: Int, groupFirstConv: Bool = true) {
            precondition(stride == 1 || stride == 2, "ShuffleNetV1.ShuffleUnit: stride must be 1 or 2, got \(stride)")
            precondition(stride == 2 || inputChannels == outputChannels, "ShuffleNetV1.ShuffleUnit: a stride-1 unit keeps its channels")
            let bottleneck = outputChannels / 4
            let branchOutput = stride == 2 ? outputChannels - inputChannels : outputChannels
            precondition(branchOutput > 0, "ShuffleNetV1.ShuffleUnit: output channels must exceed input channels")
            self.stride = stride
            self.inputChannels = inputChannels
            self.outputChannels = outputChannels
            gconv1 = Sequential(Conv2D(inputChannels, bottleneck, kernelSize: 1, groups: groupFirstConv ? groups : 1, bias: false),
                                BatchNorm2D(bottleneck), ReLU())
            shuffle = ChannelShuffle(groups: groups)
            dw = Sequential(Conv2D(bottleneck, bottleneck, kernelSize: 3, stride: stride, padding: 1, groups: bottleneck, bias: false),
                            BatchNorm2D(bottleneck))
            gconv2 = Sequential(Conv2D(bottleneck, branchOutput, kernelSize: 1, groups: groups, bias: false),
                                BatchNorm2D(branchOutput))
        }

        private var branch: [(name: String, layer: any Layer)] {
            [("gconv1", gconv1), ("shuffle", shuffle), ("dw", dw), ("gconv2", gconv2)]
        }

        public var children: [(name: String, layer: any Layer)] {
            branch + (stride == 2 ? [("shortcut_pool", shortcutPool)] : []) + [("relu", relu)]
        }

        public func forward(_ input: Tensor) -> Tensor {
            let y = branch.reduce(input) { $1.layer.forward($0) }
            let joined = stride == 2 ? Tensor.concatenated([shortcutPool.forward(input), y], axis: 3) : input + y
            return relu.forward(joined)
        }

        public func backward(_ gradOutput: Tensor) -> Tensor {
            let grad = relu.backward(gradOutput)
            if stride == 2 {
                let parts = grad.split(axis: 3, sizes: [inputChannels, outputChannels - inputChannels])
                return shortcutPool.backward(parts[0]) + branch.reversed().reduce(parts[1]) { $1.layer.backward($0) }
            }
            return grad + branch.reversed().reduce(grad) { $1.layer.backward($0) }
        }

        public func outputShape(for inputShape: [Int]) -> [Int] {
            var shape = branch.reduce(inputShape) { $1.layer.outputShape(for: $0) }
            shape[3] = outputChannels
            return shape
        }

        public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
            var shape = traceChain(branch, inputShape, path: path, visit)
            if stride == 2 { _ = traceChain([("shortcut_pool", shortcutPool)], inputShape, path: path, visit) }
            shape[3] = outputChannels
            return traceChain([("relu", relu)], shape, path: path, visit)
        }
    }

    public let groups: Int
    public let scale: Double
    public let classCount: Int
    public let stem: Sequential
    public let stages: Sequential
    public let avgpool = GlobalAvgPool()
    public let fc: Linear
    public var isTraining = false

    /// - Parameters:
    ///   - groups: g, one of 1, 2, 3, 4, 8 (a programmer error otherwise; the zoo entry throws for user input).
    ///   - scale: s, the filter multiplier (> 0).
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image.
    public init(groups: Int = 3, scale: Double = 1, classCount: Int = 1000, inputChannels: Int = 3) {
        precondition(classCount >= 1 && inputChannels >= 1, "ShuffleNetV1: class and input channel counts must be positive")
        self.groups = groups
        self.scale = scale
        self.classCount = classCount
        let widths = Self.channels(groups: groups, scale: scale)
        stem = Sequential(Conv2D(inputChannels, widths.stem, kernelSize: 3, stride: 2, padding: 1, bias: false),
                          BatchNorm2D(widths.stem), ReLU(), MaxPool2D(kernelSize: 3, stride: 2, padding: 1))
        var units: [any Layer] = []
        var channels = widths.stem
        for (stage, repeats) in Self.stageRepeats.enumerated() {
            let output = widths.stages[stage]
            for index in 0..<repeats {
                units.append(ShuffleUnit(inputChannels: channels, outputChannels: output, stride: index == 0 ? 2 : 1,
                                         groups: groups, groupFirstConv: !(stage == 0 && index == 0)))
                channels = output
            }
        }
        stages = Sequential(units)
        fc = Linear(channels, classCount)
    }

    public var children: [(name: String, layer: any Layer)] {
        [("stem", stem), ("stages", stages), ("avgpool", avgpool), ("fc", fc)]
    }
}

extension ShuffleNetV1 {
    /// `shufflenet_v1` (`ModelOptions.groups`, default 3, must be 1, 2, 3, 4 or 8; `ModelOptions.width` is the scale
    /// factor s, default 1) and the fixed-group conveniences `shufflenet_v1_g1` … `shufflenet_v1_g8`.
    public static var zooEntries: [ModelZooEntry] {
        let general = ModelZooEntry(name: "shufflenet_v1", summary: "ShuffleNet V1 (Zhang et al. 2017), groups g (default 3), scale s",
                                    acceptsWidth: true, acceptsGroups: true) { options in
            let groups = options.groups ?? 3
            guard allowedGroups.contains(groups) else {
                throw ModelZooError.invalidOption(
                    "shufflenet_v1 supports groups \(allowedGroups.map(String.init).joined(separator: ", ")); got \(groups)")
            }
            return ShuffleNetV1(groups: groups, scale: options.width ?? 1, classCount: options.classCount,
                                inputChannels: options.inputChannels)
        }
        return [general] + allowedGroups.map { groups in
            ModelZooEntry(name: "shufflenet_v1_g\(groups)", summary: "ShuffleNet V1 g=\(groups) (Zhang et al. 2017), scale s",
                          acceptsWidth: true) { options in
                ShuffleNetV1(groups: groups, scale: options.width ?? 1, classCount: options.classCount,
                             inputChannels: options.inputChannels)
            }
        }
    }
}
