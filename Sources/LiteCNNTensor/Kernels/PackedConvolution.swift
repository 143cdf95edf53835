import CLiteCNNKernels

/// A convolution whose weights are packed once for the fast kernels, to run many times (inference).
///
/// Input and output are NHWC, the source weights OIHW `[outputChannels, inputChannels / groups, kernelHeight,
/// kernelWidth]` as in `ConvGeometry`. Dense and grouped convolutions keep the weights of each group packed as the
/// right-hand GEMM operand `[kh·kw·icg, ocg]` in NHWC patch order (ky, kx, c); depthwise convolutions keep them
/// tap-major `[kh·kw][outputChannels]`; convolutions with a small reduction depth (`usesDirectKernel`) keep them as
/// `[kh·kw·ic][round8(outputChannels)]` for the direct kernel. Only the batch and the spatial size may change between
/// `forward` calls.
public final class PackedConvolution: @unchecked Sendable {
    /// Whether `g` runs on the direct kernel instead of im2col + GEMM: a spatial kernel (not 1×1), one group and a
    /// reduction depth K = kh·kw·ic of at most 160, or at most 4 input channels with K ≤ 196 (stems up to 7×7). At such
    /// depths the GEMM's loop is too short to pay for copying the patches twice: on this machine's AVX-512 (one core)
    /// SqueezeNet's 3×3 expand over 16 channels at 55×55 ran in 261 µs direct against 329 µs, a 16→24 3×3 at 112×112
    /// in 492 against 890 (AVX2: 524 against 506, 854 against 1197); from K = 288 on, GEMM is as fast or faster.
    /// 1×1 convolutions have no patches to
    /// copy and always take the GEMM path, whose 6×16 tile keeps twelve accumulators busy; the direct kernel's two
    /// pixels × 32 channels ran narrow 1×1s at about half its speed (MobileNet V2/V3's 16→64 and 24→72 expansions).
    public static func usesDirectKernel(_ g: ConvGeometry) -> Bool {
        let depth = g.kernelHeight * g.kernelWidth * g.inputChannels
        return g.groups == 1 && !g.isPointwise && (depth <= 160 || (g.inputChannels <= 4 && depth <= 196))
    }

    /// Output channels reordered at a time while packing a spatial kernel's GEMM operand (a multiple of the packed
    /// panel width, 16): at most 64 · kh·kw·icg floats of temporary memory (1.2 MB for a 3×3 over 512 channels).
    static let packingSlice = 64

    /// The geometry the weights were packed for (the batch and input size of later calls may differ).
    public let packedGeometry: ConvGeometry
    private let storage: UnsafeMutablePointer<Float>
    private let storageCount: Int
    private let groupStride: Int
    private let bias: [Float]?

    /// Packs `weight` for `g`. `hugePages` advises transparent huge pages for the packed storage: right for weights
    /// packed on every call (training), where the freed pages are reused warm; an engine that packs once passes
    /// `packedWeightsUseHugePages` (see there for why that is off by default).
    public init(weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?, geometry g: ConvGeometry, hugePages: Bool = true) {
        packedGeometry = g
        self.bias = bias.map { Array(UnsafeBufferPointer(start: $0, count: g.outputChannels)) }
        let taps = g.kernelHeight * g.kernelWidth
        if Self.usesDirectKernel(g) && !g.isDepthwise {
            groupStride = 0
            let cg = CGeometry(g)
            storageCount = max(1, Int(lcnn_conv2d_direct_packed_count(cg.pointer)))
            storage = allocateCacheAligned(floats: storageCount, hugePages: hugePages)
            lcnn_conv2d_direct_pack(cg.pointer, weight, storage)
        } else if g.isDepthwise {
            groupStride = 0
            storageCount = taps * g.outputChannels
            storage = allocateCacheAligned(floats: storageCount, hugePages: hugePages)
            for oc in 0..<g.outputChannels { for t in 0..<taps { storage[t * g.outputChannels + oc] = weight[oc * taps + t] } }
        } else {
            let (icg, ocg) = (g.inputChannelsPerGroup, g.outputChannelsPerGroup)
            let k = taps * icg
            groupStride = Int(lcnn_packed_b_count(Int64(k), Int64(ocg)))
            storageCount = max(1, groupStride * g.groups)
            storage = allocateCacheAligned(floats: storageCount, hugePages: hugePages)
            if taps == 1 {
                // 1×1 weights are already in patch order ([oc, icg]).
                for group in 0..<g.groups {
                    lcnn_pack_b(1, Int64(k), Int64(ocg), weight + group * ocg * k, Int64(k), storage + group * groupStride)
                }
            } else {
                // Others are reordered to (ky, kx, c) a slice of output channels at a time: a temporary the size of the
                // weights would be fresh memory, and on a VM first touches are most of the time to first inference.
                let slice = min(ocg, Self.packingSlice)
                let reordered = UnsafeMutablePointer<Float>.allocate(capacity: slice * k)
                defer { reordered.deallocate() }
                for group in 0..<g.groups {
                    for o0 in stride(from: 0, to: ocg, by: slice) {
                        let count = min(slice, ocg - o0)
                        GemmConvolution.patchOrderWeights(weight, geometry: g, outputChannels: group * ocg + o0 ..< group * ocg + o0 + count,
                                                          into: reordered)
                        lcnn_pack_b_columns(1, Int64(k), Int64(ocg), Int64(o0), Int64(count), reordered, Int64(k),
                                            storage + group * groupStride)
                    }
                }
            }
        }
    }

