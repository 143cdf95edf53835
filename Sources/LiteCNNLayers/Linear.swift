import LiteCNNTensor

/// Fully connected layer, `torch.nn.Linear`: `y = x·Wᵀ + b`.
///
/// - Input: `[N, inFeatures]` (any leading dimensions are treated as rows: `[..., inFeatures]`).
/// - Weight: `[outFeatures, inFeatures]`, bias `[outFeatures]` (PyTorch's layout and names `weight`, `bias`).
/// - Output: `[N, outFeatures]` (`[..., outFeatures]`).
///
/// Initialization matches PyTorch's default: weight and bias uniform in ±1/√inFeatures.
public final class Linear: Layer {
    public let inFeatures: Int
    public let outFeatures: Int
    public let weight: Parameter
    public let bias: Parameter?
    public var isTraining = false
    private var savedInput: Tensor?

    public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true) {
        precondition(inFeatures > 0 && outFeatures > 0, "Linear: feature counts must be positive")
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
        let bound = 1 / Float(inFeatures).squareRoot()
        weight = Parameter.uniform([outFeatures, inFeatures], bound: bound)
        self.bias = bias ? Parameter.uniform([outFeatures], bound: bound) : nil
    }

    public var localParameters: [(name: String, parameter: Parameter)] {
        bias.map { [("weight", weight), ("bias", $0)] } ?? [("weight", weight)]
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.last == inFeatures,
                     "Linear(\(inFeatures)→\(outFeatures)): expected input [..., \(inFeatures)], got \(inputShape)")
        return inputShape.dropLast() + [outFeatures]
    }

    public func localMultiplyAdds(for inputShape: [Int]) -> Int {
        inputShape.dropLast().reduce(1, *) * inFeatures * outFeatures
    }

    public func forward(_ input: Tensor) -> Tensor {
        let shape = outputShape(for: input.shape)
        let rows = input.count / inFeatures
        savedInput = isTraining ? input : nil
        return Tensor(shape: shape, layout: .plain) { out in
            if let bias {
                bias.value.scalars.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (out.baseAddress! + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
                }
            } else {
                out.update(repeating: 0)
            }
            input.scalars.withUnsafeBufferPointer { x in
                weight.value.scalars.withUnsafeBufferPointer { w in
                    Kernels.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                                 a: x.baseAddress!, lda: inFeatures, b: w.baseAddress!, ldb: inFeatures,
                                 beta: 1, c: out.baseAddress!, ldc: outFeatures)
                }
            }
        }
    }

    /// `dx = dy·W`, `dW += dyᵀ·x`, `db += Σ_rows dy`.
    public func backward(_ gradOutput: Tensor) -> Tensor {
        guard let input = savedInput else { preconditionFailure("Linear.backward without a training-mode forward") }
        let rows = input.count / inFeatures
        precondition(gradOutput.count == rows * outFeatures,
                     "Linear.backward: gradient \(gradOutput.shape) vs output \(outputShape(for: input.shape))")
        if weight.gradient.count != weight.count { weight.zeroGradient() }
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            input.scalars.withUnsafeBufferPointer { x in
                weight.gradient.scalars.withUnsafeMutableBufferPointer { dw in
                    Kernels.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                                 a: dy.baseAddress!, lda: outFeatures, b: x.baseAddress!, ldb: inFeatures,
                                 beta: 1, c: dw.baseAddress!, ldc: inFeatures)
                }
            }
            if let bias {
                if bias.gradient.count != bias.count { bias.zeroGradient() }
                bias.gradient.scalars.withUnsafeMutableBufferPointer { db in
                    for r in 0..<rows {
                        let base = r * outFeatures
                        for j in 0..<outFeatures { db[j] += dy[base + j] }
                    }
                }
            }
        }
        return Tensor(shape: input.shape, layout: input.layout) { dx in
            dx.update(repeating: 0)
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                weight.value.scalars.withUnsafeBufferPointer { w in
                    Kernels.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                                 a: dy.baseAddress!, lda: outFeatures, b: w.baseAddress!, ldb: inFeatures,
                                 beta: 0, c: dx.baseAddress!, ldc: inFeatures)
                }
            }
        }
    }
}
