import Foundation
import LiteCNNTensor
import XCTest

/// `Kernels.gemm` against `ReferenceKernels.gemm` over odd shapes, all transposes, every instruction-set level.
final class GemmKernelTests: XCTestCase {
    private struct Case {
        var m: Int, n: Int, k: Int
        var padA = 0, padB = 0, padC = 0
        var alpha: Float = 1, beta: Float = 0
    }

    private func check(_ t: Case, transA: Bool, transB: Bool, seed: UInt64) {
        let lda = max(1, transA ? t.m : t.k) + t.padA, ldb = max(1, transB ? t.k : t.n) + t.padB, ldc = t.n + t.padC
        let a = randomFloats((transA ? t.k : t.m) * lda, seed: seed)
        let b = randomFloats((transB ? t.n : t.k) * ldb, seed: seed + 1)
        // With beta = 0, C must not be read: start from NaN so any read would show.
        let c0 = t.beta == 0 ? [Float](repeating: .nan, count: t.m * ldc) : randomFloats(t.m * ldc, seed: seed + 2)
        var expected = c0.map { $0.isNaN ? 0 : $0 }
        var actual = c0
        ReferenceKernels.gemm(transA: transA, transB: transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: t.beta, c: &expected, ldc: ldc)
        Kernels.gemm(transA: transA, transB: transB, m: t.m, n: t.n, k: t.k, alpha: t.alpha, a: a, lda: lda,
                     b: b, ldb: ldb, beta: t.beta, c: &actual, ldc: ldc)
        // Padding columns of C are outside the product and must stay untouched.
        var inside = [Float](), insideExpected = [Float]()
        for i in 0..<t.m {
            for j in 0..<ldc {
                if j < t.n {
                    inside.append(actual[i * ldc + j]); insideExpected.append(expected[i * ldc + j])
                } else if !(actual[i * ldc + j].isNaN && c0[i * ldc + j].isNaN) {
                    XCTAssertEqual(actual[i * ldc + j], c0[i * ldc + j], "padding of C written at (\(i), \(j))")
                }
            }
        }
        assertClose(inside, insideExpected, depth: t.k,
                    "gemm \(t) transA=\(transA) transB=\(transB) level=\(Kernels.instructionSetLevel)")
    }

    func testAllTransposesOddShapes() {
        let cases: [Case] = [
            Case(m: 1, n: 1, k: 1),
            Case(m: 7, n: 13, k: 5, padA: 3, padB: 1, padC: 2),
            Case(m: 6, n: 16, k: 3, alpha: 0.5, beta: 0.7),
            Case(m: 5, n: 33, k: 17, padA: 1, beta: 1),
            Case(m: 37, n: 70, k: 300, padA: 5, padB: 3, padC: 1, alpha: -1.5, beta: 0.25),  // two k-blocks
            Case(m: 150, n: 47, k: 61, padC: 3),                                             // two m-blocks, threads over m
            Case(m: 4, n: 301, k: 129, padB: 2, beta: 2),                                    // threads over n
            Case(m: 3, n: 2, k: 0, beta: 0.5),                                               // empty product
        ]
        forEachInstructionSet { level in
            for (index, t) in cases.enumerated() {
                for transA in [false, true] {
                    for transB in [false, true] {
                        check(t, transA: transA, transB: transB, seed: UInt64(100 * index + level))
                    }
                }
            }
        }
    }

    func testBiasAndFusedActivation() {
        let (m, n, k) = (29, 45, 70)
        let a = randomFloats(m * k, seed: 1), b = randomFloats(k * n, seed: 2), bias = randomFloats(n, seed: 3)
        var plain = [Float](repeating: 0, count: m * n)
        ReferenceKernels.gemm(transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                              beta: 0, c: &plain, ldc: n)
        for activation in [FusedActivation.none, .relu, .relu6, .hardSwish, .sigmoid, .hardSigmoid, .silu] {
            let expected = (0..<(m * n)).map { i -> Float in
                let v = 3 * plain[i] + bias[i % n]
                switch activation {
                case .none: return v
                case .relu: return max(v, 0)
                case .relu6: return min(max(v, 0), 6)
                case .hardSwish: return v * min(max(v + 3, 0), 6) / 6
                case .sigmoid: return Float(1 / (1 + exp(-Double(v))))
                case .hardSigmoid: return min(max(v / 6 + 0.5, 0), 1)
                case .silu: return Float(Double(v) / (1 + exp(-Double(v))))
                }
            }
            forEachInstructionSet { level in
                var c = [Float](repeating: .nan, count: m * n)
                Kernels.gemm(m: m, n: n, k: k, alpha: 3, a: a, lda: k, b: b, ldb: n, beta: 0, c: &c, ldc: n,
                             bias: bias, activation: activation)
                assertClose(c, expected, depth: k, "gemm bias \(activation) level \(level)")
            }
        }
    }

    func testSingleThreadMatchesPooled() {
        let (m, n, k) = (200, 96, 150)
        let a = randomFloats(m * k, seed: 5), b = randomFloats(k * n, seed: 6)
        var pooled = [Float](repeating: 0, count: m * n), single = pooled
        Kernels.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &pooled, ldc: n)
        let saved = WorkerPool.shared.threadCount
        WorkerPool.shared.threadCount = 1
        Kernels.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &single, ldc: n)
        WorkerPool.shared.threadCount = saved
        XCTAssertEqual(pooled, single, "splitting rows over threads must not change any bit")
    }
}