    deinit { deallocateCacheAligned(storage) }

    /// `output = activation(conv(input) + bias)`, overwritten. `geometry` must match the packed one except for
    /// batch and spatial sizes.
    public func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                        activation: FusedActivation = .none) {
        forward(input: input, output: output, geometry: g, activation: activation, residual: nil)
    }

    /// `output = activation(conv(input) + bias + residual)`, overwritten, with the residual add fused into the GEMM
    /// epilogue (ONNX `Conv → Add → Relu`). `residual` is NHWC shaped like the output (or nil) and must not be
    /// `output` itself. For depthwise convolutions the residual is added in a second pass before the activation.
    public func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                        activation: FusedActivation, residual: UnsafePointer<Float>?) {
        checkGeometry(g)
        if g.batch == 0 || g.outputHeight <= 0 || g.outputWidth <= 0 { return }
        if g.isDepthwise, let residual {
            // Depthwise kernels have no residual epilogue: convolve, then add and activate in one sweep.
            forward(input: input, output: output, geometry: g, activation: .none, residual: nil)
            Kernels.addActivate(activation, a: output, b: residual, dst: output, count: g.outputShape.reduce(1, *))
            return
        }
        withBias { run(input, output, g, activation, $0, residual) }
    }

    /// Pixels `first ..< first + count` of a pointwise convolution on the calling thread: `input` points at pixel
    /// `first`'s channels (`inputChannels` floats per pixel), `output` at where its `outputChannels` go (pixels
    /// contiguous). For work that is already split over the threads, such as one band of a fused pair of layers.
    public func forwardPointwisePixels(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, count: Int,
                                       geometry g: ConvGeometry, activation: FusedActivation) {
        checkGeometry(g)
        precondition(g.isPointwise && g.groups == 1, "forwardPointwisePixels: \(g) is not a pointwise convolution")
        guard count > 0 else { return }
        let cg = CGeometry(g)
        withBias {
            lcnn_conv2d_forward_tile_ld(cg.pointer, input, storage, Int64(groupStride), $0, nil, activation.rawValue, output,
                                        Int64(g.outputChannels), 0, Int64(count))
        }
    }

    /// Output rows `rows` (numbered `n·outputHeight + oy`) of a depthwise convolution with one output channel per
    /// input channel, on the calling thread. Row `iy` of image `n` is read at `input + (n·inputHeight + iy)·rowFloats`
    /// (`rowFloats = inputWidth · channels`), but only the rows the windows of `rows` cover are read, so `input` may be
    /// placed such that just those rows lie in a buffer. Output rows go to `output` as in `forward`.
    public func forwardDepthwiseRows(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, rows: Range<Int>,
                                     geometry g: ConvGeometry, activation: FusedActivation) {
        checkGeometry(g)
        precondition(g.isDepthwise && g.outputChannels == g.inputChannels, "forwardDepthwiseRows: \(g)")
        guard !rows.isEmpty else { return }
        let cg = CGeometry(g)
        withBias {
            lcnn_depthwise_forward_rows(cg.pointer, input, storage, $0, activation.rawValue, output, Int64(rows.lowerBound),
                                        Int64(rows.upperBound))
        }
    }

    /// Runs `body` with the bias as a pointer (nil without one).
    private func withBias(_ body: (UnsafePointer<Float>?) -> Void) {
        if let bias { bias.withUnsafeBufferPointer { body($0.baseAddress!) } } else { body(nil) }
    }

    /// Traps unless `g` is the packed geometry up to batch and spatial size (a programming error, not bad input).
    private func checkGeometry(_ g: ConvGeometry) {
        var same = g
        same.batch = packedGeometry.batch
        same.inputHeight = packedGeometry.inputHeight
        same.inputWidth = packedGeometry.inputWidth
        precondition(same == packedGeometry, "PackedConvolution: packed for \(packedGeometry), called with \(g)")
    }

    /// Whether `forward(input:output:outputRowStride:…)` runs `g` without a full-size temporary: dense and grouped
    /// convolutions write their tiles straight to the strided rows (the direct kernel below AVX-512, and with dilated
    /// columns, through a one-row buffer that is still in cache). Depthwise convolutions are not supported.
    public static func supportsOutputRowStride(_ g: ConvGeometry) -> Bool { !g.isDepthwise }

    /// `activation(conv(input) + bias + residual)` written to NHWC rows of `outputRowStride ≥ outputChannels` floats:
    /// output pixel `p`, channel `c` goes to `output[p · outputRowStride + c]` (a channel slice of a wider NHWC tensor,
    /// such as a channel Concat's output at the slice's first channel); the other floats of each row are untouched.
    /// `residual` (optional) is contiguous NHWC shaped like the convolution's output. Not for depthwise geometries.
    public func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, outputRowStride: Int,
                        geometry g: ConvGeometry, activation: FusedActivation, residual: UnsafePointer<Float>?) {
        if outputRowStride == g.outputChannels {
            forward(input: input, output: output, geometry: g, activation: activation, residual: residual)
            return
        }
        precondition(outputRowStride > g.outputChannels && Self.supportsOutputRowStride(g),
                     "PackedConvolution: row stride \(outputRowStride) for \(g)")
        checkGeometry(g)
        if g.batch == 0 || g.outputHeight <= 0 || g.outputWidth <= 0 { return }
        withBias { runStrided(input, output, outputRowStride, g, activation, $0, residual) }
    }

    private func runStrided(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ ldo: Int,
                            _ g: ConvGeometry, _ activation: FusedActivation, _ bias: UnsafePointer<Float>?,
                            _ residual: UnsafePointer<Float>?) {
        let cg = CGeometry(g)
        let act = activation.rawValue
        let pool = WorkerPool.shared
        if Self.usesDirectKernel(g) {
            // The same row split as the contiguous case (`run`).
            pool.parallelRanges(g.batch * g.outputHeight, minimumChunk: max(1, 1024 / max(1, g.outputWidth))) { r in
                lcnn_conv2d_direct_rows_strided(cg.pointer, input, storage, bias, residual, act, output, Int64(ldo),
                                                Int64(r.lowerBound), Int64(r.upperBound))
            }
            return
        }
        runGemm(input, output, ldo, g, act, bias, residual)
    }

    private func run(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ g: ConvGeometry,
                     _ activation: FusedActivation, _ bias: UnsafePointer<Float>?, _ residual: UnsafePointer<Float>?) {
        let cg = CGeometry(g)
        let act = activation.rawValue
        let pool = WorkerPool.shared
        if g.isDepthwise {
            let multiplier = g.outputChannels / g.inputChannels
            let rows = g.batch * g.outputHeight
            let minimumRows = max(1, 4096 / max(1, g.outputWidth * g.outputChannels))
            if multiplier == 1 {
                pool.parallelRanges(rows, minimumChunk: minimumRows) { r in
                    lcnn_depthwise_forward_rows(cg.pointer, input, storage, bias, act, output, Int64(r.lowerBound), Int64(r.upperBound))
                }
            } else {
                let expanded = DepthwiseConvolution.expandChannels(input, geometry: g)
                defer { expanded.deallocate() }
                let eg = CGeometry(DepthwiseConvolution.expandedGeometry(g))
                pool.parallelRanges(rows, minimumChunk: minimumRows) { r in
                    lcnn_depthwise_forward_rows(eg.pointer, expanded, storage, bias, act, output, Int64(r.lowerBound), Int64(r.upperBound))
                }
            }
            return
        }
        if Self.usesDirectKernel(g) {
            let rows = g.batch * g.outputHeight
            pool.parallelRanges(rows, minimumChunk: max(1, 1024 / max(1, g.outputWidth))) { r in
                lcnn_conv2d_direct_rows(cg.pointer, input, storage, bias, residual, act, output, Int64(r.lowerBound),
                                        Int64(r.upperBound))
            }
            return
        }
        runGemm(input, output, g.outputChannels, g, act, bias, residual)
    }
}

