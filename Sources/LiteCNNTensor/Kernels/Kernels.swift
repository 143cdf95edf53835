import CLiteCNNKernels
import Foundation

/// An activation applied in a kernel's epilogue, while the output is still in registers.
public enum FusedActivation: Int32, Sendable {
    case none = 0
    /// `max(x, 0)`
    case relu = 1
    /// `min(max(x, 0), 6)`
    case relu6 = 2
    /// `x·min(max(x + 3, 0), 6)/6` (MobileNetV3)
    case hardSwish = 3
    /// `1/(1 + e^−x)` (vectorized exp, relative error ~1e-6)
    case sigmoid = 4
    /// `min(max(x/6 + 1/2, 0), 1)` (PyTorch's Hardsigmoid = ONNX HardSigmoid with alpha 1/6, beta 0.5)
    case hardSigmoid = 5
    /// `x/(1 + e^−x)` (SiLU / Swish)
    case silu = 6

    /// The scalar definition the kernels follow.
    public func apply(_ x: Float) -> Float {
        switch self {
        case .none: return x
        case .relu: return max(x, 0)
        case .relu6: return min(max(x, 0), 6)
        case .hardSwish: return x * min(max(x + 3, 0), 6) / 6
        case .sigmoid: return 1 / (1 + exp(-x))
        case .hardSigmoid: return min(max(x / 6 + 0.5, 0), 1)
        case .silu: return x / (1 + exp(-x))
        }
    }
}

