import LiteCNNLayers
import LiteCNNTensor

/// A block whose output is `body(x)`, plus `x` when `usesResidual` (stride 1, channels unchanged): MobileNet V2's and
/// V3's inverted residuals. Conformers store the body under torchvision's child name (`conv`, `block`) and get
/// `children`, `forward`, `backward`, `outputShape` and `trace` from here.
protocol SkipConnectedBlock: Layer {
    var body: Sequential { get }
    var bodyName: String { get }
    var usesResidual: Bool { get }
}

extension SkipConnectedBlock {
    public var children: [(name: String, layer: any Layer)] { [(bodyName, body)] }

    public func forward(_ input: Tensor) -> Tensor {
        let output = body.forward(input)
        return usesResidual ? output + input : output
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        let gradInput = body.backward(gradOutput)
        return usesResidual ? gradInput + gradOutput : gradInput
    }

    public func outputShape(for inputShape: [Int]) -> [Int] { body.outputShape(for: inputShape) }

    public func trace(_ inputShape: [Int], path: String, _ visit: (LayerTrace) -> Void) -> [Int] {
        traceChain(children, inputShape, path: path, visit)
    }
}