extension PackedConvolution {
    /// The im2col/pointwise GEMM path, output rows `ldo ≥ outputChannels` floats apart: pixel tiles over the threads,
    /// and output channels too when there are too few tiles.
    fileprivate func runGemm(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ ldo: Int,
                             _ g: ConvGeometry, _ act: Int32, _ bias: UnsafePointer<Float>?,
                             _ residual: UnsafePointer<Float>?) {
        let cg = CGeometry(g)
        let pool = WorkerPool.shared
        let pixels = g.batch * g.outputHeight * g.outputWidth
        let k = g.kernelHeight * g.kernelWidth * g.inputChannelsPerGroup
        let tile = GemmConvolution.tilePixels(pixels: pixels, k: k, pointwise: g.isPointwise, threads: pool.threadCount)
        let tiles = (pixels + tile - 1) / tile
        if splitsByChannels(g, tiles: tiles) {
            runByChannels(input, output, ldo, g, act, bias, residual, tile: tile, tiles: tiles)
            return
        }
        if weightsOutweighPixels(g, pixels: pixels, k: k) {
            let threads = pool.threadCount
            if threads > 1, g.outputChannels >= 32 * threads {
                // Each thread reads only its share of the weights; all of them read the (smaller) input. An im2col
                // convolution gathers the patches once per block, so it takes one block per thread.
                runByChannels(input, output, ldo, g, act, bias, residual, tile: pixels, tiles: 1,
                              blocks: g.isPointwise ? nil : threads)
                return
            }
            if threads == 1 {
                // One tile (ResNet-18's 7×7 stage: 9.4 MB of weights, 0.9 MB of patches; MobileNet V1's 14×14
                // pointwise layers: 1 MB of weights, 196 pixels), so that the weights stream through once instead of
                // once per tile.
                lcnn_conv2d_forward_tile_ld(cg.pointer, input, storage, Int64(groupStride), bias, residual, act, output,
                                            Int64(ldo), 0, Int64(pixels))
                return
            }
        }
        let stride = groupStride
        pool.parallelFor(tiles) { t in
            let p0 = t * tile, count = min(tile, pixels - p0)
            lcnn_conv2d_forward_tile_ld(cg.pointer, input, storage, Int64(stride), bias, residual, act, output, Int64(ldo),
                                        Int64(p0), Int64(count))
        }
    }

