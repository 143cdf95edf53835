// Singular value decomposition of Float matrices, computed in Double.
//
// Exact thin SVD: Householder QR to a square triangular factor, then one-sided (Hestenes) Jacobi rotations on it — the
// most accurate classical method (Demmel & Veselić, "Jacobi's method is more accurate than QR", SIAM J. Matrix Anal.
// Appl. 13(4), 1992). Cost O(m·n²) for m ≥ n, fine up to a few thousand columns.
//
// Truncated SVD of large matrices (VGG-16's 4096×25088 fc6): the randomized range finder of Halko, Martinsson & Tropp,
// "Finding structure with randomness" (SIAM Review 53(2), 2011, https://arxiv.org/abs/0909.4061), Algorithm 4.4 with
// power iterations: the O(m·n·l) products with A run in the fast Float GEMM, everything O((m + n)·l²) in Double.
import LiteCNNTensor

public enum SVD {
    /// A = U·diag(S)·Vᵀ, A row-major rows×cols; U rows×k, S k, Vt k×cols, k = min(rows, cols); S descending.
    ///
    /// All three are row-major. U's and V's columns are orthonormal (columns for zero singular values are completed
    /// to an orthonormal set), singular values are non-negative and descending. Computed in Double: Householder QR of
    /// the tall orientation (Aᵀ when rows < cols), then one-sided Jacobi on the k×k factor to convergence (relative
    /// off-diagonal ≤ 1e-15). Time O(max(m, n)·k² + sweeps·k³); use `truncated` for large matrices.
    public static func decompose(_ a: [Float], rows: Int, cols: Int) -> (u: [Float], s: [Float], vt: [Float]) {
        precondition(rows >= 0 && cols >= 0 && a.count == rows * cols,
                     "SVD.decompose: \(a.count) values for a \(rows)×\(cols) matrix")
        let r = decomposeDouble(a.map(Double.init), rows: rows, cols: cols)
        return (r.u.map(Float.init), r.s.map(Float.init), r.vt.map(Float.init))
    }

    /// The leading `rank` singular triplets: U rows×rank, S rank, Vt rank×cols (row-major).
    ///
    /// Small matrices (min(rows, cols) ≤ `exactLimit`, or a rank above a third of it) use the exact `decompose`.
    /// Larger ones use the randomized range finder: Y = A·Ω with a Gaussian Ω of `rank + oversampling` columns,
    /// `powerIterations` rounds of Q = orth(A·orth(Aᵀ·Q)) (re-orthonormalized in Double each time), then the exact SVD
    /// of the small B = Qᵀ·A. For a matrix whose rank is ≤ rank + oversampling this is exact up to Float rounding;
    /// otherwise its error is within a small factor of the optimal σ_{rank+1} (HMT Theorem 10.7) and power
    /// iterations drive it to the optimum. `seed` makes it reproducible.
    public static func truncated(_ a: [Float], rows: Int, cols: Int, rank: Int, oversampling: Int = 10,
                                 powerIterations: Int = 2, seed: UInt64 = 0x5EED_5BD,
                                 exactLimit: Int = 1024) -> (u: [Float], s: [Float], vt: [Float]) {
        truncated(a, rows: rows, cols: cols, rank: rank, oversampling: oversampling, powerIterations: powerIterations,
                  seed: seed, exactLimit: exactLimit, leftOnly: false)
    }

