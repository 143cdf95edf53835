// ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture Design
// Ningning Ma, Xiangyu Zhang, Hai-Tao Zheng, Jian Sun — ECCV 2018
// https://arxiv.org/abs/1807.11164
//
// Structure and parameter names follow torchvision's `shufflenet_v2_x0_5` … `shufflenet_v2_x2_0`
// (`stage2.0.branch1.2.weight`, `conv5.1.running_var`, `fc.bias`).
import LiteCNNLayers
import LiteCNNTensor

/// ShuffleNet V2 (Ma et al. 2018), the paper's Table 5: a 3×3 stem (stride 2) and 3×3 max-pool, three stages of
/// 4, 8 and 4 units, a 1×1 conv, global average pooling and a linear classifier.
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (224 is native).
/// - Output: logits `[N, classCount]`.
public final class ShuffleNetV2: ChainLayer {
    public enum Variant: String, CaseIterable, Sendable {
        case x0_5, x1_0, x1_5, x2_0

        /// Output channels of conv1, stage 2, stage 3, stage 4 and conv5 (the paper's Table 5 columns).
        public var stageOutputChannels: [Int] {
            switch self {
            case .x0_5: return [24, 48, 96, 192, 1024]
            case .x1_0: return [24, 116, 232, 464, 1024]
            case .x1_5: return [24, 176, 352, 704, 1024]
            case .x2_0: return [24, 244, 488, 976, 2048]
            }
        }

        /// The channel multiplier in words ("1.0×").
        public var scaleLabel: String { String(rawValue.dropFirst().map { $0 == "_" ? "." : $0 }) + "×" }
    }

    /// Units per stage (stages 2, 3, 4); the first unit of each stage has stride 2.
    public static let stageRepeats = [4, 8, 4]

    /// The ShuffleNet V2 unit (torchvision's `InvertedResidual`).
    ///
    /// - Stride 1 (`inputChannels == outputChannels`): the channels are split in halves; the first half passes
    ///   through, the second goes through `branch2` = 1×1 conv-BN-ReLU → 3×3 depthwise conv-BN → 1×1 conv-BN-ReLU.
    /// - Stride 2: both branches see the whole input; `branch1` = 3×3 depthwise conv (stride 2)-BN → 1×1 conv-BN-ReLU.
    ///
    /// The two halves are concatenated on channels and shuffled with 2 groups.
    public final class InvertedResidual: Layer {
        public let stride: Int
        public let inputChannels: Int
        public let outputChannels: Int
        /// Empty for stride 1 (torchvision keeps an empty `nn.Sequential`).
        public let branch1: Sequential
        public let branch2: Sequential
        public let shuffle = ChannelShuffle(groups: 2)
        public var isTraining = false

        public init(inputChannels: Int, outputChannels: Int, stride: Int) {
            precondition(stride == 1 || stride == 2, "ShuffleNetV2.InvertedResidual: stride must be 1 or 2, got \(stride)")
            precondition(outputChannels % 2 == 0, "ShuffleNetV2.InvertedResidual: output channels must be even")
            let branchChannels = outputChannels / 2
            precondition(stride == 2 || inputChannels == outputChannels,
                         "ShuffleNetV2.InvertedResidual: a stride-1 unit keeps its channel count")
            self.stride = stride
            self.inputChannels = inputChannels
            self.outputChannels = outputChannels
            if stride == 2 {
                branch1 = Sequential(
                    Conv2D(inputChannels, inputChannels, kernelSize: 3, stride: 2, padding: 1, groups: inputChannels, bias: false),
                    BatchNorm2D(inputChannels),
                    Conv2D(inputChannels, branchChannels, kernelSize: 1, bias: false),
                    BatchNorm2D(branchChannels),
                    ReLU())
            } else {
                branch1 = Sequential([])
            }
            branch2 = Sequential(
                Conv2D(stride == 2 ? inputChannels : branchChannels, branchChannels, kernelSize: 1, bias: false),
                BatchNorm2D(branchChannels),
                ReLU(),
                Conv2D(branchChannels, branchChannels, kernelSize: 3, stride: stride, padding: 1, groups: branchChannels, bias: false),
                BatchNorm2D(branchChannels),
                Conv2D(branchChannels, branchChannels, kernelSize: 1, bias: false),
                BatchNorm2D(branchChannels),
                ReLU())
        }

        public var children: [(name: String, layer: any Layer)] {
            stride == 2 ? [("branch1", branch1), ("branch2", branch2), ("shuffle", shuffle)]
                        : [("branch2", branch2), ("shuffle", shuffle)]
        }