    /// Whether a pointwise product has too few pixel tiles to keep every thread busy (a classifier at batch 1, a 7×7
    /// map), so that its output channels are split over the threads too.
    fileprivate func splitsByChannels(_ g: ConvGeometry, tiles: Int) -> Bool {
        let threads = WorkerPool.shared.threadCount
        return threads > 1 && g.isPointwise && g.groups == 1 && tiles < 2 * threads && g.outputChannels > 16
    }

    /// Whether a single-group product reads more weight than input (at least as many output channels as pixels:
    /// MobileNet's 14×14 and 7×7 stages, ResNet-18's 7×7 stage at batch 1) and its patches, if any, can be gathered
    /// whole, so that the weights should stream through once: split by output channels on several threads, one tile
    /// on one.
    fileprivate func weightsOutweighPixels(_ g: ConvGeometry, pixels: Int, k: Int) -> Bool {
        g.groups == 1 && g.outputChannels >= pixels && (g.isPointwise || pixels * k <= Self.wholeIm2colFloats)
    }

    /// The largest im2col matrix (floats) gathered whole when the weights outweigh the pixels: 2 M floats, 8 MB.
    fileprivate static let wholeIm2colFloats = 2 << 20

    /// Runs pixel tiles × channel blocks (whole 16-channel panels) over the pool.
    fileprivate func runByChannels(_ input: UnsafePointer<Float>, _ output: UnsafeMutablePointer<Float>, _ ldo: Int,
                                   _ g: ConvGeometry, _ act: Int32, _ bias: UnsafePointer<Float>?,
                                   _ residual: UnsafePointer<Float>?, tile: Int, tiles: Int, blocks wanted: Int? = nil) {
        let cg = CGeometry(g)
        let pool = WorkerPool.shared
        let pixels = g.batch * g.outputHeight * g.outputWidth, oc = g.outputChannels
        let panels = (oc + 15) / 16
        let blocks = min(panels, wanted ?? (2 * pool.threadCount + tiles - 1) / tiles)
        let weights = UnsafePointer(storage)
        pool.parallelFor(tiles * blocks) { item in
            let (t, b) = (item / blocks, item % blocks)
            let p0 = t * tile, count = min(tile, pixels - p0)
            let c0 = panels * b / blocks * 16, c1 = min(oc, panels * (b + 1) / blocks * 16)
            lcnn_conv2d_forward_pointwise_cols(cg.pointer, input, weights, bias, residual, act, output, Int64(ldo),
                                               Int64(p0), Int64(count), Int64(c0), Int64(c1 - c0))
        }
    }
}

