// IEEE 754 binary16 ("half") bit conversion for float16 operator banks, written out by hand so that it does not
// depend on Swift's `Float16` (unavailable on Intel Macs).

/// Conversion between `Float` and the IEEE 754 binary16 bit pattern: 1 sign bit, 5 exponent bits (bias 15), 10
/// fraction bits; largest finite magnitude 65504 (`0x7BFF`), smallest subnormal 2⁻²⁴ (`0x0001`), smallest normal 2⁻¹⁴
/// (`0x0400`).
///
/// `bits(from:)` rounds to the nearest binary16 value, ties to even (the IEEE default, and what `Float16(x)` does):
/// magnitudes of 65520 or more become ±∞, magnitudes of 2⁻²⁵ or less become ±0, NaN stays a (quiet) NaN with its
/// sign. `value(fromBits:)` is exact: every binary16 value is a `Float`.
public enum HalfPrecision {
    /// The largest finite binary16 magnitude, 65504 = (2 − 2⁻¹⁰) · 2¹⁵.
    public static let largestFinite: Float = 65504
    /// The smallest magnitude that rounds to infinity, 65520 = 65504 + half a unit in the last place (2⁴).
    public static let overflowThreshold: Float = 65520

    /// The binary16 bit pattern nearest to `value` (round to nearest, ties to even).
    public static func bits(from value: Float) -> UInt16 {
        let f = value.bitPattern
        let sign = UInt16(truncatingIfNeeded: f >> 16) & 0x8000
        let exponent = Int(f >> 23 & 0xFF)
        let fraction = f & 0x7F_FFFF
        if exponent == 0xFF {
            // ±∞, or NaN: keep the top fraction bits as payload and force the quiet bit so it stays a NaN.
            return fraction == 0 ? sign | 0x7C00 : sign | 0x7E00 | UInt16(truncatingIfNeeded: fraction >> 13)
        }
        let e = exponent - 127 + 15  // the binary16 biased exponent
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // A binary16 subnormal (units of 2⁻²⁴) or zero. Below 2⁻²⁵ (e < −10) everything rounds to zero, which
            // also covers zero and the float32 subnormals.
            guard e >= -10 else { return sign }
            let significand = fraction | 0x80_0000  // 24 bits with the implicit one
            let shift = UInt32(14 - e)  // 14 … 24
            let rest = significand & (1 << shift - 1), halfway: UInt32 = 1 << (shift - 1)
            var h = significand >> shift
            if rest > halfway || (rest == halfway && h & 1 == 1) { h += 1 }  // may carry into 0x0400, the smallest normal
            return sign | UInt16(h)
        }
        var h = UInt32(e) << 10 | fraction >> 13
        let rest = fraction & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && h & 1 == 1) { h += 1 }  // a carry into the exponent is correct, up to ∞
        return sign | UInt16(h)
    }

    /// The value of a binary16 bit pattern (exact).
    public static func value(fromBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10 & 0x1F)
        let fraction = UInt32(h & 0x3FF)
        switch exponent {
        case 0:
            // Zero or subnormal: fraction × 2⁻²⁴ (exact in float32).
            let magnitude = Float(fraction) * 0x1p-24
            return sign != 0 ? -magnitude : magnitude
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | fraction << 13)
        default:
            return Float(bitPattern: sign | (exponent + 127 - 15) << 23 | fraction << 13)
        }
    }

    /// `value` rounded to the nearest binary16 value, as a `Float` (±∞ beyond ±65520, NaN stays NaN).
    public static func rounded(_ value: Float) -> Float { self.value(fromBits: bits(from: value)) }

    /// Whether `value` is a finite binary16 value exactly: the same bits after a round trip through binary16 (so −0
    /// counts; NaN and ±∞ do not).
    public static func isExactlyRepresentable(_ value: Float) -> Bool {
        value.isFinite && rounded(value).bitPattern == value.bitPattern
    }
}
