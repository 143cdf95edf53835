import LiteCNNLayers

/// Convolution (no bias) → BatchNorm → activation, torchvision's `Conv2dNormActivation`: a `Sequential` with children
/// `0` (conv), `1` (BatchNorm) and, when `activation` is given, `2`. Padding is `(kernelSize − 1) / 2 · dilation`, so a
/// stride-1 block keeps the spatial size. Shared by the MobileNet V1/V2/V3 and EfficientNet builders of this module.
func conv2dNormActivation(_ inputChannels: Int, _ outputChannels: Int, kernelSize: Int, stride: Int = 1,
                          groups: Int = 1, dilation: Int = 1, epsilon: Float = 1e-5, momentum: Float = 0.1,
                          activation: (any Layer)?) -> Sequential {
    var layers: [any Layer] = [
        Conv2D(inputChannels, outputChannels, kernelSize: kernelSize, stride: stride,
               padding: (kernelSize - 1) / 2 * dilation, dilation: dilation, groups: groups, bias: false),
        BatchNorm2D(outputChannels, epsilon: epsilon, momentum: momentum),
    ]
    if let activation { layers.append(activation) }
    return Sequential(layers)
}