/// Dense and grouped convolution as GEMM over NHWC patches (backward passes; the forward is `PackedConvolution`).
enum GemmConvolution {
    /// Pixels per tile: bounds an im2col tile to ~256 KB (a pointwise tile to 2,048 pixels), leaves at least two tiles
    /// per thread when possible, and makes the number of tiles a multiple of the threads, so that no thread is left
    /// with one tile more than the other (112×112 pointwise at 2 threads: 8 tiles of 1,568 pixels, not 7 of 2,048).
    static func tilePixels(pixels: Int, k: Int, pointwise: Bool, threads: Int) -> Int {
        let byMemory = pointwise ? 2048 : max(24, 65_536 / max(1, k))
        let t = max(1, threads)
        var count = max((pixels + byMemory - 1) / byMemory, 2 * t)
        count = (count + t - 1) / t * t
        let tile = max(24, (pixels + count - 1) / count)
        return (tile + 5) / 6 * 6
    }

    /// OIHW weights reordered to `[outputChannels, kh, kw, icg]` (the NHWC patch order). Free with
    /// `deallocateCacheAligned(_:)`.
    static func patchOrderedWeights(_ weight: UnsafePointer<Float>, geometry g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        let (icg, taps) = (g.inputChannelsPerGroup, g.kernelHeight * g.kernelWidth)
        let out = allocateCacheAligned(floats: g.outputChannels * taps * icg)
        patchOrderWeights(weight, geometry: g, outputChannels: 0..<g.outputChannels, into: out)
        return out
    }

    /// The OIHW weights of `outputChannels` reordered to `[outputChannels.count, kh, kw, icg]` in `out`: per output
    /// channel, the `[icg, taps]` block transposed to `[taps, icg]`.
    static func patchOrderWeights(_ weight: UnsafePointer<Float>, geometry g: ConvGeometry, outputChannels: Range<Int>,
                                  into out: UnsafeMutablePointer<Float>) {
        let (icg, taps) = (g.inputChannelsPerGroup, g.kernelHeight * g.kernelWidth)
        for (j, oc) in outputChannels.enumerated() {
            Kernels.transpose(src: weight + oc * icg * taps, rows: icg, cols: taps, srcRowStride: taps,
                              dst: out + j * taps * icg, dstRowStride: icg)
        }
    }

