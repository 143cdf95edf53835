import LiteCNNLayers
import LiteCNNTensor

/// torchvision's weight-initialization rules, applied after construction (PyTorch's layer defaults are the starting
/// point; these replace them where torchvision's model code does).
enum TorchvisionInitialization {
    /// `kaiming_normal_(mode="fan_out", nonlinearity="relu")`: N(0, 2 / (outputChannels · kh · kw)); zero bias.
    static func kaimingNormalFanOut(_ conv: Conv2D) {
        let fanOut = conv.outputChannels * conv.kernelSize.height * conv.kernelSize.width
        conv.weight.reinitialize(normalStd: (2 / Float(fanOut)).squareRoot())
        zeroBias(conv.bias)
    }

    /// `kaiming_uniform_()` with its default a = 0 (gain √2, fan-in): U(−√(6 / fanIn), √(6 / fanIn)); zero bias.
    static func kaimingUniform(_ conv: Conv2D) {
        let fanIn = conv.inputChannels / conv.groups * conv.kernelSize.height * conv.kernelSize.width
        conv.weight.reinitialize(uniformBound: (6 / Float(fanIn)).squareRoot())
        zeroBias(conv.bias)
    }

    /// `normal_(0, std)` on the weight; zero bias.
    static func normal(_ conv: Conv2D, std: Float) {
        conv.weight.reinitialize(normalStd: std)
        zeroBias(conv.bias)
    }

    /// `normal_(0, std)` on the weight; zero bias.
    static func normal(_ linear: Linear, std: Float) {
        linear.weight.reinitialize(normalStd: std)
        zeroBias(linear.bias)
    }

    private static func zeroBias(_ bias: Parameter?) {
        bias?.reinitialize(constant: 0)
    }
}