/// The fast kernels the layers call. Same contracts as `ReferenceKernels` (which defines them), optimized for
/// AVX-512 / AVX2 via `CLiteCNNKernels`, split over `WorkerPool.shared`.
///
/// Dense and grouped convolutions run as GEMM over NHWC patches (pointwise ones read the input in place, others
/// through bounded im2col tiles); depthwise convolutions (`groups == inputChannels`, any channel multiplier) run a
/// direct kernel vectorized over channels. The instruction set is chosen at run time (`lcnn_isa_level`).
public enum Kernels {
    /// `output = conv(input, weight) + bias`; NHWC input/output, OIHW weights. `output` is overwritten.
    public static func conv2dForward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        conv2dForward(input: input, weight: weight, bias: bias, output: output, geometry: geometry, activation: .none)
    }

    /// `output = activation(conv(input, weight) + bias)` with the activation fused into the kernel.
    public static func conv2dForward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, geometry: ConvGeometry,
                                     activation: FusedActivation) {
        let packed = PackedConvolution(weight: weight, bias: bias, geometry: geometry)
        packed.forward(input: input, output: output, geometry: geometry, activation: activation)
    }

    /// `gradInput = ∂L/∂input` (overwritten).
    public static func conv2dBackwardInput(gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                           gradInput: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        if geometry.isDepthwise {
            DepthwiseConvolution.backwardInput(gradOutput: gradOutput, weight: weight, gradInput: gradInput, geometry: geometry)
        } else {
            GemmConvolution.backwardInput(gradOutput: gradOutput, weight: weight, gradInput: gradInput, geometry: geometry)
        }
    }

    /// `gradWeight += ∂L/∂weight` (accumulates).
    public static func conv2dBackwardWeight(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                            gradWeight: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        if geometry.isDepthwise {
            DepthwiseConvolution.backwardWeight(input: input, gradOutput: gradOutput, gradWeight: gradWeight, geometry: geometry)
        } else {
            GemmConvolution.backwardWeight(input: input, gradOutput: gradOutput, gradWeight: gradWeight, geometry: geometry)
        }
    }

    /// `C = alpha·op(A)·op(B) + beta·C`, row-major. With `beta == 0`, C is not read.
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
             beta: beta, c: c, ldc: ldc, bias: nil, activation: .none)
    }

    /// `C = activation(alpha·op(A)·op(B) + beta·C + bias)` with `bias` (length n) added to every row.
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int,
                            bias: UnsafePointer<Float>?, activation: FusedActivation) {
        precondition(m >= 0 && n >= 0 && k >= 0, "gemm: negative size m=\(m) n=\(n) k=\(k)")
        precondition(lda >= max(1, transA ? m : k) && ldb >= max(1, transB ? k : n) && ldc >= max(1, n),
                     "gemm: leading dimensions lda=\(lda) ldb=\(ldb) ldc=\(ldc) too small for m=\(m) n=\(n) k=\(k)")
        if m == 0 || n == 0 { return }
        let act = activation.rawValue
        let threads = WorkerPool.shared.threadCount
        func run(_ m0: Int, _ m1: Int, _ n0: Int, _ n1: Int) {
            let aStart = transA ? a + m0 : a + m0 * lda
            let bStart = transB ? b + n0 * ldb : b + n0
            lcnn_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int64(m1 - m0), Int64(n1 - n0), Int64(k), alpha,
                       aStart, Int64(lda), bStart, Int64(ldb), beta, c + m0 * ldc + n0, Int64(ldc),
                       bias.map { $0 + n0 }, act)
        }
        if threads <= 1 || m * n * k < 1 << 17 {
            run(0, m, 0, n)
            return
        }
        if (m >= n && m >= 12) || n < 64 {
            // Rows in multiples of the 6-row micro-tile.
            let tiles = (m + 5) / 6, parts = min(threads, tiles)
            WorkerPool.shared.parallelFor(parts) { p in
                let lo = min(m, tiles * p / parts * 6), hi = min(m, tiles * (p + 1) / parts * 6)
                if lo < hi { run(lo, hi, 0, n) }
            }
        } else {
            // Columns in multiples of the 32-wide micro-tile.
            let tiles = (n + 31) / 32, parts = min(threads, tiles)
            WorkerPool.shared.parallelFor(parts) { p in
                let lo = min(n, tiles * p / parts * 32), hi = min(n, tiles * (p + 1) / parts * 32)
                if lo < hi { run(0, m, lo, hi) }
            }
        }
    }

    /// The instruction-set level the kernels dispatch to: 0 portable C, 1 AVX2+FMA, 2 AVX-512.
    public static var instructionSetLevel: Int { Int(lcnn_isa_level()) }

    /// `dst[i] = activation(src[i])` for `i < count`, vectorized (`dst` may equal `src`); split over the pool above
    /// 64 K elements.
    public static func activate(_ activation: FusedActivation, src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>,
                                count: Int) {
        let act = activation.rawValue
        if count < 65_536 {
            lcnn_activation(src, dst, Int64(count), act)
            return
        }
        WorkerPool.shared.parallelRanges(count, minimumChunk: 16_384) { r in
            lcnn_activation(src + r.lowerBound, dst + r.lowerBound, Int64(r.count), act)
        }
    }

    /// Matrix transpose `dst[j · dstRowStride + i] = src[i · srcRowStride + j]` for `i < rows`, `j < cols` (`dst` must
    /// not overlap `src`), in 8×8 register tiles: one image's NCHW → NHWC is `rows = C`, `cols = H·W`. Single-threaded.
    public static func transpose(src: UnsafePointer<Float>, rows: Int, cols: Int, srcRowStride: Int,
                                 dst: UnsafeMutablePointer<Float>, dstRowStride: Int) {
        lcnn_transpose_2d(src, Int64(rows), Int64(cols), Int64(srcRowStride), dst, Int64(dstRowStride))
    }

    /// `dst[i] = activation(a[i] + b[i])` for `i < count`, vectorized (`dst` may equal `a` or `b`); split over the
    /// pool above 64 K elements. A residual connection followed by its activation.
    public static func addActivate(_ activation: FusedActivation, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                   dst: UnsafeMutablePointer<Float>, count: Int) {
        let act = activation.rawValue
        if count < 65_536 {
            lcnn_add_activation(a, b, dst, Int64(count), act)
            return
        }
        WorkerPool.shared.parallelRanges(count, minimumChunk: 16_384) { r in
            lcnn_add_activation(a + r.lowerBound, b + r.lowerBound, dst + r.lowerBound, Int64(r.count), act)
        }
    }

    /// Squeeze-and-excitation scaling on NHWC: `output[n, p, c] = input[n, p, c] · scale[n, c]` for `batch` images of
    /// `positions` pixels (`output` may equal `input`).
    public static func scaleChannels(input: UnsafePointer<Float>, scale: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
                                     batch: Int, positions: Int, channels: Int) {
        let rowsPerChunk = max(1, 16_384 / max(1, channels))
        let chunksPerImage = (positions + rowsPerChunk - 1) / rowsPerChunk
        WorkerPool.shared.parallelRanges(batch * chunksPerImage, minimumChunk: 2) { r in
            for t in r {
                let n = t / chunksPerImage, p0 = (t % chunksPerImage) * rowsPerChunk
                let rows = min(rowsPerChunk, positions - p0), offset = (n * positions + p0) * channels
                lcnn_scale_channels(input + offset, scale + n * channels, output + offset, Int64(rows), Int64(channels))
            }
        }
    }

    /// Caps the instruction-set level (to exercise the fallbacks); returns the level now in force.
    @discardableResult
    public static func limitInstructionSet(to level: Int) -> Int { Int(lcnn_set_isa_level(Int32(level))) }
}

