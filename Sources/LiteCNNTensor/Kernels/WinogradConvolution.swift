import CLiteCNNKernels

/// A dense 3×3, stride-1 convolution run with Winograd F(4×4, 3×3), weights transformed and packed once.
///
/// Input `[batch, height, width, inputChannels]` and output `[batch, outputHeight, outputWidth, outputChannels]` are
/// NHWC with `outputHeight = height + padTop + padBottom − 2`, `outputWidth = width + padLeft + padRight − 2`; the
/// source weights are OIHW `[outputChannels, inputChannels, 3, 3]`. Each 4×4 output tile costs 36 multiply-adds per
/// (input, output) channel pair instead of 144, run as 36 packed GEMMs over blocks of tiles split across
/// `WorkerPool.shared`; bias, an optional residual and the activation are fused into the output transform.
///
/// Accuracy: the F(4, 3) transforms amplify float rounding; on ResNet-18's 3×3 layers (He-scaled weights, unit
/// inputs) the worst error measured ~6e-6 of max|output| (im2col: ~1e-7). Tests bound it at 1e-3 · max(1, max|output|). Batch-1 layers at 7×7 and below gain little or lose
/// (4 tiles, 36 transformed weight matrices to stream): `isProfitable` encodes that.
public final class WinogradConvolution: @unchecked Sendable {
    public let inputChannels: Int
    public let outputChannels: Int
    public let padTop: Int, padLeft: Int, padBottom: Int, padRight: Int
    public let activation: FusedActivation
    private let packed: UnsafeMutablePointer<Float>
    private let bias: [Float]?

    /// Whether `geometry` is a convolution this kernel computes (3×3, stride 1, dilation 1, one group).
    public static func supports(_ g: ConvGeometry) -> Bool {
        g.kernelHeight == 3 && g.kernelWidth == 3 && g.strideH == 1 && g.strideW == 1 && g.dilationH == 1
            && g.dilationW == 1 && g.groups == 1
    }

    /// A heuristic: Winograd beats im2col + GEMM when there are enough tiles to amortize the transformed weights
    /// (36·ic·oc floats) and enough channels for the GEMMs to dominate the transforms.
    ///
    /// Transformed weights are 4× the layer's own, so above `largeWeightBytes` (16 MiB: 512 → 512 channels is
    /// 36 MiB) Winograd must pay off within one image (16 tiles, a 13×13 map or more), not only through a batch:
    /// ResNet-18's 7×7 layer 4 at batch 8 ran in 14–15 ms per layer in Winograd against 22–26 ms in im2col + GEMM
    /// (2 threads), but Winograd held 85 MB more weights: peak resident memory was 298–321 MB against ONNX Runtime's
    /// 254–257 MB, and is 192–194 MB without it, while the whole network stays faster than ONNX Runtime's.
    public static func isProfitable(_ g: ConvGeometry) -> Bool {
        guard supports(g) else { return false }
        let tilesPerImage = ((g.outputHeight + 3) / 4) * ((g.outputWidth + 3) / 4)
        guard g.inputChannels >= 32 && g.outputChannels >= 16 && g.batch * tilesPerImage >= 16 else { return false }
        let transformedBytes = 36 * g.inputChannels * g.outputChannels * MemoryLayout<Float>.stride
        return transformedBytes <= largeWeightBytes || tilesPerImage >= 16
    }

    /// Transformed-weight size above which Winograd needs 16 tiles per image (see `isProfitable`).
    public static let largeWeightBytes = 16 << 20

