import CLiteCNNKernels

/// NHWC pooling kernels, vectorized over channels and split over `WorkerPool.shared` by output rows.
///
/// A pooling window is described by a `ConvGeometry` with `inputChannels == outputChannels == channels` (groups and
/// weights are ignored): kernel, stride, dilation and the four paddings. Input `[batch, inputHeight, inputWidth, C]`,
/// output `[batch, outputHeight, outputWidth, C]` where each output size follows `outputSize(…)` (floor or ceil mode,
/// PyTorch/ONNX rule).
public enum PoolKernels {
    /// `⌊(input + padBegin + padEnd − dilation·(kernel − 1) − 1) / stride⌋ + 1` (⌈⌉ in ceil mode, where a last window
    /// starting beyond `input + padBegin` is dropped, as in PyTorch and ONNX). 0 when the window does not fit.
    public static func outputSize(input: Int, kernel: Int, stride: Int, dilation: Int = 1, padBegin: Int, padEnd: Int,
                                  ceilMode: Bool) -> Int {
        let span = input + padBegin + padEnd - dilation * (kernel - 1) - 1
        if span < 0 { return 0 }
        var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
        if ceilMode && (out - 1) * stride >= input + padBegin { out -= 1 }
        return out
    }

    /// `[batch, outputHeight, outputWidth, channels]` of a pooling.
    public static func outputShape(_ g: ConvGeometry, ceilMode: Bool = false) -> [Int] {
        let (oh, ow) = outputHW(g, ceilMode)
        return [g.batch, oh, ow, g.inputChannels]
    }

    /// Max over each window's pixels inside the image.
    public static func maxPool2d(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                                 ceilMode: Bool = false) {
        run(g, ceilMode) { cg, r in lcnn_maxpool_nhwc_rows(cg, input, output, Int64(r.lowerBound), Int64(r.upperBound)) }
    }

    /// Mean over each window: divided by the taps inside the image, or with `countIncludePad` by the taps inside the
    /// padded image (PyTorch `count_include_pad`, ONNX `count_include_pad`).
    public static func avgPool2d(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                                 ceilMode: Bool = false, countIncludePad: Bool) {
        let ph = Int64(g.inputHeight + g.padTop + g.padBottom), pw = Int64(g.inputWidth + g.padLeft + g.padRight)
        run(g, ceilMode) { cg, r in
            lcnn_avgpool_nhwc_rows(cg, input, output, Int64(r.lowerBound), Int64(r.upperBound), ph, pw, countIncludePad ? 1 : 0)
        }
    }

    /// `[batch, height, width, channels]` → `[batch, channels]`, the mean over each image's pixels.
    public static func globalAveragePool(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, batch: Int,
                                         height: Int, width: Int, channels: Int) {
        precondition(batch >= 0 && height >= 0 && width >= 0 && channels >= 0, "globalAveragePool: negative size")
        let hw = height * width
        WorkerPool.shared.parallelRanges(batch, minimumChunk: max(1, 65_536 / max(1, hw * channels))) { r in
            lcnn_global_avgpool_nhwc(input + r.lowerBound * hw * channels, Int64(r.count), Int64(hw), Int64(channels),
                                     output + r.lowerBound * channels)
        }
    }

    private static func outputHW(_ g: ConvGeometry, _ ceilMode: Bool) -> (Int, Int) {
        (outputSize(input: g.inputHeight, kernel: g.kernelHeight, stride: g.strideH, dilation: g.dilationH,
                    padBegin: g.padTop, padEnd: g.padBottom, ceilMode: ceilMode),
         outputSize(input: g.inputWidth, kernel: g.kernelWidth, stride: g.strideW, dilation: g.dilationW,
                    padBegin: g.padLeft, padEnd: g.padRight, ceilMode: ceilMode))
    }

    /// Max pooling with the output size given (ONNX `auto_pad` SAME_* sizes, or any size the caller derived):
    /// output `[batch, outputHeight, outputWidth, C]`; windows are clipped to the image.
    public static func maxPool2d(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                                 outputHeight: Int, outputWidth: Int) {
        run(g, outputHeight, outputWidth) { cg, r in lcnn_maxpool_nhwc_rows(cg, input, output, Int64(r.lowerBound), Int64(r.upperBound)) }
    }

    /// Average pooling with the output size given (see `maxPool2d(input:output:geometry:outputHeight:outputWidth:)`).
    public static func avgPool2d(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry,
                                 outputHeight: Int, outputWidth: Int, countIncludePad: Bool) {
        let ph = Int64(g.inputHeight + g.padTop + g.padBottom), pw = Int64(g.inputWidth + g.padLeft + g.padRight)
        run(g, outputHeight, outputWidth) { cg, r in
            lcnn_avgpool_nhwc_rows(cg, input, output, Int64(r.lowerBound), Int64(r.upperBound), ph, pw, countIncludePad ? 1 : 0)
        }
    }

    private static func run(_ g: ConvGeometry, _ ceilMode: Bool,
                            _ body: (UnsafePointer<lcnn_conv_geom>, Range<Int>) -> Void) {
        let (oh, ow) = outputHW(g, ceilMode)
        run(g, oh, ow, body)
    }

    private static func run(_ g: ConvGeometry, _ oh: Int, _ ow: Int,
                            _ body: (UnsafePointer<lcnn_conv_geom>, Range<Int>) -> Void) {
        precondition(g.inputChannels == g.outputChannels, "pooling: inputChannels \(g.inputChannels) ≠ outputChannels \(g.outputChannels)")
        if g.batch <= 0 || oh <= 0 || ow <= 0 || g.inputChannels == 0 { return }
        var raw = g.cGeometry
        raw.oh = Int64(oh)
        raw.ow = Int64(ow)
        let cg = CGeometry(raw: raw)
        let rows = g.batch * oh
        WorkerPool.shared.parallelRanges(rows, minimumChunk: max(1, 16_384 / max(1, ow * g.inputChannels))) { r in
            body(cg.pointer, r)
        }
    }
}

extension PoolKernels {
    /// NHWC channel gather over `pixels` positions: `dst[p · dstStride + k] = src[p · srcStride + map[k]]` for
    /// `k < map.count` — a channel shuffle, a channel slice or a Concat's part, in one pass (`dst` must not overlap
    /// `src`). Runs single-threaded; callers split the pixels.
    public static func gatherChannels(src: UnsafePointer<Float>, srcStride: Int, dst: UnsafeMutablePointer<Float>,
                                      dstStride: Int, pixels: Int, map: UnsafePointer<Int32>, count: Int) {
        lcnn_gather_channels_nhwc(src, Int64(srcStride), dst, Int64(dstStride), Int64(pixels), map, Int64(count))
    }
}