    /// `truncated`, optionally without Vt (returned empty), which the exact path then does not compute.
    static func truncated(_ a: [Float], rows: Int, cols: Int, rank: Int, oversampling: Int = 10,
                          powerIterations: Int = 2, seed: UInt64 = 0x5EED_5BD,
                          exactLimit: Int = 1024, leftOnly: Bool) -> (u: [Float], s: [Float], vt: [Float]) {
        precondition(a.count == rows * cols, "SVD.truncated: \(a.count) values for a \(rows)×\(cols) matrix")
        let k = min(rows, cols)
        precondition(rank >= 0 && rank <= k, "SVD.truncated: rank \(rank) outside 0…\(k)")
        let l = min(k, rank + max(0, oversampling))
        if k <= exactLimit || 3 * l >= k {
            let d = decomposeDouble(a.map(Double.init), rows: rows, cols: cols, leftOnly: leftOnly)
            let full = (d.u.map(Float.init), d.s.map(Float.init), d.vt.map(Float.init))
            let t = truncate(full, rows: rows, cols: cols, from: k, to: rank)
            return leftOnly ? (t.u, t.s, []) : t
        }
        // Randomized range finder.
        var generator = SeededGenerator(seed: seed)
        let omega = (0..<(cols * l)).map { _ in generator.nextNormal() }
        var y = [Float](repeating: 0, count: rows * l)
        multiply(a, rows: rows, cols: cols, transposed: false, by: omega, columns: l, into: &y)
        var q = orthonormalize(y, rows: rows, cols: l)
        for _ in 0..<max(0, powerIterations) {
            var z = [Float](repeating: 0, count: cols * l)
            multiply(a, rows: rows, cols: cols, transposed: true, by: q, columns: l, into: &z)
            let qz = orthonormalize(z, rows: cols, cols: l)
            multiply(a, rows: rows, cols: cols, transposed: false, by: qz, columns: l, into: &y)
            q = orthonormalize(y, rows: rows, cols: l)
        }
        // B = Qᵀ·A  (l × cols)
        var b = [Float](repeating: 0, count: l * cols)
        q.withUnsafeBufferPointer { qp in
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeMutableBufferPointer { bp in
                    Kernels.gemm(transA: true, m: l, n: cols, k: rows, a: qp.baseAddress!, lda: l,
                                 b: ap.baseAddress!, ldb: cols, c: bp.baseAddress!, ldc: cols)
                }
            }
        }
        let small = decomposeDouble(b.map(Double.init), rows: l, cols: cols)   // Ub l×l, Vt l×cols
        // U = Q·Ub[:, :rank]  (Double accumulation)
        var u = [Float](repeating: 0, count: rows * rank)
        for i in 0..<rows {
            for j in 0..<rank {
                var s = 0.0
                for t in 0..<l { s += Double(q[i * l + t]) * small.u[t * l + j] }
                u[i * rank + j] = Float(s)
            }
        }
        let s = small.s.prefix(rank).map(Float.init)
        let vt = small.vt.prefix(rank * cols).map(Float.init)
        return (u, Array(s), Array(vt))
    }

    /// Smallest rank whose leading singular values keep `fraction` of Σs² (1 ≤ result ≤ s.count; 0 for all-zero s).
    public static func rank(keepingEnergy fraction: Double, of s: [Float]) -> Int {
        let total = s.reduce(0.0) { $0 + Double($1) * Double($1) }
        if total == 0 { return s.isEmpty ? 0 : 1 }
        var kept = 0.0
        for (i, v) in s.enumerated() {
            kept += Double(v) * Double(v)
            if kept >= fraction * total * (1 - 1e-12) { return i + 1 }
        }
        return s.count
    }

    // MARK: Internals

    private static func truncate(_ f: (u: [Float], s: [Float], vt: [Float]), rows: Int, cols: Int, from k: Int,
                                 to r: Int) -> (u: [Float], s: [Float], vt: [Float]) {
        var u = [Float](repeating: 0, count: rows * r)
        for i in 0..<rows { for j in 0..<r { u[i * r + j] = f.u[i * k + j] } }
        return (u, Array(f.s.prefix(r)), Array(f.vt.prefix(r * cols)))
    }

    /// C (rows×l or cols×l) = op(A)·X with the fast GEMM.
    private static func multiply(_ a: [Float], rows: Int, cols: Int, transposed: Bool, by x: [Float], columns l: Int,
                                 into c: inout [Float]) {
        a.withUnsafeBufferPointer { ap in
            x.withUnsafeBufferPointer { xp in
                c.withUnsafeMutableBufferPointer { cp in
                    if transposed {
                        Kernels.gemm(transA: true, m: cols, n: l, k: rows, a: ap.baseAddress!, lda: cols,
                                     b: xp.baseAddress!, ldb: l, c: cp.baseAddress!, ldc: l)
                    } else {
                        Kernels.gemm(m: rows, n: l, k: cols, a: ap.baseAddress!, lda: cols,
                                     b: xp.baseAddress!, ldb: l, c: cp.baseAddress!, ldc: l)
                    }
                }
            }
        }
    }

    /// Orthonormal basis (rows×cols row-major Float) of the columns of a row-major rows×cols matrix, rows ≥ cols,
    /// by Householder QR in Double.
    private static func orthonormalize(_ y: [Float], rows m: Int, cols n: Int) -> [Float] {
        var cm = [Double](repeating: 0, count: m * n)            // column-major
        for i in 0..<m { for j in 0..<n { cm[j * m + i] = Double(y[i * n + j]) } }
        var qr = HouseholderQR(columnMajor: cm, rows: m, cols: n)
        let q = qr.thinQ()
        var out = [Float](repeating: 0, count: m * n)
        for j in 0..<n { for i in 0..<m { out[i * n + j] = Float(q[j * m + i]) } }
        return out
    }

    /// The exact thin SVD in Double (row-major in and out).
    static func decomposeDouble(_ a: [Double], rows: Int, cols: Int,
                                leftOnly: Bool = false) -> (u: [Double], s: [Double], vt: [Double]) {
        let k = min(rows, cols)
        if k == 0 { return ([], [], []) }
        // Work on the tall orientation T (m×n, m ≥ n), column-major.
        let transposed = rows < cols
        let m = transposed ? cols : rows, n = k
        var t = [Double](repeating: 0, count: m * n)
        if transposed {
            // T = Aᵀ: T[i, j] = A[j, i]; column j of T = row j of A.
            for j in 0..<n { for i in 0..<m { t[j * m + i] = a[j * cols + i] } }
        } else {
            for i in 0..<m { for j in 0..<n { t[j * m + i] = a[i * cols + j] } }
        }
        // T = Q·R, then R = Ur·S·Vᵀ by one-sided Jacobi, U_T = Q·Ur.
        var qr = HouseholderQR(columnMajor: t, rows: m, cols: n)
        let r = qr.r()
        if leftOnly && transposed {
            // A = Tᵀ = Rᵀ·Qᵀ: A's left singular vectors are Rᵀ's, from Jacobi on Rᵀ without accumulating V or Q.
            var rt = [Double](repeating: 0, count: n * n)
            for j in 0..<n { for i in 0..<n { rt[j * n + i] = r[i * n + j] } }
            let (ul, s, _) = jacobi(rt, n: n, accumulateV: false)
            var u = [Double](repeating: 0, count: rows * k)
            for i in 0..<rows { for j in 0..<k { u[i * k + j] = ul[j * n + i] } }
            return (u, s, [])
        }
        let (ur, s, v) = jacobi(r, n: n, accumulateV: !leftOnly)
        let q = qr.thinQ()
        var ut = [Double](repeating: 0, count: m * n)                // column-major m×n
        ut.withUnsafeMutableBufferPointer { utp in
            for j in 0..<n {
                for l in 0..<n {
                    let f = ur[j * n + l]                             // Ur[l, j] (column-major)
                    if f == 0 { continue }
                    for i in 0..<m { utp[j * m + i] += q[l * m + i] * f }
                }
            }
        }
        // T = U_T·S·Vᵀ. If A = T: U = U_T, Vt = Vᵀ. If A = Tᵀ: A = V·S·U_Tᵀ, so U = V, Vt = U_Tᵀ.
        var u = [Double](repeating: 0, count: rows * k), vt = [Double](repeating: 0, count: k * cols)
        if leftOnly {
            for i in 0..<rows { for j in 0..<k { u[i * k + j] = ut[j * m + i] } }
            return (u, s, [])
        }
        if transposed {
            for i in 0..<rows { for j in 0..<k { u[i * k + j] = v[j * n + i] } }
            for j in 0..<k { for c in 0..<cols { vt[j * cols + c] = ut[j * m + c] } }
        } else {
            for i in 0..<rows { for j in 0..<k { u[i * k + j] = ut[j * m + i] } }
            for j in 0..<k { for c in 0..<cols { vt[j * cols + c] = v[j * n + c] } }
        }
        return (u, s, vt)
    }

    /// One-sided Jacobi SVD of a square column-major n×n matrix: returns U (column-major, orthonormal columns), S
    /// descending and V (column-major).
    static func jacobi(_ a: [Double], n: Int, accumulateV: Bool = true) -> (u: [Double], s: [Double], v: [Double]) {
        var g = a
        var v = [Double](repeating: 0, count: accumulateV ? n * n : 0)
        if accumulateV { for i in 0..<n { v[i * n + i] = 1 } }
        let eps = 2.3e-16 * Double(max(n, 8))
        g.withUnsafeMutableBufferPointer { gp in
            v.withUnsafeMutableBufferPointer { vp in
                let gb = gp.baseAddress!, vb = accumulateV ? vp.baseAddress : nil
                var norms = [Double](repeating: 0, count: n)
                for _ in 0..<80 {
                    // Exact norms at every sweep; within it the closed-form update (no drift to speak of).
                    for j in 0..<n { norms[j] = dot(gb + j * n, gb + j * n, n) }
                    var rotated = false
                    for p in 0..<(n - 1) {
                        for q in (p + 1)..<n {
                            let alpha = norms[p], beta = norms[q]
                            if alpha == 0 || beta == 0 { continue }
                            let gamma = dot(gb + p * n, gb + q * n, n)
                            if abs(gamma) <= eps * (alpha * beta).squareRoot() { continue }
                            rotated = true
                            let zeta = (beta - alpha) / (2 * gamma)
                            let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
                            let c = 1 / (1 + t * t).squareRoot(), s = c * t
                            rotate(gb + p * n, gb + q * n, n, c, s)
                            if let vb { rotate(vb + p * n, vb + q * n, n, c, s) }
                            norms[p] = max(0, alpha - t * gamma)
                            norms[q] = max(0, beta + t * gamma)
                        }
                    }
                    if !rotated { break }
                }
            }
        }
        // Singular values = column norms; U = columns / norms; sort descending.
        var s = (0..<n).map { j in (0..<n).reduce(0.0) { $0 + g[j * n + $1] * g[j * n + $1] }.squareRoot() }
        let order = (0..<n).sorted { s[$0] > s[$1] || (s[$0] == s[$1] && $0 < $1) }
        let maxS = s.max() ?? 0
        var u = [Double](repeating: 0, count: n * n), vs = [Double](repeating: 0, count: accumulateV ? n * n : 0)
        var sorted = [Double](repeating: 0, count: n)
        var missing: [Int] = []
        for (dst, src) in order.enumerated() {
            sorted[dst] = s[src]
            if accumulateV { for i in 0..<n { vs[dst * n + i] = v[src * n + i] } }
            if s[src] > maxS * 1e-300 && s[src] > 0 {
                for i in 0..<n { u[dst * n + i] = g[src * n + i] / s[src] }
            } else {
                missing.append(dst)
            }
        }
        s = sorted
        // Complete U for zero singular values with orthonormal vectors (Gram–Schmidt on unit vectors, twice).
        var candidate = 0
        for dst in missing {
            while candidate < n {
                var e = [Double](repeating: 0, count: n)
                e[candidate] = 1
                candidate += 1
                for _ in 0..<2 {
                    for j in 0..<n where j != dst && (u[j * n..<(j + 1) * n].contains { $0 != 0 }) {
                        var d = 0.0
                        for i in 0..<n { d += u[j * n + i] * e[i] }
                        for i in 0..<n { e[i] -= d * u[j * n + i] }
                    }
                }
                let norm = e.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if norm > 0.5 {
                    for i in 0..<n { u[dst * n + i] = e[i] / norm }
                    break
                }
            }
        }
        return (u, s, vs)
    }

    @inline(__always)
    private static func dot(_ x: UnsafePointer<Double>, _ y: UnsafePointer<Double>, _ n: Int) -> Double {
        var s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
        var i = 0
        while i + 4 <= n {
            s0 += x[i] * y[i]; s1 += x[i + 1] * y[i + 1]; s2 += x[i + 2] * y[i + 2]; s3 += x[i + 3] * y[i + 3]
            i += 4
        }
        while i < n { s0 += x[i] * y[i]; i += 1 }
        return (s0 + s1) + (s2 + s3)
    }

    @inline(__always)
    private static func rotate(_ x: UnsafeMutablePointer<Double>, _ y: UnsafeMutablePointer<Double>, _ n: Int,
                               _ c: Double, _ s: Double) {
        for i in 0..<n {
            let a = x[i], b = y[i]
            x[i] = c * a - s * b
            y[i] = s * a + c * b
        }
    }
}