extension ConvGeometry {
    /// The C kernels' view of this geometry.
    var cGeometry: lcnn_conv_geom {
        lcnn_conv_geom(batch: Int64(batch), ih: Int64(inputHeight), iw: Int64(inputWidth), ic: Int64(inputChannels),
                       oc: Int64(outputChannels), kh: Int64(kernelHeight), kw: Int64(kernelWidth),
                       sh: Int64(strideH), sw: Int64(strideW), dh: Int64(dilationH), dw: Int64(dilationW),
                       pt: Int64(padTop), pl: Int64(padLeft), oh: Int64(outputHeight), ow: Int64(outputWidth),
                       groups: Int64(groups))
    }
}

/// A C geometry at a stable address, shared read-only by the threads of one kernel call.
final class CGeometry: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<lcnn_conv_geom>

    init(_ g: ConvGeometry) {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: g.cGeometry)
    }

    init(raw: lcnn_conv_geom) {
        pointer = .allocate(capacity: 1)
        pointer.initialize(to: raw)
    }

    deinit { pointer.deallocate() }
}

/// Uninitialized memory for `count` floats aligned to a 64-byte cache line, for buffers the kernels stream through
/// (packed weights, activation arenas). `allocate(capacity:)` guarantees only 16 bytes, and where a large block lands
/// depends on the allocator's history; a buffer 16 bytes off a line splits every other 32-byte load (and every
/// 64-byte AVX-512 load) across two cache lines. Free with `deallocateCacheAligned(_:)`, never `deallocate()`.
///
/// Blocks of 2 MiB and more are mapped from the system (`lcnn_aligned_alloc_pages`): 2 MiB-aligned and unmapped when
/// freed, so a freed plan leaves the resident set at once instead of staying in malloc's heap. With `hugePages` they
/// are advised for transparent huge pages: a layer streaming weights or activations walks 512 times fewer TLB
/// entries, and a first touch of memory freed moments ago costs one fault per 2 MiB. A first touch of memory the VM's
/// host has taken back costs several times more than on 4 KiB pages, though (see `packedWeightsUseHugePages`).
public func allocateCacheAligned(floats count: Int, hugePages: Bool = true) -> UnsafeMutablePointer<Float> {
    let bytes = max(1, count) * MemoryLayout<Float>.stride
    guard let raw = lcnn_aligned_alloc_pages(bytes, hugePages ? 1 : 0) else { fatalError("out of memory: \(bytes) bytes for a kernel buffer") }
    return raw.bindMemory(to: Float.self, capacity: max(1, count))
}

/// Advises transparent huge pages for the whole 2 MiB pages inside `buffer` (if any) when it has not been touched
/// yet: a fresh allocation about to be filled, such as decoded weights. See `allocateCacheAligned(floats:)` for why;
/// this is the same for memory that came from `malloc` unaligned.
/// Whether packed weights are advised for transparent huge pages: only with `LITECNN_HUGE_PAGES=1` in the environment
/// (`0` turns the advice off for every buffer; by default activation arenas get it and weights do not).
///
/// Weights are written once, at planning, and that first touch is most of the time to first inference. On a VM whose
/// host reclaims free guest memory (virtio-balloon free page reporting), a huge page comes from the large free blocks
/// the host has taken back, and touching it first ran at 0.5–1 GB/s on the development VM, against about 3 GB/s for
/// 4 KiB pages, which come from small free blocks the host still backs. ResNet-18 (45 MB of packed weights) started in
/// 105–190 ms after a few idle seconds with huge weights, 75–80 ms without; its median at one thread was 2.5–4 %
/// lower with them, the other models' within noise. A long-running server can opt in.
public let packedWeightsUseHugePages = ProcessInfo.processInfo.environment["LITECNN_HUGE_PAGES"] == "1"

public func adviseHugePages(_ buffer: UnsafeMutableRawBufferPointer) {
    guard buffer.count >= 2 << 20, let base = buffer.baseAddress else { return }
    _ = lcnn_advise_huge_pages(base, buffer.count)
}

/// Frees a buffer of `allocateCacheAligned(floats:)`.
public func deallocateCacheAligned(_ pointer: UnsafeMutablePointer<Float>) {
    lcnn_aligned_free(pointer)
}
