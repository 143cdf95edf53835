import LiteCNN
import XCTest
import _TestSupport

final class SVDTests: XCTestCase {
    /// rows×cols matrix of rank ≤ `rank`: a product of random rows×rank and rank×cols factors.
    static func lowRankMatrix(rows: Int, cols: Int, rank: Int, seed: UInt64) -> [Float] {
        let a = randomTensor([rows, rank], seed: seed).scalars, b = randomTensor([rank, cols], seed: seed &+ 1).scalars
        var m = [Float](repeating: 0, count: rows * cols)
        for i in 0..<rows { for t in 0..<rank { for j in 0..<cols { m[i * cols + j] += a[i * rank + t] * b[t * cols + j] } } }
        return m
    }

    /// ‖A − U·diag(S)·Vt‖ / ‖A‖ (Double).
    static func reconstructionError(_ a: [Float], rows: Int, cols: Int, u: [Float], s: [Float], vt: [Float]) -> Double {
        let k = s.count
        var num = 0.0, den = 0.0
        for i in 0..<rows {
            for j in 0..<cols {
                var v = 0.0
                for t in 0..<k { v += Double(u[i * k + t]) * Double(s[t]) * Double(vt[t * cols + j]) }
                let d = v - Double(a[i * cols + j])
                num += d * d
                den += Double(a[i * cols + j]) * Double(a[i * cols + j])
            }
        }
        return den > 0 ? (num / den).squareRoot() : num.squareRoot()
    }

    private func checkFactors(_ a: [Float], rows: Int, cols: Int, tolerance: Double = 1e-5,
                              file: StaticString = #filePath, line: UInt = #line) {
        let (u, s, vt) = SVD.decompose(a, rows: rows, cols: cols)
        let k = min(rows, cols)
        XCTAssertEqual(u.count, rows * k, file: file, line: line)
        XCTAssertEqual(s.count, k, file: file, line: line)
        XCTAssertEqual(vt.count, k * cols, file: file, line: line)
        XCTAssertTrue(s.allSatisfy { $0 >= 0 }, "non-negative \(s)", file: file, line: line)
        XCTAssertEqual(s, s.sorted(by: >), "descending", file: file, line: line)
        XCTAssertLessThan(Self.reconstructionError(a, rows: rows, cols: cols, u: u, s: s, vt: vt), tolerance,
                          "\(rows)×\(cols)", file: file, line: line)
        // Orthonormal columns of U and rows of Vt.
        for p in 0..<k {
            for q in p..<k {
                var du = 0.0, dv = 0.0
                for i in 0..<rows { du += Double(u[i * k + p]) * Double(u[i * k + q]) }
                for j in 0..<cols { dv += Double(vt[p * cols + j]) * Double(vt[q * cols + j]) }
                XCTAssertEqual(du, p == q ? 1 : 0, accuracy: 1e-5, "UᵀU[\(p),\(q)] \(rows)×\(cols)", file: file, line: line)
                XCTAssertEqual(dv, p == q ? 1 : 0, accuracy: 1e-5, "VᵀV[\(p),\(q)] \(rows)×\(cols)", file: file, line: line)
            }
        }
    }

    func testRandomTallWideAndSquareMatricesReconstruct() {
        for (rows, cols, seed) in [(7, 5, UInt64(1)), (5, 7, 2), (40, 13, 3), (13, 40, 4), (16, 16, 5), (1, 9, 6),
                                   (9, 1, 7), (1, 1, 8), (64, 48, 9)] {
            checkFactors(randomTensor([rows, cols], seed: seed).scalars, rows: rows, cols: cols)
        }
    }

