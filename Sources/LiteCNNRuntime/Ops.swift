import Foundation
import LiteCNNTensor

// Runtime kernels of the operators that are not convolutions or GEMMs. All work on raw buffers in *physical*
// order (NHWC for 4-D activations, row-major logical order otherwise); the planner maps ONNX axes to physical ones.

/// A loop nest over `dims` (row-major, innermost last) with up to three operands, each with its own strides.
/// Size-1 dimensions are dropped and dimensions that are contiguous for every operand are merged, so the innermost
/// run is as long as possible.
struct StridedLoop {
    var outerDims: [Int] = []
    var outerStrides: [[Int]] = []  // per dimension: stride of each operand
    var inner = 1
    var innerStrides: [Int]
    var rows: Int

    init(dims: [Int], strides: [[Int]]) {
        let k = strides.count
        var d: [Int] = [], s: [[Int]] = []
        for i in 0..<dims.count where dims[i] != 1 {
            let col = (0..<k).map { strides[$0][i] }
            if let last = d.last, (0..<k).allSatisfy({ s[s.count - 1][$0] == col[$0] * dims[i] }) {
                d[d.count - 1] = last * dims[i]
                s[s.count - 1] = col
            } else {
                d.append(dims[i]); s.append(col)
            }
        }
        if let last = d.popLast() {
            inner = last
            innerStrides = s.removeLast()
        } else {
            inner = dims.contains(0) ? 0 : 1
            innerStrides = [Int](repeating: 0, count: k)
        }
        outerDims = d
        outerStrides = s
        rows = d.reduce(1, *)
    }

    /// Operand offsets of row `row`.
    @inline(__always)
    func offsets(_ row: Int) -> (Int, Int, Int) {
        var r = row, o0 = 0, o1 = 0, o2 = 0
        var i = outerDims.count - 1
        while i >= 0 {
            let q = r % outerDims[i]
            r /= outerDims[i]
            let s = outerStrides[i]
            o0 += q * s[0]
            if s.count > 1 { o1 += q * s[1] }
            if s.count > 2 { o2 += q * s[2] }
            i -= 1
        }
        return (o0, o1, o2)
    }

    /// Runs `body(offsets, inner)` for every row, split over the worker pool when the loop is large.
    func forEachRow(_ body: ((Int, Int, Int)) -> Void) {
        if inner == 0 { return }
        let total = rows * inner
        let minimumRows = max(1, 32_768 / max(1, inner))
        if total < 65_536 {
            for r in 0..<rows { body(offsets(r)) }
        } else {
            WorkerPool.shared.parallelRanges(rows, minimumChunk: minimumRows) { range in
                for r in range { body(offsets(r)) }
            }
        }
    }
}

/// `dst[strided] = src[strided]` over `dims`.
func stridedCopy(dims: [Int], src: UnsafePointer<Float>, srcStrides: [Int], dst: UnsafeMutablePointer<Float>, dstStrides: [Int]) {
    let loop = StridedLoop(dims: dims, strides: [dstStrides, srcStrides])
    let n = loop.inner, sd = loop.innerStrides[0], ss = loop.innerStrides[1]
    loop.forEachRow { o in
        let d = dst + o.0, s = src + o.1
        if sd == 1 && ss == 1 {
            d.update(from: s, count: n)
        } else {
            for i in 0..<n { d[i * sd] = s[i * ss] }
        }
    }
}

// MARK: Elementwise

enum UnaryKind: Equatable {
    case relu
    case clip(Float, Float)
    case sigmoid
    case hardSigmoid(alpha: Float, beta: Float)
    case hardSwish
    case copy
}


/// Applies `kind` to `count` floats (`dst` may equal `src`).
func applyUnary(_ kind: UnaryKind, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, count: Int) {
    func run(_ body: (Range<Int>) -> Void) {
        if count < 65_536 { body(0..<count) } else { WorkerPool.shared.parallelRanges(count, minimumChunk: 16_384, body) }
    }
    switch kind {
    case .copy:
        if UnsafePointer(dst) != src { run { r in (dst + r.lowerBound).update(from: src + r.lowerBound, count: r.count) } }
    case .relu: Kernels.activate(.relu, src: src, dst: dst, count: count)
    case let .clip(lo, hi): run { r in for i in r { dst[i] = min(max(src[i], lo), hi) } }
    case .sigmoid: Kernels.activate(.sigmoid, src: src, dst: dst, count: count)
    case let .hardSigmoid(a, b): run { r in for i in r { dst[i] = min(max(a * src[i] + b, 0), 1) } }
    case .hardSwish: Kernels.activate(.hardSwish, src: src, dst: dst, count: count)
    }
}

enum BinaryKind { case add, sub, mul, div }

protocol BinaryFunction { static func apply(_ a: Float, _ b: Float) -> Float }
enum AddF: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a + b } }
enum SubF: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a - b } }
enum MulF: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a * b } }
enum DivF: BinaryFunction { @inline(__always) static func apply(_ a: Float, _ b: Float) -> Float { a / b } }

@inline(__always)
func binaryRow<F: BinaryFunction>(_: F.Type, _ o: UnsafeMutablePointer<Float>, _ so: Int, _ a: UnsafePointer<Float>, _ sa: Int,
                                  _ b: UnsafePointer<Float>, _ sb: Int, _ n: Int) {
    if so == 1 && sa == 1 && sb == 1 {
        for i in 0..<n { o[i] = F.apply(a[i], b[i]) }
    } else if so == 1 && sa == 1 && sb == 0 {
        let y = b[0]
        for i in 0..<n { o[i] = F.apply(a[i], y) }
    } else if so == 1 && sa == 0 && sb == 1 {
        let x = a[0]
        for i in 0..<n { o[i] = F.apply(x, b[i]) }
    } else {
        for i in 0..<n { o[i * so] = F.apply(a[i * sa], b[i * sb]) }
    }
}

