import LiteCNNGraph
import LiteCNNTensor

// Physical layout of GraphNetwork values. A value of logical (ONNX) shape `s` is stored as follows:
// - rank 4: NHWC, physical shape `[s0, s2, s3, s1]`;
// - any other rank: row-major in logical order (plain).
// Layout-changing operators (Reshape, Transpose, Flatten, …) convert through the logical (NCHW) order; a 4-D value
// with one channel or one pixel is laid out identically in both orders and needs no copy.

/// Physical dimension i holds logical dimension `physicalPerm(rank)[i]`.
func physicalPerm(_ rank: Int) -> [Int] { rank == 4 ? [0, 2, 3, 1] : Array(0..<rank) }

/// The physical shape of a logical shape.
func physicalShape(_ logical: [Int]) -> [Int] { physicalPerm(logical.count).map { logical[$0] } }

/// The logical shape of a physical shape.
func logicalShape(_ physical: [Int]) -> [Int] {
    physical.count == 4 ? [physical[0], physical[3], physical[1], physical[2]] : physical
}

/// The physical axis holding logical axis `axis`.
func physicalAxis(_ axis: Int, rank: Int) -> Int { rank == 4 ? [0, 3, 1, 2][axis] : axis }

/// Row-major strides.
func rowMajorStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

/// Whether a 4-D logical shape has the same memory order in NHWC and NCHW.
func layoutFree(_ logical: [Int]) -> Bool { logical.count != 4 || logical[1] == 1 || logical[2] * logical[3] == 1 }

/// `dst[Σ i_d·dstStrides_d] = src[Σ i_d·srcStrides_d]` over every index of `dims` (or `+=` when `accumulate`).
func stridedCopy(dims: [Int], src: UnsafePointer<Float>, srcStrides: [Int], dst: UnsafeMutablePointer<Float>,
                 dstStrides: [Int], accumulate: Bool = false) {
    let total = dims.reduce(1, *)
    if total == 0 { return }
    let r = dims.count
    if r == 0 {
        if accumulate { dst[0] += src[0] } else { dst[0] = src[0] }
        return
    }
    let n = dims[r - 1], ss = srcStrides[r - 1], ds = dstStrides[r - 1]
    var idx = [Int](repeating: 0, count: max(0, r - 1))
    var so = 0, dOff = 0
    let rows = total / n
    for _ in 0..<rows {
        let s = src + so, d = dst + dOff
        if accumulate {
            for i in 0..<n { d[i * ds] += s[i * ss] }
        } else if ss == 1 && ds == 1 {
            d.update(from: s, count: n)
        } else {
            for i in 0..<n { d[i * ds] = s[i * ss] }
        }
        var k = r - 2
        while k >= 0 {
            idx[k] += 1; so += srcStrides[k]; dOff += dstStrides[k]
            if idx[k] < dims[k] { break }
            so -= srcStrides[k] * dims[k]; dOff -= dstStrides[k] * dims[k]; idx[k] = 0
            k -= 1
        }
    }
}

/// Copies `src` (shape `dims`, memory strides `srcStrides`) into a new contiguous tensor of physical shape `outShape`
/// whose memory order is given by `dstStrides` over the same index space.
func permutedCopy(_ src: Tensor, dims: [Int], srcStrides: [Int], dstStrides: [Int], outShape: [Int]) -> Tensor {
    Tensor(shape: outShape, layout: outShape.count == 4 ? .nhwc : .plain) { out in
        src.scalars.withUnsafeBufferPointer { s in
            stridedCopy(dims: dims, src: s.baseAddress!, srcStrides: srcStrides, dst: out.baseAddress!, dstStrides: dstStrides)
        }
    }
}

/// A physical tensor of logical shape `logical` as row-major logical data (a plain tensor of shape `logical`).
func toLogical(_ t: Tensor, _ logical: [Int]) -> Tensor {
    if layoutFree(logical) { return t.reshaped(to: logical, layout: .plain) }
    // Physical NHWC [n,h,w,c] → logical [n,c,h,w]: logical dim d has memory stride ps[position of d].
    let ps = rowMajorStrides(physicalShape(logical))
    let strides = [ps[0], ps[3], ps[1], ps[2]]
    return permutedCopy(t, dims: logical, srcStrides: strides, dstStrides: rowMajorStrides(logical), outShape: logical)
        .reshaped(to: logical, layout: .plain)
}

/// Row-major logical data of shape `logical` as a physical tensor.
func fromLogical(_ t: Tensor, _ logical: [Int]) -> Tensor {
    let phys = physicalShape(logical)
    if layoutFree(logical) { return t.reshaped(to: phys, layout: logical.count == 4 ? .nhwc : .plain) }
    let ps = rowMajorStrides(phys)
    let dst = [ps[0], ps[3], ps[1], ps[2]]
    return permutedCopy(t, dims: logical, srcStrides: rowMajorStrides(logical), dstStrides: dst, outShape: phys)
}

