import LiteCNNTensor

/// Zero padding of a 2-D convolution or pooling window.
public struct Padding2D: Hashable, Sendable {
    public var top: Int, left: Int, bottom: Int, right: Int

    public init(top: Int, left: Int, bottom: Int, right: Int) {
        precondition(top >= 0 && left >= 0 && bottom >= 0 && right >= 0, "Padding2D: negative padding")
        (self.top, self.left, self.bottom, self.right) = (top, left, bottom, right)
    }

    /// The same padding on all four sides.
    public static func uniform(_ p: Int) -> Padding2D { Padding2D(top: p, left: p, bottom: p, right: p) }
    /// `h` rows above and below, `w` columns left and right (PyTorch's `padding=(h, w)`).
    public static func symmetric(_ h: Int, _ w: Int) -> Padding2D { Padding2D(top: h, left: w, bottom: h, right: w) }
    public static let zero = Padding2D.uniform(0)
}

/// 2-D convolution, `torch.nn.Conv2d`.
///
/// - Input: NHWC `[N, H, W, inputChannels]`.
/// - Weight: `[outputChannels, inputChannels / groups, kernelHeight, kernelWidth]` (PyTorch's layout), bias `[outputChannels]`.
/// - Output: NHWC `[N, H', W', outputChannels]` with
///   `H' = (H + padTop + padBottom − dilation·(kernelHeight − 1) − 1) / stride + 1` (and likewise `W'`).
///
/// `groups == inputChannels` is a depthwise convolution; other groups are grouped convolutions (ShuffleNet).
/// Parameters are named `weight` and `bias`. Initialization matches PyTorch's default (Kaiming-uniform, a = √5).
public final class Conv2D: Layer {
    public let inputChannels: Int
    public let outputChannels: Int
    public let kernelSize: (height: Int, width: Int)
    public let stride: (height: Int, width: Int)
    public let dilation: (height: Int, width: Int)
    public let padding: Padding2D
    public let groups: Int
    public let weight: Parameter
    public let bias: Parameter?
    public var isTraining = false
    private var savedInput: Tensor?

    public init(inputChannels: Int, outputChannels: Int, kernelSize: (Int, Int), stride: (Int, Int) = (1, 1),
                padding: Padding2D = .zero, dilation: (Int, Int) = (1, 1), groups: Int = 1, bias: Bool = true) {
        precondition(inputChannels > 0 && outputChannels > 0, "Conv2D: channel counts must be positive")
        precondition(inputChannels % groups == 0 && outputChannels % groups == 0,
                     "Conv2D: \(inputChannels)→\(outputChannels) channels not divisible by groups \(groups)")
        precondition(kernelSize.0 > 0 && kernelSize.1 > 0 && stride.0 > 0 && stride.1 > 0 && dilation.0 > 0 && dilation.1 > 0,
                     "Conv2D: kernel size, stride and dilation must be positive")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.kernelSize = (kernelSize.0, kernelSize.1)
        self.stride = (stride.0, stride.1)
        self.dilation = (dilation.0, dilation.1)
        self.padding = padding
        self.groups = groups
        let fanIn = inputChannels / groups * kernelSize.0 * kernelSize.1
        let bound = 1 / Float(fanIn).squareRoot()
        weight = Parameter.uniform([outputChannels, inputChannels / groups, kernelSize.0, kernelSize.1], bound: bound)
        self.bias = bias ? Parameter.uniform([outputChannels], bound: bound) : nil
    }

    /// Square kernel, stride, padding and dilation (PyTorch's `Conv2d(in, out, k, stride=s, padding=p)`).
    public convenience init(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int = 1,
                            padding: Int = 0, dilation: Int = 1, groups: Int = 1, bias: Bool = true) {
        self.init(inputChannels: inputChannels, outputChannels: outputChannels, kernelSize: (kernelSize, kernelSize),
                  stride: (stride, stride), padding: .uniform(padding), dilation: (dilation, dilation),
                  groups: groups, bias: bias)
    }

    public var localParameters: [(name: String, parameter: Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    public func geometry(for inputShape: [Int]) -> ConvGeometry {
        precondition(inputShape.count == 4 && inputShape[3] == inputChannels,
                     "Conv2D(\(inputChannels)→\(outputChannels)): expected NHWC input with \(inputChannels) channels, got \(inputShape)")
        let g = ConvGeometry(batch: inputShape[0], inputHeight: inputShape[1], inputWidth: inputShape[2],
                             inputChannels: inputChannels, outputChannels: outputChannels,
                             kernelHeight: kernelSize.height, kernelWidth: kernelSize.width,
                             strideH: stride.height, strideW: stride.width,
                             dilationH: dilation.height, dilationW: dilation.width,
                             padTop: padding.top, padLeft: padding.left, padBottom: padding.bottom, padRight: padding.right,
                             groups: groups)
        precondition(g.outputHeight > 0 && g.outputWidth > 0, "Conv2D: input \(inputShape) too small for \(g)")
        return g
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { geometry(for: inputShape).outputShape }

    public func localMultiplyAdds(for inputShape: [Int]) -> Int { geometry(for: inputShape).multiplyAdds }

    public func forward(_ input: Tensor) -> Tensor {
        let g = geometry(for: input.shape)
        if isTraining { savedInput = input }
        return Tensor(shape: g.outputShape, layout: .nhwc) { out in
            input.scalars.withUnsafeBufferPointer { x in
                weight.value.scalars.withUnsafeBufferPointer { w in
                    if let bias {
                        bias.value.scalars.withUnsafeBufferPointer { b in
                            Kernels.conv2dForward(input: x.baseAddress!, weight: w.baseAddress!, bias: b.baseAddress!,
                                                  output: out.baseAddress!, geometry: g)
                        }
                    } else {
                        Kernels.conv2dForward(input: x.baseAddress!, weight: w.baseAddress!, bias: nil,
                                              output: out.baseAddress!, geometry: g)
                    }
                }
            }
        }
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let input = savedInput else { preconditionFailure("Conv2D.backward without a training-mode forward") }
        let g = geometry(for: input.shape)
        precondition(gradOutput.shape == g.outputShape, "Conv2D.backward: gradient \(gradOutput.shape) vs output \(g.outputShape)")
        if weight.gradient.count != weight.count { weight.zeroGradient() }
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            input.scalars.withUnsafeBufferPointer { x in
                weight.gradient.scalars.withUnsafeMutableBufferPointer { dw in
                    Kernels.conv2dBackwardWeight(input: x.baseAddress!, gradOutput: dy.baseAddress!,
                                                 gradWeight: dw.baseAddress!, geometry: g)
                }
            }
            if let bias {
                if bias.gradient.count != bias.count { bias.zeroGradient() }
                bias.gradient.scalars.withUnsafeMutableBufferPointer { db in
                    let rows = gradOutput.count / outputChannels
                    for r in 0..<rows {
                        let base = r * outputChannels
                        for c in 0..<outputChannels { db[c] += dy[base + c] }
                    }
                }
            }
        }
        return Tensor(shape: input.shape, layout: .nhwc) { dx in
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                weight.value.scalars.withUnsafeBufferPointer { w in
                    Kernels.conv2dBackwardInput(gradOutput: dy.baseAddress!, weight: w.baseAddress!,
                                                gradInput: dx.baseAddress!, geometry: g)
                }
            }
        }
    }
}