/// `out = a ∘ b` over physical output dims with per-operand strides (0 where broadcast).
func applyBinary(_ kind: BinaryKind, dims: [Int], out: UnsafeMutablePointer<Float>, outStrides: [Int],
                 a: UnsafePointer<Float>, aStrides: [Int], b: UnsafePointer<Float>, bStrides: [Int]) {
    let loop = StridedLoop(dims: dims, strides: [outStrides, aStrides, bStrides])
    let n = loop.inner, so = loop.innerStrides[0], sa = loop.innerStrides[1], sb = loop.innerStrides[2]
    func go<F: BinaryFunction>(_ f: F.Type) {
        loop.forEachRow { o in binaryRow(f, out + o.0, so, a + o.1, sa, b + o.2, sb, n) }
    }
    switch kind {
    case .add: go(AddF.self)
    case .sub: go(SubF.self)
    case .mul: go(MulF.self)
    case .div: go(DivF.self)
    }
}

/// Per-channel `y = x·scale[c] + shift[c]` on NHWC (`channelStride == 1`, inner = C) or NCHW-ordered data
/// (`inner` = H·W). `outer` counts blocks of `channels·inner`.
func applyChannelAffine(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, scale: UnsafePointer<Float>,
                        shift: UnsafePointer<Float>, outer: Int, channels: Int, inner: Int, channelsLast: Bool) {
    WorkerPool.shared.parallelRanges(outer, minimumChunk: max(1, 16_384 / max(1, channels * inner))) { r in
        for o in r {
            if channelsLast {
                for p in 0..<inner {
                    let base = (o * inner + p) * channels
                    for c in 0..<channels { dst[base + c] = src[base + c] * scale[c] + shift[c] }
                }
            } else {
                for c in 0..<channels {
                    let base = (o * channels + c) * inner, s = scale[c], t = shift[c]
                    for i in 0..<inner { dst[base + i] = src[base + i] * s + t }
                }
            }
        }
    }
}

// MARK: Pooling (NHWC)

struct PoolGeometry {
    var batch, inputHeight, inputWidth, channels: Int
    var kernelH, kernelW, strideH, strideW, dilationH, dilationW: Int
    var padTop, padLeft, padBottom, padRight: Int
    var outputHeight, outputWidth: Int
}

extension PoolGeometry {
    /// The kernels' description of this window (channels as both input and output).
    var convGeometry: ConvGeometry {
        ConvGeometry(batch: batch, inputHeight: inputHeight, inputWidth: inputWidth, inputChannels: channels,
                     outputChannels: channels, kernelHeight: kernelH, kernelWidth: kernelW, strideH: strideH, strideW: strideW,
                     dilationH: dilationH, dilationW: dilationW, padTop: padTop, padLeft: padLeft, padBottom: padBottom,
                     padRight: padRight)
    }
}

/// Max pooling, NHWC `[N, IH, IW, C]` → `[N, OH, OW, C]`; padded taps are ignored.
func maxPoolNHWC(_ g: PoolGeometry, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    PoolKernels.maxPool2d(input: src, output: dst, geometry: g.convGeometry, outputHeight: g.outputHeight, outputWidth: g.outputWidth)
}

/// Average pooling, NHWC. With `countIncludePad` the divisor counts padded taps inside `[−pad, in + pad)`
/// (PyTorch/ONNX Runtime), otherwise only taps inside the image.
func averagePoolNHWC(_ g: PoolGeometry, countIncludePad: Bool, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    PoolKernels.avgPool2d(input: src, output: dst, geometry: g.convGeometry, outputHeight: g.outputHeight,
                          outputWidth: g.outputWidth, countIncludePad: countIncludePad)
}

/// `[N, pixels, C]` → `[N, C]`, the mean over pixels.
func globalAveragePoolNHWC(batch: Int, pixels: Int, channels c: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    PoolKernels.globalAveragePool(input: src, output: dst, batch: batch, height: pixels, width: 1, channels: c)
}

/// PyTorch's channel shuffle on NHWC: output channel `j·groups + i` is input channel `i·(C/groups) + j`.
func channelShuffleNHWC(positions: Int, channels: Int, groups: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    let per = channels / groups
    WorkerPool.shared.parallelRanges(positions, minimumChunk: max(1, 8192 / max(1, channels))) { r in
        for p in r {
            let s = src + p * channels, d = dst + p * channels
            for i in 0..<groups { for j in 0..<per { d[j * groups + i] = s[i * per + j] } }
        }
    }
}

/// Softmax over the middle dimension of `[outer, axis, inner]`.
func softmax(outer: Int, axis: Int, inner: Int, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>) {
    for o in 0..<outer {
        for i in 0..<inner {
            let s = src + o * axis * inner + i, d = dst + o * axis * inner + i
            var m = -Float.infinity
            for a in 0..<axis { m = max(m, s[a * inner]) }
            var sum: Float = 0
            for a in 0..<axis { let e = Foundation.exp(s[a * inner] - m); d[a * inner] = e; sum += e }
            let inv = 1 / sum
            for a in 0..<axis { d[a * inner] *= inv }
        }
    }
}