/// A graph constant as a physical tensor (ints converted to floats).
func physicalConstant(_ c: Constant) -> Tensor {
    switch c {
    case let .float(t): return fromLogical(t.reshaped(to: t.shape, layout: .plain), t.shape)
    case let .int(v, shape): return fromLogical(Tensor(shape: shape, scalars: v.map(Float.init), layout: .plain), shape)
    }
}

/// The strides of an operand of logical shape `shape` broadcast to an output of logical rank `rank`, in the output's
/// physical order, assuming the operand is stored as `physicalOperand` returns it. 0 where broadcast.
func broadcastPhysicalStrides(_ shape: [Int], rank: Int) -> [Int] {
    let padded = [Int](repeating: 1, count: rank - shape.count) + shape
    let phys = physicalShape(padded)
    let s = rowMajorStrides(phys)
    return phys.indices.map { phys[$0] == 1 ? 0 : s[$0] }
}

/// An operand (physical tensor of logical shape `shape`) re-laid out for broadcasting against a logical rank `rank`:
/// its logical shape right-aligned to `rank` (leading 1s), stored physically for that rank.
func physicalOperand(_ t: Tensor, shape: [Int], rank: Int) -> Tensor {
    if shape.count == rank { return t }
    let padded = [Int](repeating: 1, count: rank - shape.count) + shape
    return fromLogical(toLogical(t, shape).reshaped(to: padded, layout: .plain), padded)
}

/// The inverse of `physicalOperand`: data stored physically for the padded rank back to the operand's own layout.
func ownOperand(_ t: Tensor, shape: [Int], rank: Int) -> Tensor {
    if shape.count == rank { return t }
    let padded = [Int](repeating: 1, count: rank - shape.count) + shape
    return fromLogical(toLogical(t, padded).reshaped(to: shape, layout: .plain), shape)
}

/// Iterates an output of physical shape `dims` with two operand stride sets: calls `body(outOffset, aOffset, bOffset,
/// count, aStride, bStride)` for each run along the last axis.
@inline(__always)
func broadcastRows(_ dims: [Int], _ sa: [Int], _ sb: [Int],
                   _ body: (Int, Int, Int, Int, Int, Int) -> Void) {
    let r = dims.count
    let total = dims.reduce(1, *)
    if total == 0 { return }
    if r == 0 { body(0, 0, 0, 1, 0, 0); return }
    let n = dims[r - 1]
    var idx = [Int](repeating: 0, count: max(0, r - 1))
    var ao = 0, bo = 0
    for row in 0..<(total / n) {
        body(row * n, ao, bo, n, sa[r - 1], sb[r - 1])
        var k = r - 2
        while k >= 0 {
            idx[k] += 1; ao += sa[k]; bo += sb[k]
            if idx[k] < dims[k] { break }
            ao -= sa[k] * dims[k]; bo -= sb[k] * dims[k]; idx[k] = 0
            k -= 1
        }
    }
}

/// Sums `dy` (physical output shape `dims`) into a tensor of `count` elements laid out with broadcast strides `s`
/// (the gradient of a broadcast operand), optionally multiplying by `other` (strides `so`).
func reduceBroadcast(_ dy: Tensor, dims: [Int], strides s: [Int], count: Int, shape: [Int],
                     times other: Tensor? = nil, otherStrides so: [Int] = []) -> Tensor {
    var out = Tensor(shape: shape, repeating: 0, layout: shape.count == 4 ? .nhwc : .plain)
    out.scalars.withUnsafeMutableBufferPointer { g in
        dy.scalars.withUnsafeBufferPointer { d in
            if let other {
                other.scalars.withUnsafeBufferPointer { o in
                    broadcastRows(dims, s, so) { oo, ao, bo, n, sa, sb in
                        for i in 0..<n { g[ao + i * sa] += d[oo + i] * o[bo + i * sb] }
                    }
                }
            } else {
                broadcastRows(dims, s, s) { oo, ao, _, n, sa, _ in
                    if sa == 0 {
                        var acc: Float = 0
                        for i in 0..<n { acc += d[oo + i] }
                        g[ao] += acc
                    } else {
                        for i in 0..<n { g[ao + i * sa] += d[oo + i] }
                    }
                }
            }
        }
    }
    precondition(out.count == count, "reduceBroadcast: \(out.count) vs \(count)")
    return out
}

/// Adds `b` into `a` elementwise (same element count).
func addInPlace(_ a: inout Tensor, _ b: Tensor) {
    precondition(a.count == b.count, "gradient accumulation: \(a.shape) vs \(b.shape)")
    a.scalars.withUnsafeMutableBufferPointer { x in
        b.scalars.withUnsafeBufferPointer { y in for i in 0..<x.count { x[i] += y[i] } }
    }
}
