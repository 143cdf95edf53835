import Synchronization

/// A small, fast, seedable generator (xoshiro256**), so that weights and data are reproducible by seed.
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s: (UInt64, UInt64, UInt64, UInt64)

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s = (splitmix(), splitmix(), splitmix(), splitmix())
    }

    public mutating func next() -> UInt64 {
        let result = ((s.1 &* 5) << 7 | (s.1 &* 5) >> 57) &* 9
        let t = s.1 << 17
        s.2 ^= s.0; s.3 ^= s.1; s.1 ^= s.2; s.0 ^= s.3
        s.2 ^= t
        s.3 = (s.3 << 45) | (s.3 >> 19)
        return result
    }

    /// Uniform in [0, 1).
    public mutating func nextUnit() -> Float { Float(next() >> 40) * (1.0 / Float(1 << 24)) }

    /// Standard normal (Box–Muller).
    public mutating func nextNormal() -> Float {
        let u1 = max(nextUnit(), 1e-7), u2 = nextUnit()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * .pi * u2)
    }
}

@inline(__always) func _log(_ x: Float) -> Float { Float(log(Double(x))) }
@inline(__always) func _cos(_ x: Float) -> Float { Float(cos(Double(x))) }

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The process-wide generator layers draw their initial weights from. `WeightInitialization.seed(_:)` makes
/// model construction reproducible.
public enum WeightInitialization {
    private static let generator = Mutex(SeededGenerator(seed: 0x11E_C22))

    public static func seed(_ value: UInt64) { generator.withLock { $0 = SeededGenerator(seed: value) } }

    /// A fresh seed from the process-wide generator (parameters draw one when created, so lazy generation stays
    /// reproducible whatever order parameters are first used in).
    public static func nextSeed() -> UInt64 { generator.withLock { $0.next() } }

    /// Uniform in [-bound, bound), from the process-wide generator.
    public static func uniform(_ shape: [Int], bound: Float) -> Tensor { uniform(shape, bound: bound, seed: nextSeed()) }

    /// Normal with mean 0 and standard deviation `std`, from the process-wide generator.
    public static func normal(_ shape: [Int], std: Float) -> Tensor { normal(shape, std: std, seed: nextSeed()) }

    /// Uniform in [-bound, bound) from its own seed.
    public static func uniform(_ shape: [Int], bound: Float, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor(shape: shape, unsafeUninitialized: { out in
            for i in 0..<out.count { out[i] = (g.nextUnit() * 2 - 1) * bound }
        })
    }

    /// Normal with mean 0 and standard deviation `std` from its own seed.
    public static func normal(_ shape: [Int], std: Float, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        return Tensor(shape: shape, unsafeUninitialized: { out in
            for i in 0..<out.count { out[i] = g.nextNormal() * std }
        })
    }
}
