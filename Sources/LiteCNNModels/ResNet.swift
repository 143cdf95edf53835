// Deep Residual Learning for Image Recognition
// Kaiming He, Xiangyu Zhang, Shaoqing Ren, Jian Sun — 2015 (CVPR 2016)
// https://arxiv.org/abs/1512.03385
//
// Variants computed here, all from Table 1 of the paper as torchvision builds them:
// - BasicBlock (two 3×3 convs) networks `resnet18` [2, 2, 2, 2] and `resnet34` [3, 4, 6, 3];
// - Bottleneck (1×1, 3×3, 1×1 with 4× expansion) networks `resnet50` [3, 4, 6, 3], `resnet101` [3, 4, 23, 3] and
//   `resnet152` [3, 8, 36, 3], with the stride on the 3×3 conv ("ResNet v1.5", torchvision's choice);
// - the same Bottleneck with groups and width per group: `resnext50_32x4d` (Xie et al. 2016,
//   https://arxiv.org/abs/1611.05431) and `wide_resnet50_2` (Zagoruyko & Komodakis 2016,
//   https://arxiv.org/abs/1605.07146; width per group 128).
// Shortcuts: identity, or a 1×1 strided conv + BatchNorm (`downsample`, the paper's option B) when the stride or the
// channel count changes.
//
// Parameter names follow torchvision (`layer2.0.downsample.0.weight`, `fc.bias`). torchvision calls one `relu` module
// up to three times per block; here every call has its own instance (layers save their own state for backward), named
// like torch.fx names repeated calls: `relu`, `relu_1`, `relu_2`. Initialization follows torchvision: Kaiming-normal
// convolutions (fan-out, gain √2), BatchNorm γ = 1, β = 0, PyTorch's default for `fc`.
import LiteCNNLayers
import LiteCNNTensor

/// A residual network (He et al. 2015): a 7×7/2 stem conv + BN + ReLU, a 3×3/2 max pool, four stages of residual
/// blocks (64, 128, 256, 512 base channels; stages 2–4 start with stride 2), global average pooling and a linear layer.
///
/// - Input: NHWC `[N, H, W, inputChannels]`; the network downsamples by 32 (any `H, W ≥ 1` works; 224 is native).
/// - Output: logits `[N, classCount]`.
public final class ResNet: ChainLayer {
    /// The residual block type.
    public enum BlockKind: String, Sendable {
        /// Two 3×3 convolutions, expansion 1 (ResNet-18/34).
        case basic
        /// 1×1 reduce, 3×3 (grouped for ResNeXt), 1×1 expand ×4 (ResNet-50/101/152).
        case bottleneck

        public var expansion: Int { self == .basic ? 1 : 4 }
    }

    /// A network of the family: block type, blocks per stage, and (Bottleneck only) groups and width per group.
    public struct Configuration: Sendable, Equatable {
        public var block: BlockKind
        public var blocksPerStage: [Int]
        public var groups: Int
        public var widthPerGroup: Int

        public init(block: BlockKind, blocksPerStage: [Int], groups: Int = 1, widthPerGroup: Int = 64) {
            precondition(blocksPerStage.count == 4 && blocksPerStage.allSatisfy { $0 >= 1 },
                         "ResNet: four stages of at least one block, got \(blocksPerStage)")
            precondition(groups >= 1 && widthPerGroup >= 1, "ResNet: groups and width per group must be positive")
            precondition(block == .bottleneck || (groups == 1 && widthPerGroup == 64),
                         "ResNet: BasicBlock supports only groups = 1 and width per group = 64")
            self.block = block
            self.blocksPerStage = blocksPerStage
            self.groups = groups
            self.widthPerGroup = widthPerGroup
        }

