// Linear (affine) integer quantization of weights and activations — Jacob et al., "Quantization and Training of Neural
// Networks for Efficient Integer-Arithmetic-Only Inference" (CVPR 2018), https://arxiv.org/abs/1712.05877 — with
// ONNX QuantizeLinear/DequantizeLinear semantics: q = clamp(round(x / scale) + zeroPoint), x̂ = (q − zeroPoint)·scale.
import LiteCNNTensor

/// Linear quantization of weights to `LinearQuantizedTensor` (per tensor or per output channel, symmetric or
/// asymmetric, 2…16 bits), and the scale/zero-point rule shared with activation fake quantization.
public enum LinearQuantization {
    /// Quantizes `tensor` (ONNX layout: OIHW / `[out, in]`; per channel = along dimension 0).
    ///
    /// - symmetric: `scale = max|x| / (2^(b−1) − 1)`, zero point 0, integers in `[−(2^(b−1)−1), 2^(b−1)−1]`.
    /// - asymmetric: the range `[min(x_min, 0), max(x_max, 0)]` is mapped onto `[0, 2^b − 1]`; the zero point is an
    ///   integer so that 0 is exactly representable (pruned weights and zero padding stay exact), and the scale is
    ///   widened just enough that, after rounding the zero point, both ends of the range are still covered.
    /// Either way every finite value is within `scale/2` of its decoded value (plus Float rounding), and 0 decodes
    /// to exactly 0. Non-finite values never trap: ±∞ clamp to the ends, NaN becomes the zero point. A group whose
    /// values are all 0 gets scale 1.
    public static func quantize(_ tensor: Tensor, bits: Int, symmetric: Bool, perChannel: Bool) -> LinearQuantizedTensor {
        precondition((2...16).contains(bits), "LinearQuantization.quantize: bits must be 2…16, got \(bits)")
        precondition(!perChannel || tensor.rank >= 1, "LinearQuantization.quantize: per-channel needs a tensor of rank ≥ 1")
        let x = tensor.scalars
        let groups = perChannel ? tensor.shape[0] : 1
        let stride = groups == 0 ? 0 : x.count / groups
        var scales = [Float](repeating: 1, count: groups), zeroPoints = [Int32](repeating: 0, count: groups)
        var values = [Int32](repeating: 0, count: x.count)
        for g in 0..<groups {
            var lo: Float = 0, hi: Float = 0
            for i in (g * stride)..<((g + 1) * stride) where x[i].isFinite {
                lo = min(lo, x[i]); hi = max(hi, x[i])
            }
            let p = parameters(min: lo, max: hi, bits: bits, symmetric: symmetric)
            scales[g] = p.scale
            zeroPoints[g] = p.zeroPoint
            for i in (g * stride)..<((g + 1) * stride) {
                values[i] = quantize(x[i], scale: p.scale, zeroPoint: p.zeroPoint, range: p.range)
            }
        }
        return LinearQuantizedTensor(shape: tensor.shape, bits: bits, symmetric: symmetric, axis: perChannel ? 0 : nil,
                                     scales: scales, zeroPoints: zeroPoints, values: values)
    }

    /// Quantization parameters for values in `[min, max]` (the range is first extended to contain 0).
    public struct Parameters: Sendable, Equatable {
        public var scale: Float
        public var zeroPoint: Int32
        public var range: ClosedRange<Int32>
    }

    /// Scale and zero point covering `[min(min, 0), max(max, 0)]` with `bits`-bit integers (see `quantize`).
    public static func parameters(min lo: Float, max hi: Float, bits: Int, symmetric: Bool) -> Parameters {
        precondition((2...16).contains(bits), "LinearQuantization.parameters: bits must be 2…16, got \(bits)")
        let lo = Swift.min(lo.isFinite ? lo : 0, 0), hi = Swift.max(hi.isFinite ? hi : 0, 0)
        if symmetric {
            let qmax = Int32(1) << (bits - 1) - 1
            let m = Swift.max(-lo, hi)
            let scale = m > 0 ? m / Float(qmax) : 1
            return Parameters(scale: scale.isNormal ? scale : 1, zeroPoint: 0, range: -qmax...qmax)
        }
        let qmax = Int32(1) << bits - 1
        guard hi > lo else { return Parameters(scale: 1, zeroPoint: 0, range: 0...qmax) }
        var scale = (hi - lo) / Float(qmax)
        if !scale.isNormal { scale = Float.leastNormalMagnitude }
        let zp = Int32(Swift.min(Swift.max((-lo / scale).rounded(.toNearestOrEven), 0), Float(qmax)))
        // Widen the scale so that zp·scale ≥ −lo and (qmax − zp)·scale ≥ hi (both ends representable).
        if zp > 0 { scale = Swift.max(scale, -lo / Float(zp)) }
        if zp < qmax { scale = Swift.max(scale, hi / Float(qmax - zp)) }
        // Float rounding of the divisions above: nudge up until the ends are covered.
        while Float(zp) * scale < -lo && zp > 0 || Float(qmax - zp) * scale < hi && zp < qmax { scale = scale.nextUp }
        return Parameters(scale: scale, zeroPoint: zp, range: 0...qmax)
    }

    /// `clamp(round(x / scale) + zeroPoint)` (round half to even, like ONNX QuantizeLinear).
    @inline(__always)
    public static func quantize(_ x: Float, scale: Float, zeroPoint: Int32, range: ClosedRange<Int32>) -> Int32 {
        if x.isNaN { return zeroPoint }
        let q = (x / scale).rounded(.toNearestOrEven) + Float(zeroPoint)
        if q <= Float(range.lowerBound) { return range.lowerBound }
        if q >= Float(range.upperBound) { return range.upperBound }
        return Int32(q)
    }

    /// Quantizes and dequantizes in place: `x := (quantize(x) − zeroPoint)·scale` (the decode of
    /// `LinearQuantizedTensor`).
    public static func fakeQuantize(_ x: UnsafeMutableBufferPointer<Float>, _ p: Parameters) {
        let scale = p.scale, zp = p.zeroPoint, range = p.range
        for i in 0..<x.count { x[i] = Float(quantize(x[i], scale: scale, zeroPoint: zp, range: range) - zp) * scale }
    }
}