    func testRankDeficientAndZeroMatrices() {
        checkFactors(Self.lowRankMatrix(rows: 20, cols: 12, rank: 3, seed: 10), rows: 20, cols: 12)
        checkFactors(Self.lowRankMatrix(rows: 9, cols: 30, rank: 1, seed: 11), rows: 9, cols: 30)
        let (_, s, _) = SVD.decompose(Self.lowRankMatrix(rows: 20, cols: 12, rank: 3, seed: 10), rows: 20, cols: 12)
        XCTAssertGreaterThan(s[2], 1e-2)
        for v in s[3...] { XCTAssertLessThan(v, 1e-4 * s[0], "rank 3: trailing singular values vanish") }
        checkFactors([Float](repeating: 0, count: 12), rows: 3, cols: 4)
        let (_, zs, _) = SVD.decompose([Float](repeating: 0, count: 12), rows: 3, cols: 4)
        XCTAssertEqual(zs, [0, 0, 0])
        // Duplicate columns.
        var dup = randomTensor([10, 6], seed: 12).scalars
        for i in 0..<10 { dup[i * 6 + 5] = dup[i * 6]; dup[i * 6 + 4] = -2 * dup[i * 6 + 1] }
        checkFactors(dup, rows: 10, cols: 6)
    }

    func testKnownSingularValues() {
        // A permuted, sign-flipped diagonal: singular values are the sorted absolute values.
        let a: [Float] = [0, 0, -3, 0,
                          0.5, 0, 0, 0,
                          0, 2, 0, 0]
        let (_, s, _) = SVD.decompose(a, rows: 3, cols: 4)
        XCTAssertEqual(s[0], 3, accuracy: 1e-6)
        XCTAssertEqual(s[1], 2, accuracy: 1e-6)
        XCTAssertEqual(s[2], 0.5, accuracy: 1e-6)
        // Frobenius norm = √Σs².
        let m = randomTensor([11, 8], seed: 13).scalars
        let (_, s2, _) = SVD.decompose(m, rows: 11, cols: 8)
        XCTAssertEqual(s2.reduce(0.0) { $0 + Double($1 * $1) }, m.reduce(0.0) { $0 + Double($1 * $1) }, accuracy: 1e-4)
    }

    func testRandomizedTruncatedSVDIsExactAtTrueRankAndMatchesExactValues() {
        let (rows, cols, r) = (300, 200, 6)
        let a = Self.lowRankMatrix(rows: rows, cols: cols, rank: r, seed: 14)
        let exact = SVD.decompose(a, rows: rows, cols: cols)
        // exactLimit 16 forces the randomized range finder.
        let t = SVD.truncated(a, rows: rows, cols: cols, rank: r, exactLimit: 16)
        XCTAssertEqual(t.u.count, rows * r)
        XCTAssertEqual(t.vt.count, r * cols)
        XCTAssertLessThan(Self.reconstructionError(a, rows: rows, cols: cols, u: t.u, s: t.s, vt: t.vt), 1e-5)
        for i in 0..<r { XCTAssertEqual(t.s[i], exact.s[i], accuracy: 1e-5 * exact.s[0]) }
        // On a full-rank matrix the rank-r truncation is near-optimal: its error is close to √Σ_{i>r} s_i².
        let full = randomTensor([260, 180], seed: 15).scalars
        let fe = SVD.decompose(full, rows: 260, cols: 180)
        let ft = SVD.truncated(full, rows: 260, cols: 180, rank: 10, exactLimit: 16)
        let optimal = (fe.s[10...].reduce(0.0) { $0 + Double($1 * $1) } / fe.s.reduce(0.0) { $0 + Double($1 * $1) }).squareRoot()
        let got = Self.reconstructionError(full, rows: 260, cols: 180, u: ft.u, s: ft.s, vt: ft.vt)
        XCTAssertLessThan(got, optimal * 1.02)
        XCTAssertGreaterThanOrEqual(got, optimal * 0.999)
    }

    func testEnergyRank() {
        XCTAssertEqual(SVD.rank(keepingEnergy: 0.5, of: [3, 2, 1]), 1)        // 9/14 ≥ 0.5
        XCTAssertEqual(SVD.rank(keepingEnergy: 0.9, of: [3, 2, 1]), 2)        // 13/14 ≥ 0.9
        XCTAssertEqual(SVD.rank(keepingEnergy: 1, of: [3, 2, 1]), 3)
        XCTAssertEqual(SVD.rank(keepingEnergy: 13.0 / 14, of: [3, 2, 1]), 2) // exact boundary
    }
}