    /// - Parameters:
    ///   - weights: OIHW `[outputChannels, inputChannels, 3, 3]`, read once.
    ///   - bias: `outputChannels` values, or nil.
    ///   - hugePages: advise transparent huge pages for the transformed weights (as in `PackedConvolution`).
    public init(weights: UnsafePointer<Float>, bias: UnsafePointer<Float>?, inputChannels: Int, outputChannels: Int,
                padTop: Int = 1, padLeft: Int = 1, padBottom: Int = 1, padRight: Int = 1,
                activation: FusedActivation = .none, hugePages: Bool = true) {
        precondition(inputChannels >= 1 && outputChannels >= 1, "WinogradConvolution: channels \(inputChannels)→\(outputChannels)")
        precondition(padTop >= 0 && padLeft >= 0 && padBottom >= 0 && padRight >= 0, "WinogradConvolution: negative padding")
        self.inputChannels = inputChannels
        self.outputChannels = outputChannels
        self.padTop = padTop; self.padLeft = padLeft; self.padBottom = padBottom; self.padRight = padRight
        self.activation = activation
        self.bias = bias.map { Array(UnsafeBufferPointer(start: $0, count: outputChannels)) }
        let count = Int(lcnn_winograd_packed_count(Int64(inputChannels), Int64(outputChannels)))
        packed = allocateCacheAligned(floats: count, hugePages: hugePages)
        lcnn_winograd_pack_weights(Int64(inputChannels), Int64(outputChannels), weights, packed)
    }

    deinit { deallocateCacheAligned(packed) }

    /// The geometry of one call.
    public func geometry(batch: Int, height: Int, width: Int) -> ConvGeometry {
        ConvGeometry(batch: batch, inputHeight: height, inputWidth: width, inputChannels: inputChannels,
                     outputChannels: outputChannels, kernelHeight: 3, kernelWidth: 3,
                     padTop: padTop, padLeft: padLeft, padBottom: padBottom, padRight: padRight)
    }

    /// `output = activation(conv(input) + bias + residual)`, overwritten. `input` is `[batch, height, width,
    /// inputChannels]`; `output` and `residual` (optional, not aliasing `output`) are `[batch, outputHeight,
    /// outputWidth, outputChannels]` (see the type's documentation).
    public func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int, height: Int,
                        width: Int, residual: UnsafePointer<Float>? = nil) {
        precondition(batch >= 0 && height >= 0 && width >= 0, "WinogradConvolution: negative size")
        let g = geometry(batch: batch, height: height, width: width)
        if batch == 0 || g.outputHeight <= 0 || g.outputWidth <= 0 { return }
        let tiles = batch * ((g.outputHeight + 3) / 4) * ((g.outputWidth + 3) / 4)
        let cg = CGeometry(g)
        let pool = WorkerPool.shared
        let threads = pool.threadCount
        // Blocks of tiles: each block streams all 36 transformed weight matrices once, so blocks stay as large as
        // possible (one per thread for small layers, two per thread once that leaves ≥ 24 tiles each, ≤ 96 tiles).
        let perThread = (tiles + threads - 1) / threads
        let perBlock = max(1, min(96, perThread >= 48 ? (perThread + 1) / 2 : perThread))
        let blocks = (tiles + perBlock - 1) / perBlock
        let act = activation.rawValue
        let packed = self.packed
        let oc = outputChannels
        // Few tiles (small images, batch 1): split the output channels instead, in multiples of the 16-wide panels,
        // so each thread streams only its share of the transformed weights.
        let channelParts = perThread < 16 && threads > 1 ? min(threads, oc / 16) : 1
        func run(_ biasPointer: UnsafePointer<Float>?) {
            if channelParts > 1 {
                let panels = (oc + 15) / 16
                pool.parallelFor(channelParts) { p in
                    let lo = panels * p / channelParts * 16, hi = min(oc, panels * (p + 1) / channelParts * 16)
                    if lo < hi {
                        lcnn_winograd_forward_tiles_channels(cg.pointer, input, packed, biasPointer, residual, act, output,
                                                             0, Int64(tiles), Int64(lo), Int64(hi - lo))
                    }
                }
                return
            }
            pool.parallelFor(blocks) { b in
                let t0 = b * perBlock, count = min(perBlock, tiles - t0)
                lcnn_winograd_forward_tiles(cg.pointer, input, packed, biasPointer, residual, act, output,
                                            Int64(t0), Int64(count))
            }
        }
        if let bias { bias.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
    }
}
