// Gradient clipping by global norm (Pascanu et al. 2013, "On the difficulty of training recurrent neural networks";
// `torch.nn.utils.clip_grad_norm_`) and by value (`torch.nn.utils.clip_grad_value_`).
import LiteCNNLayers
import LiteCNNTensor

/// Scales every gradient so that their global L2 norm is at most `maxNorm`, like `torch.nn.utils.clip_grad_norm_`.
///
/// The norm is `√(Σ over all parameters and elements of gradient²)` (buffers and empty gradients contribute nothing).
/// When `maxNorm / (norm + 1e-6) < 1` every gradient is multiplied by that factor. Returns the norm *before*
/// clipping. A non-finite norm (an overflowed or NaN gradient) is returned as is and the gradients are left
/// untouched, so the caller can report it and skip the step.
@discardableResult
public func clipGradientNorm(_ parameters: [Parameter], maxNorm: Float) -> Float {
    precondition(maxNorm >= 0, "clipGradientNorm: maxNorm \(maxNorm) is negative")
    var total = 0.0
    for parameter in parameters where parameter.isTrainable {
        let gradient = parameter.gradient
        guard gradient.count > 0 else { continue }
        gradient.scalars.withUnsafeBufferPointer { total += sumOfSquares($0) }
    }
    let norm = Float(total.squareRoot())
    guard norm.isFinite else { return norm }
    let factor = Float(Double(maxNorm) / (Double(norm) + 1e-6))
    guard factor < 1 else { return norm }
    for parameter in parameters where parameter.isTrainable && parameter.gradient.count > 0 {
        parameter.gradient.scalars.withUnsafeMutableBufferPointer { buffer in
            let g = buffer  // a local copy: the inout argument is reloaded after every store, which blocks vectorization
            parallelUpdate(g.count) { range in
                for i in range { g[i] *= factor }
            }
        }
    }
    return norm
}

/// Clamps every gradient element to `[−maxValue, maxValue]`, like `torch.nn.utils.clip_grad_value_` (NaN stays NaN).
public func clipGradientValue(_ parameters: [Parameter], maxValue: Float) {
    precondition(maxValue >= 0, "clipGradientValue: maxValue \(maxValue) is negative")
    let low = -maxValue, high = maxValue
    for parameter in parameters where parameter.isTrainable && parameter.gradient.count > 0 {
        parameter.gradient.scalars.withUnsafeMutableBufferPointer { buffer in
            let g = buffer  // a local copy: the inout argument is reloaded after every store, which blocks vectorization
            parallelUpdate(g.count) { range in
                for i in range {
                    let x = g[i]
                    g[i] = x < low ? low : (x > high ? high : x)
                }
            }
        }
    }
}

/// `Σ x²` in float SIMD lanes, flushed to double every 4096 elements (error ~1e-7 relative at any length), split over
/// the worker pool for large arrays.
func sumOfSquares(_ x: UnsafeBufferPointer<Float>) -> Double {
    guard let base = x.baseAddress, x.count > 0 else { return 0 }
    let parts = max(1, min(WorkerPool.shared.threadCount, x.count / optimizerParallelThreshold))
    var partials = [Double](repeating: 0, count: parts)
    partials.withUnsafeMutableBufferPointer { partial in
        WorkerPool.shared.parallelFor(parts) { part in
            let lo = x.count * part / parts, hi = x.count * (part + 1) / parts
            partial[part] = sumOfSquares(base + lo, count: hi - lo)
        }
    }
    return partials.reduce(0, +)
}

private func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
    let raw = UnsafeRawPointer(x)
    var total = 0.0
    var i = 0
    while i + 16 <= count {
        var lanes = SIMD16<Float>(repeating: 0)
        let end = min(count - 15, i + 4096)
        while i < end {
            let v = raw.loadUnaligned(fromByteOffset: i * MemoryLayout<Float>.stride, as: SIMD16<Float>.self)
            lanes += v * v  // not addProduct: without FMA hardware in the baseline target that is a libm call per lane
            i += 16
        }
        total += Double(lanes.sum())
    }
    while i < count {
        total += Double(x[i]) * Double(x[i])
        i += 1
    }
    return total
}