        public static let resnet18 = Configuration(block: .basic, blocksPerStage: [2, 2, 2, 2])
        public static let resnet34 = Configuration(block: .basic, blocksPerStage: [3, 4, 6, 3])
        public static let resnet50 = Configuration(block: .bottleneck, blocksPerStage: [3, 4, 6, 3])
        public static let resnet101 = Configuration(block: .bottleneck, blocksPerStage: [3, 4, 23, 3])
        public static let resnet152 = Configuration(block: .bottleneck, blocksPerStage: [3, 8, 36, 3])
        public static let resnext50_32x4d = Configuration(block: .bottleneck, blocksPerStage: [3, 4, 6, 3], groups: 32,
                                                          widthPerGroup: 4)
        public static let wideResnet50_2 = Configuration(block: .bottleneck, blocksPerStage: [3, 4, 6, 3], widthPerGroup: 128)
    }

    /// A residual block: `relu(body(x) + shortcut(x))`, where the shortcut is the identity or `downsample`
    /// (1×1 conv with the block's stride + BatchNorm). Children carry torchvision's names
    /// (`conv1`, `bn1`, `relu`, `conv2`, `bn2`, [`conv3`, `bn3`], `downsample`) plus the extra ReLU instances
    /// `relu_1` (and `relu_2` for Bottleneck).
    ///
    /// - BasicBlock: 3×3 conv (stride) → BN → ReLU → 3×3 conv → BN; output channels `planes`.
    /// - Bottleneck: 1×1 conv to `width = planes · widthPerGroup / 64 · groups` → BN → ReLU → 3×3 conv (stride,
    ///   groups) → BN → ReLU → 1×1 conv to `4 · planes` → BN.
    /// - Input `[N, H, W, inputChannels]` → output `[N, ⌈H / stride⌉, ⌈W / stride⌉, planes · expansion]`.
    public final class Block: Layer {
        public let kind: BlockKind
        public let inputChannels: Int
        public let outputChannels: Int
        public let stride: Int
        /// conv1 … the last BN, in execution order (the residual branch).
        private let body: [(name: String, layer: any Layer)]
        public let downsample: Sequential?
        private let outputActivation = ReLU()
        public var isTraining = false

        public init(kind: BlockKind, inputChannels: Int, planes: Int, stride: Int, groups: Int = 1, widthPerGroup: Int = 64) {
            precondition(stride >= 1, "ResNet.Block: stride must be positive")
            self.kind = kind
            self.inputChannels = inputChannels
            self.outputChannels = planes * kind.expansion
            self.stride = stride
            switch kind {
            case .basic:
                body = [("conv1", Conv2D(inputChannels, planes, kernelSize: 3, stride: stride, padding: 1, bias: false)),
                        ("bn1", BatchNorm2D(planes)), ("relu", ReLU()),
                        ("conv2", Conv2D(planes, planes, kernelSize: 3, padding: 1, bias: false)),
                        ("bn2", BatchNorm2D(planes))]
            case .bottleneck:
                let width = planes * widthPerGroup / 64 * groups
                body = [("conv1", Conv2D(inputChannels, width, kernelSize: 1, bias: false)),
                        ("bn1", BatchNorm2D(width)), ("relu", ReLU()),
                        ("conv2", Conv2D(width, width, kernelSize: 3, stride: stride, padding: 1, groups: groups, bias: false)),
                        ("bn2", BatchNorm2D(width)), ("relu_1", ReLU()),
                        ("conv3", Conv2D(width, outputChannels, kernelSize: 1, bias: false)),
                        ("bn3", BatchNorm2D(outputChannels))]
            }
            downsample = stride != 1 || inputChannels != outputChannels
                ? Sequential(Conv2D(inputChannels, outputChannels, kernelSize: 1, stride: stride, bias: false),
                             BatchNorm2D(outputChannels))
                : nil
        }

        private var outputActivationName: String { kind == .basic ? "relu_1" : "relu_2" }

        public var children: [(name: String, layer: any Layer)] {
            body + (downsample.map { [("downsample", $0 as any Layer)] } ?? []) + [(outputActivationName, outputActivation)]
        }

        public func forward(_ input: Tensor) -> Tensor {
            var sum = body.reduce(input) { $1.layer.forward($0) }
            sum += downsample?.forward(input) ?? input
            return outputActivation.forward(sum)
        }

        public func backward(_ gradOutput: Tensor) -> Tensor {
            let gradSum = outputActivation.backward(gradOutput)
            var gradInput = body.reversed().reduce(gradSum) { $1.layer.backward($0) }
            gradInput += downsample?.backward(gradSum) ?? gradSum
            return gradInput
        }