        public func forward(_ input: Tensor) -> Tensor {
            precondition(input.rank == 4 && input.shape[3] == inputChannels,
                         "ShuffleNetV2 unit (\(inputChannels)→\(outputChannels)): expected NHWC input with \(inputChannels) channels, got \(input.shape)")
            let joined: Tensor
            if stride == 2 {
                joined = Tensor.concatenated([branch1.forward(input), branch2.forward(input)], axis: 3)
            } else {
                let halves = input.split(axis: 3, sizes: [inputChannels / 2, inputChannels - inputChannels / 2])
                joined = Tensor.concatenated([halves[0], branch2.forward(halves[1])], axis: 3)
            }
            return shuffle.forward(joined)
        }

        public func backward(_ gradOutput: Tensor) -> Tensor {
            let grad = shuffle.backward(gradOutput)
            let halves = grad.split(axis: 3, sizes: [outputChannels / 2, outputChannels / 2])
            if stride == 2 {
                return branch1.backward(halves[0]) + branch2.backward(halves[1])
            }
            return Tensor.concatenated([halves[0], branch2.backward(halves[1])], axis: 3)
        }

        public func outputShape(for inputShape: [Int]) -> [Int] {
            precondition(inputShape.count == 4 && inputShape[3] == inputChannels,
                         "ShuffleNetV2 unit: expected NHWC input with \(inputChannels) channels, got \(inputShape)")
            var shape = branch2.outputShape(for: branch2Input(inputShape))
            shape[3] = outputChannels
            return shape
        }

        public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
            var shape: [Int]
            if stride == 2 {
                _ = traceChain([("branch1", branch1)], inputShape, path: path, visit)
            }
            shape = traceChain([("branch2", branch2)], branch2Input(inputShape), path: path, visit)
            shape[3] = outputChannels
            return traceChain([("shuffle", shuffle)], shape, path: path, visit)
        }

        private func branch2Input(_ inputShape: [Int]) -> [Int] {
            stride == 2 ? inputShape : [inputShape[0], inputShape[1], inputShape[2], inputShape[3] / 2]
        }
    }

    public let variant: Variant
    public let classCount: Int
    public let conv1: Sequential
    public let maxpool = MaxPool2D(kernelSize: 3, stride: 2, padding: 1)
    public let stage2: Sequential
    public let stage3: Sequential
    public let stage4: Sequential
    public let conv5: Sequential
    public let avgpool = GlobalAvgPool()
    public let fc: Linear
    public var isTraining = false

    /// - Parameters:
    ///   - variant: `.x0_5`, `.x1_0`, `.x1_5` or `.x2_0`.
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image.
    public init(_ variant: Variant, classCount: Int = 1000, inputChannels: Int = 3) {
        precondition(classCount >= 1 && inputChannels >= 1, "ShuffleNetV2: class and input channel counts must be positive")
        self.variant = variant
        self.classCount = classCount
        let widths = variant.stageOutputChannels
        conv1 = Sequential(Conv2D(inputChannels, widths[0], kernelSize: 3, stride: 2, padding: 1, bias: false),
                           BatchNorm2D(widths[0]), ReLU())
        var channels = widths[0]
        var stages: [Sequential] = []
        for (stage, repeats) in Self.stageRepeats.enumerated() {
            let output = widths[stage + 1]
            var units: [any Layer] = []
            for index in 0..<repeats {
                units.append(InvertedResidual(inputChannels: index == 0 ? channels : output, outputChannels: output,
                                              stride: index == 0 ? 2 : 1))
            }
            stages.append(Sequential(units))
            channels = output
        }
        (stage2, stage3, stage4) = (stages[0], stages[1], stages[2])
        conv5 = Sequential(Conv2D(channels, widths[4], kernelSize: 1, bias: false), BatchNorm2D(widths[4]), ReLU())
        fc = Linear(widths[4], classCount)
    }

    public var children: [(name: String, layer: any Layer)] {
        [("conv1", conv1), ("maxpool", maxpool), ("stage2", stage2), ("stage3", stage3), ("stage4", stage4),
         ("conv5", conv5), ("avgpool", avgpool), ("fc", fc)]
    }
}

extension ShuffleNetV2 {
    /// `shufflenet_v2_x0_5`, `_x1_0`, `_x1_5`, `_x2_0`.
    public static var zooEntries: [ModelZooEntry] {
        Variant.allCases.map { variant in
            ModelZooEntry(name: "shufflenet_v2_\(variant.rawValue)",
                          summary: "ShuffleNet V2 \(variant.scaleLabel) (Ma et al. 2018)") { options in
                ShuffleNetV2(variant, classCount: options.classCount, inputChannels: options.inputChannels)
            }
        }
    }
}