    static func backwardInput(gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              gradInput: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let inputCount = g.batch * g.inputHeight * g.inputWidth * g.inputChannels
        let (ocg, icg) = (g.outputChannelsPerGroup, g.inputChannelsPerGroup)
        let k = g.kernelHeight * g.kernelWidth * icg
        let pixels = g.batch * g.outputHeight * g.outputWidth
        if pixels == 0 { gradInput.update(repeating: 0, count: inputCount); return }
        let reordered = patchOrderedWeights(weight, geometry: g)
        defer { deallocateCacheAligned(reordered) }
        let stride = Int(lcnn_packed_b_count(Int64(ocg), Int64(k)))
        let packed = UnsafeMutablePointer<Float>.allocate(capacity: max(1, stride * g.groups))
        defer { packed.deallocate() }
        for group in 0..<g.groups {
            lcnn_pack_b(0, Int64(ocg), Int64(k), reordered + group * ocg * k, Int64(k), packed + group * stride)
        }
        let cg = CGeometry(g)
        let pool = WorkerPool.shared
        let tile = tilePixels(pixels: pixels, k: k, pointwise: g.isPointwise, threads: pool.threadCount)
        if g.isPointwise {
            let tiles = (pixels + tile - 1) / tile
            pool.parallelFor(tiles) { t in
                let p0 = t * tile, count = min(tile, pixels - p0)
                lcnn_conv2d_backward_input_tile(cg.pointer, gradOutput, packed, Int64(stride), gradInput, Int64(p0), Int64(count))
            }
            return
        }
        // Tiles scatter-add into overlapping input rows: parallel over images, or over private copies for batch < threads.
        let imagePixels = g.outputHeight * g.outputWidth
        func accumulate(into target: UnsafeMutablePointer<Float>, pixels range: Range<Int>) {
            var p0 = range.lowerBound
            while p0 < range.upperBound {
                let count = min(tile, range.upperBound - p0)
                lcnn_conv2d_backward_input_tile(cg.pointer, gradOutput, packed, Int64(stride), target, Int64(p0), Int64(count))
                p0 += count
            }
        }
        let threads = pool.threadCount
        if g.batch >= threads || threads == 1 || pixels <= tile {
            let imageCount = g.inputHeight * g.inputWidth * g.inputChannels
            pool.parallelFor(g.batch) { n in
                (gradInput + n * imageCount).update(repeating: 0, count: imageCount)
                accumulate(into: gradInput, pixels: (n * imagePixels)..<((n + 1) * imagePixels))
            }
        } else {
            let parts = min(threads, (pixels + tile - 1) / tile)
            let privateCopies = UnsafeMutablePointer<Float>.allocate(capacity: (parts - 1) * inputCount)
            defer { privateCopies.deallocate() }
            pool.parallelFor(parts) { p in
                let target = p == 0 ? gradInput : privateCopies + (p - 1) * inputCount
                target.update(repeating: 0, count: inputCount)
                accumulate(into: target, pixels: (pixels * p / parts)..<(pixels * (p + 1) / parts))
            }
            for p in 1..<parts {
                let source = privateCopies + (p - 1) * inputCount
                pool.parallelRanges(inputCount, minimumChunk: 16_384) { r in
                    for i in r { gradInput[i] += source[i] }
                }
            }
        }
    }

    static func backwardWeight(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                               gradWeight: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let (icg, taps) = (g.inputChannelsPerGroup, g.kernelHeight * g.kernelWidth)
        let k = taps * icg
        let pixels = g.batch * g.outputHeight * g.outputWidth
        if pixels == 0 { return }
        let weightCount = g.outputChannels * k
        let cg = CGeometry(g)
        let pool = WorkerPool.shared
        let tile = tilePixels(pixels: pixels, k: k, pointwise: g.isPointwise, threads: 1)
        let parts = min(pool.threadCount, (pixels + tile - 1) / tile)
        let accumulators = UnsafeMutablePointer<Float>.allocate(capacity: parts * weightCount)
        defer { accumulators.deallocate() }
        pool.parallelFor(parts) { p in
            let acc = accumulators + p * weightCount
            acc.update(repeating: 0, count: weightCount)
            var p0 = pixels * p / parts
            let end = pixels * (p + 1) / parts
            while p0 < end {
                let count = min(tile, end - p0)
                lcnn_conv2d_backward_weight_tile(cg.pointer, input, gradOutput, acc, Int64(p0), Int64(count))
                p0 += count
            }
        }
        for p in 1..<max(1, parts) {
            let source = accumulators + p * weightCount
            for i in 0..<weightCount { accumulators[i] += source[i] }
        }
        // (oc, ky, kx, c) → OIHW (oc, c, ky, kx)
        for oc in 0..<g.outputChannels { for c in 0..<icg { for t in 0..<taps {
            gradWeight[(oc * icg + c) * taps + t] += accumulators[(oc * taps + t) * icg + c]
        } } }
    }
}

/// Depthwise convolution (`groups == inputChannels`, `outputChannels = multiplier · inputChannels`).
///
/// With a multiplier above one, output channel `oc` reads input channel `oc / multiplier`; the kernels then run on
/// the input with each channel repeated `multiplier` times.
enum DepthwiseConvolution {
    static func expandedGeometry(_ g: ConvGeometry) -> ConvGeometry {
        var e = g
        e.inputChannels = g.outputChannels
        e.groups = g.outputChannels
        return e
    }

