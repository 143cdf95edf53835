/// Everything that fixes the shapes of one 2-D convolution.
///
/// Input is NHWC `[batch, inputHeight, inputWidth, inputChannels]`; weights are PyTorch's
/// `[outputChannels, inputChannels / groups, kernelHeight, kernelWidth]`; output is NHWC
/// `[batch, outputHeight, outputWidth, outputChannels]` with
///
///     outputHeight = (inputHeight + padTop + padBottom − dilationH·(kernelHeight − 1) − 1) / strideH + 1
///     outputWidth  = (inputWidth + padLeft + padRight − dilationW·(kernelWidth − 1) − 1) / strideW + 1
public struct ConvGeometry: Hashable, Sendable, CustomStringConvertible {
    public var batch: Int
    public var inputHeight: Int
    public var inputWidth: Int
    public var inputChannels: Int
    public var outputChannels: Int
    public var kernelHeight: Int
    public var kernelWidth: Int
    public var strideH: Int
    public var strideW: Int
    public var dilationH: Int
    public var dilationW: Int
    public var padTop: Int
    public var padLeft: Int
    public var padBottom: Int
    public var padRight: Int
    public var groups: Int

    public init(batch: Int, inputHeight: Int, inputWidth: Int, inputChannels: Int, outputChannels: Int,
                kernelHeight: Int, kernelWidth: Int, strideH: Int = 1, strideW: Int = 1,
                dilationH: Int = 1, dilationW: Int = 1,
                padTop: Int = 0, padLeft: Int = 0, padBottom: Int = 0, padRight: Int = 0, groups: Int = 1) {
        precondition(groups >= 1 && inputChannels % groups == 0 && outputChannels % groups == 0,
                     "ConvGeometry: channels \(inputChannels)→\(outputChannels) not divisible by groups \(groups)")
        precondition(kernelHeight >= 1 && kernelWidth >= 1 && strideH >= 1 && strideW >= 1 && dilationH >= 1 && dilationW >= 1,
                     "ConvGeometry: kernel, stride and dilation must be positive")
        precondition(padTop >= 0 && padLeft >= 0 && padBottom >= 0 && padRight >= 0, "ConvGeometry: negative padding")
        self.batch = batch
        self.inputHeight = inputHeight
        self.inputWidth = inputWidth
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelHeight = kernelHeight
        self.kernelWidth = kernelWidth
        self.strideH = strideH
        self.strideW = strideW
        self.dilationH = dilationH
        self.dilationW = dilationW
        self.padTop = padTop
        self.padLeft = padLeft
        self.padBottom = padBottom
        self.padRight = padRight
        self.groups = groups
    }

    public var outputHeight: Int { (inputHeight + padTop + padBottom - dilationH * (kernelHeight - 1) - 1) / strideH + 1 }
    public var outputWidth: Int { (inputWidth + padLeft + padRight - dilationW * (kernelWidth - 1) - 1) / strideW + 1 }
    public var inputChannelsPerGroup: Int { inputChannels / groups }
    public var outputChannelsPerGroup: Int { outputChannels / groups }
    public var isDepthwise: Bool { groups == inputChannels && groups > 1 && outputChannels % groups == 0 }
    public var isPointwise: Bool {
        kernelHeight == 1 && kernelWidth == 1 && strideH == 1 && strideW == 1
            && padTop == 0 && padLeft == 0 && padBottom == 0 && padRight == 0
    }
    public var inputShape: [Int] { [batch, inputHeight, inputWidth, inputChannels] }
    public var outputShape: [Int] { [batch, outputHeight, outputWidth, outputChannels] }
    public var weightShape: [Int] { [outputChannels, inputChannelsPerGroup, kernelHeight, kernelWidth] }
    /// Multiply-adds of the whole batch (bias excluded).
    public var multiplyAdds: Int {
        batch * outputHeight * outputWidth * outputChannels * inputChannelsPerGroup * kernelHeight * kernelWidth
    }

    public var description: String {
        "conv \(batch)×\(inputHeight)×\(inputWidth)×\(inputChannels) → \(outputChannels) k\(kernelHeight)×\(kernelWidth) "
            + "s\(strideH)×\(strideW) d\(dilationH)×\(dilationW) p[\(padTop),\(padLeft),\(padBottom),\(padRight)] g\(groups)"
    }
}