/// Householder QR of a column-major m×n Double matrix, m ≥ n: A = Q·R.
struct HouseholderQR {
    let m: Int, n: Int
    /// Column-major; R in the upper triangle after factoring, reflectors kept in `vs`.
    var a: [Double]
    /// Reflector j: v (length m − j, unit norm) with H_j = I − 2·v·vᵀ on rows j…m−1; empty when H_j = I.
    var vs: [[Double]] = []

    init(columnMajor a: [Double], rows m: Int, cols n: Int) {
        precondition(m >= n && a.count == m * n, "HouseholderQR: needs m ≥ n, got \(m)×\(n)")
        self.m = m
        self.n = n
        self.a = a
        factor()
    }

    private mutating func factor() {
        let m = m, n = n
        a.withUnsafeMutableBufferPointer { ap in
            let base = ap.baseAddress!
            for j in 0..<n {
                let col = base + j * m
                var norm = 0.0
                for i in j..<m { norm += col[i] * col[i] }
                norm = norm.squareRoot()
                if norm == 0 { vs.append([]); continue }
                let alpha = col[j] >= 0 ? -norm : norm
                var v = [Double](repeating: 0, count: m - j)
                for i in j..<m { v[i - j] = col[i] }
                v[0] -= alpha
                let vnorm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                if vnorm == 0 { vs.append([]); continue }
                for i in 0..<v.count { v[i] /= vnorm }
                // Apply H to columns j…n−1.
                v.withUnsafeBufferPointer { vp in
                    for c in j..<n {
                        let cc = base + c * m + j
                        var d = 0.0
                        for i in 0..<vp.count { d += vp[i] * cc[i] }
                        d *= 2
                        for i in 0..<vp.count { cc[i] -= d * vp[i] }
                    }
                }
                vs.append(v)
            }
        }
    }

    /// R (n×n column-major, upper triangular).
    func r() -> [Double] {
        var r = [Double](repeating: 0, count: n * n)
        for j in 0..<n { for i in 0...j { r[j * n + i] = a[j * m + i] } }
        return r
    }

    /// The first n columns of Q (m×n column-major, orthonormal).
    mutating func thinQ() -> [Double] {
        var q = [Double](repeating: 0, count: m * n)
        for j in 0..<n { q[j * m + j] = 1 }
        let m = m, n = n
        q.withUnsafeMutableBufferPointer { qp in
            let base = qp.baseAddress!
            for j in stride(from: n - 1, through: 0, by: -1) where !vs[j].isEmpty {
                vs[j].withUnsafeBufferPointer { vp in
                    for c in j..<n {
                        let cc = base + c * m + j
                        var d = 0.0
                        for i in 0..<vp.count { d += vp[i] * cc[i] }
                        d *= 2
                        if d == 0 { continue }
                        for i in 0..<vp.count { cc[i] -= d * vp[i] }
                    }
                }
            }
        }
        return q
    }
}