        public func outputShape(for inputShape: [Int]) -> [Int] {
            body.reduce(inputShape) { $1.layer.outputShape(for: $0) }
        }

        public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
            let output = traceChain(body, inputShape, path: path, visit)
            if let downsample { _ = traceChain([("downsample", downsample)], inputShape, path: path, visit) }
            return traceChain([(outputActivationName, outputActivation)], output, path: path, visit)
        }
    }

    public let configuration: Configuration
    public let classCount: Int
    public let conv1: Conv2D
    public let bn1: BatchNorm2D
    public let relu = ReLU()
    public let maxpool = MaxPool2D(kernelSize: 3, stride: 2, padding: 1)
    /// `layer1` … `layer4`.
    public let stages: [Sequential]
    public let avgpool = GlobalAvgPool()
    public let fc: Linear
    public var isTraining = false

    /// - Parameters:
    ///   - configuration: block type and depth (`.resnet18`, `.resnet50`, …).
    ///   - classCount: size of the output.
    ///   - inputChannels: channels of the input image (the stem convolution takes them).
    public init(_ configuration: Configuration = .resnet18, classCount: Int = 1000, inputChannels: Int = 3) {
        precondition(classCount >= 1 && inputChannels >= 1, "ResNet: class and input channel counts must be positive")
        self.configuration = configuration
        self.classCount = classCount
        conv1 = Conv2D(inputChannels, 64, kernelSize: 7, stride: 2, padding: 3, bias: false)
        bn1 = BatchNorm2D(64)
        var channels = 64
        var stages: [Sequential] = []
        for (index, blocks) in configuration.blocksPerStage.enumerated() {
            let planes = 64 << index
            var stage: [any Layer] = []
            for blockIndex in 0..<blocks {
                let block = Block(kind: configuration.block, inputChannels: channels, planes: planes,
                                  stride: blockIndex == 0 && index > 0 ? 2 : 1,
                                  groups: configuration.groups, widthPerGroup: configuration.widthPerGroup)
                stage.append(block)
                channels = block.outputChannels
            }
            stages.append(Sequential(stage))
        }
        self.stages = stages
        fc = Linear(channels, classCount)
        for (_, layer) in namedLayers() {
            if let conv = layer as? Conv2D { TorchvisionInitialization.kaimingNormalFanOut(conv) }
        }
    }

    public var children: [(name: String, layer: any Layer)] {
        [("conv1", conv1), ("bn1", bn1), ("relu", relu), ("maxpool", maxpool)]
            + stages.enumerated().map { ("layer\($0.offset + 1)", $0.element as any Layer) }
            + [("avgpool", avgpool), ("fc", fc)]
    }
}

extension ResNet {
    /// ResNet-18/34/50/101/152, ResNeXt-50 32×4d and Wide ResNet-50-2.
    public static var zooEntries: [ModelZooEntry] {
        func entry(_ name: String, _ summary: String, _ configuration: Configuration) -> ModelZooEntry {
            ModelZooEntry(name: name, summary: summary) { options in
                ResNet(configuration, classCount: options.classCount, inputChannels: options.inputChannels)
            }
        }
        return [
            entry("resnet18", "ResNet-18 (He et al. 2015), BasicBlock [2, 2, 2, 2]", .resnet18),
            entry("resnet34", "ResNet-34, BasicBlock [3, 4, 6, 3]", .resnet34),
            entry("resnet50", "ResNet-50, Bottleneck [3, 4, 6, 3]", .resnet50),
            entry("resnet101", "ResNet-101, Bottleneck [3, 4, 23, 3]", .resnet101),
            entry("resnet152", "ResNet-152, Bottleneck [3, 8, 36, 3]", .resnet152),
            entry("resnext50_32x4d", "ResNeXt-50 32×4d (Xie et al. 2016)", .resnext50_32x4d),
            entry("wide_resnet50_2", "Wide ResNet-50-2 (Zagoruyko & Komodakis 2016)", .wideResnet50_2),
        ]
    }
}
