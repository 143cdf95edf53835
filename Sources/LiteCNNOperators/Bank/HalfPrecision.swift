// IEEE 754 binary16 ("half") values for float16 operator banks: Swift's `Float16` conversions (as the .lcz format's
// float16 tensors use them), plus the checks the bank file needs.

/// Conversion between `Float` and the IEEE 754 binary16 bit pattern: 1 sign bit, 5 exponent bits (bias 15), 10
/// fraction bits; largest finite magnitude 65504 (`0x7BFF`), smallest subnormal 2⁻²⁴ (`0x0001`), smallest normal 2⁻¹⁴
/// (`0x0400`).
///
/// `bits(from:)` rounds to the nearest binary16 value, ties to even (the IEEE default, `Float16(x)`):
/// magnitudes of 65520 or more become ±∞, magnitudes of 2⁻²⁵ or less become ±0, NaN stays a (quiet) NaN with its
/// sign. `value(fromBits:)` is exact: every binary16 value is a `Float`.
public enum HalfPrecision {
    /// The largest finite binary16 magnitude, 65504 = (2 − 2⁻¹⁰) · 2¹⁵.
    public static let largestFinite: Float = 65504
    /// The smallest magnitude that rounds to infinity, 65520 = 65504 + half a unit in the last place (2⁴).
    public static let overflowThreshold: Float = 65520

    /// The binary16 bit pattern nearest to `value` (round to nearest, ties to even).
    public static func bits(from value: Float) -> UInt16 { Float16(value).bitPattern }

    /// The value of a binary16 bit pattern (exact).
    public static func value(fromBits h: UInt16) -> Float { Float(Float16(bitPattern: h)) }

    /// `value` rounded to the nearest binary16 value, as a `Float` (±∞ beyond ±65520, NaN stays NaN).
    public static func rounded(_ value: Float) -> Float { self.value(fromBits: bits(from: value)) }

    /// Whether `value` is a finite binary16 value exactly: the same bits after a round trip through binary16 (so −0
    /// counts; NaN and ±∞ do not).
    public static func isExactlyRepresentable(_ value: Float) -> Bool {
        value.isFinite && rounded(value).bitPattern == value.bitPattern
    }
}