    /// `[N, H, W, C]` → `[N, H, W, C·multiplier]` with every channel repeated. Caller deallocates.
    static func expandChannels(_ input: UnsafePointer<Float>, geometry g: ConvGeometry) -> UnsafeMutablePointer<Float> {
        let multiplier = g.outputChannels / g.inputChannels
        let positions = g.batch * g.inputHeight * g.inputWidth
        let out = UnsafeMutablePointer<Float>.allocate(capacity: max(1, positions * g.outputChannels))
        for p in 0..<positions {
            let src = input + p * g.inputChannels, dst = out + p * g.outputChannels
            for c in 0..<g.inputChannels { for j in 0..<multiplier { dst[c * multiplier + j] = src[c] } }
        }
        return out
    }

    static func tapMajorWeights(_ weight: UnsafePointer<Float>, geometry g: ConvGeometry) -> [Float] {
        let taps = g.kernelHeight * g.kernelWidth
        var out = [Float](repeating: 0, count: taps * g.outputChannels)
        for oc in 0..<g.outputChannels { for t in 0..<taps { out[t * g.outputChannels + oc] = weight[oc * taps + t] } }
        return out
    }

    static func backwardInput(gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                              gradInput: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let multiplier = g.outputChannels / g.inputChannels
        let wt = tapMajorWeights(weight, geometry: g)
        let eg = expandedGeometry(g)
        let cg = CGeometry(eg)
        let rows = g.batch * g.inputHeight
        let positions = rows * g.inputWidth
        let minimumRows = max(1, 4096 / max(1, g.inputWidth * g.outputChannels))
        wt.withUnsafeBufferPointer { w in
            if multiplier == 1 {
                WorkerPool.shared.parallelRanges(rows, minimumChunk: minimumRows) { r in
                    lcnn_depthwise_backward_input_rows(cg.pointer, gradOutput, w.baseAddress!, gradInput,
                                                       Int64(r.lowerBound), Int64(r.upperBound))
                }
            } else {
                let expanded = UnsafeMutablePointer<Float>.allocate(capacity: max(1, positions * g.outputChannels))
                defer { expanded.deallocate() }
                WorkerPool.shared.parallelRanges(rows, minimumChunk: minimumRows) { r in
                    lcnn_depthwise_backward_input_rows(cg.pointer, gradOutput, w.baseAddress!, expanded,
                                                       Int64(r.lowerBound), Int64(r.upperBound))
                }
                for p in 0..<positions {
                    let src = expanded + p * g.outputChannels, dst = gradInput + p * g.inputChannels
                    for c in 0..<g.inputChannels {
                        var sum: Float = 0
                        for j in 0..<multiplier { sum += src[c * multiplier + j] }
                        dst[c] = sum
                    }
                }
            }
        }
    }

    static func backwardWeight(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                               gradWeight: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let multiplier = g.outputChannels / g.inputChannels
        let taps = g.kernelHeight * g.kernelWidth
        let count = taps * g.outputChannels
        let rows = g.batch * g.outputHeight
        if rows == 0 || g.outputWidth <= 0 { return }
        let cg = CGeometry(expandedGeometry(g))
        let expanded: UnsafeMutablePointer<Float>? = multiplier == 1 ? nil : expandChannels(input, geometry: g)
        defer { expanded?.deallocate() }
        let source = expanded.map { UnsafePointer($0) } ?? input
        let pool = WorkerPool.shared
        let minimumRows = max(1, 4096 / max(1, g.outputWidth * g.outputChannels))
        let parts = max(1, min(pool.threadCount, rows / minimumRows))
        let accumulators = UnsafeMutablePointer<Float>.allocate(capacity: parts * count)
        defer { accumulators.deallocate() }
        pool.parallelFor(parts) { p in
            let acc = accumulators + p * count
            acc.update(repeating: 0, count: count)
            lcnn_depthwise_backward_weight_rows(cg.pointer, source, gradOutput, acc, Int64(rows * p / parts),
                                                Int64(rows * (p + 1) / parts))
        }
        for p in 1..<parts {
            let other = accumulators + p * count
            for i in 0..<count { accumulators[i] += other[i] }
        }
        for oc in 0..<g.outputChannels { for t in 0..<taps { gradWeight[oc * taps + t] += accumulators[t * g.outputChannels + oc] } }
    }
}
