import Foundation
import LiteCNN

/// Parameters and inputs as closed-form functions of a parameter's name and element index, shared with
/// `scripts/make_model_goldens.py` (`formula_tensor`, `formula_input`) and the ONNX fixtures. Golden tests commit only
/// outputs: both sides regenerate the same weights, so no weight file is stored.
public enum ClosedFormWeights {
    /// Σ byte·(position+1) mod 1009, as a phase in [0, 2π).
    public static func phase(_ name: String) -> Double {
        var sum = 0
        for (i, b) in name.utf8.enumerated() { sum += Int(b) * (i + 1) }
        return Double(sum % 1009) / 1009.0 * 2.0 * Double.pi
    }

    /// The value of every element of parameter `name` with `shape` (PyTorch layout), as `formula_tensor` computes it.
    public static func tensor(name: String, shape: [Int]) -> Tensor {
        let phase = phase(name)
        let fanIn = shape.dropFirst().reduce(1, *)
        return Tensor(shape: shape, unsafeUninitialized: { out in
            WorkerPool.shared.parallelRanges(out.count, minimumChunk: 1 << 16) { range in
            for i in range {
                let s = sin(phase + 0.7 * Double(i % 8963) + 2.0 * Double.pi * Double((i * i) % 10007) / 10007.0)
                let v: Double
                if name.hasSuffix("running_var") { v = 1.0 + 0.25 * (1.0 + s) }
                else if name.hasSuffix("running_mean") { v = 0.1 * s }
                else if shape.count == 1 && name.hasSuffix("weight") { v = 1.0 + 0.1 * s }
                else if shape.count == 1 { v = 0.1 * s }
                else { v = (4.0 / Double(fanIn)).squareRoot() * s }
                out[i] = Float(v)
            }
            }
        })
    }

    /// `formula_input`: an NCHW tensor (layout `.nchw`) of `shape`.
    public static func inputNCHW(_ shape: [Int]) -> Tensor {
        Tensor(shape: shape, unsafeUninitialized: { out in
            for i in 0..<out.count { out[i] = Float(sin(0.05 * Double(i % 7919) + Double((i * i) % 101))) }
        }).reshaped(to: shape, layout: .nchw)
    }

    /// Fills every parameter and buffer of `model` by its name.
    public static func fill(_ model: any Layer) {
        for (name, p) in model.namedParameters() { p.value = tensor(name: name, shape: p.value.shape) }
    }
}
