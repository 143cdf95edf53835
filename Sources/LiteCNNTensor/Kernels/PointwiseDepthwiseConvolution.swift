import CLiteCNNKernels
import Foundation

/// A pointwise convolution whose output only a depthwise convolution reads (MobileNet's `1×1 → depthwise` pairs),
/// run in bands of rows so that the pointwise output never leaves the cache.
///
/// Layout: NHWC. The pointwise convolution maps `[N, H, W, Cᵢ]` to `[N, H, W, C]`; the depthwise one (one output
/// channel per channel, any kernel, stride, padding and dilation) maps that to `[N, OH, OW, C]` with `OH`, `OW` from
/// its `ConvGeometry`. Each thread takes a contiguous range of output rows (`n·OH + oy`) and walks it a band of `band`
/// rows at a time: the band's input rows `[oy₀·s − p, (oy₁ − 1)·s − p + (k − 1)·d + 1)` (clipped to the image) are
/// computed by the pointwise convolution into the thread's band buffer — rows the previous band already holds are
/// moved to its front instead of being recomputed — and the depthwise convolution reads them there.
///
/// Why: run as two layers, the pointwise output (MobileNet V1's 112×112×64, 3.2 MB) is written to memory and read
/// back. Once the rest of the network's weights and activations have gone through the last-level cache it is no
/// longer there, and the depthwise layer, which does 9 multiply-adds per value it reads, waits on memory: 150 µs in
/// the network against 58 µs with the same input in cache, on one core of the Zen 5 VM.
public final class PointwiseDepthwiseConvolution: @unchecked Sendable {
    public let pointwise: PackedConvolution
    public let depthwise: PackedConvolution
    /// Bytes of pointwise output rows a band keeps (its buffer), by default `defaultBandBytes`.
    public let bandBytes: Int
    /// About a quarter of this machine's 1 MB L2, so that the band, the pointwise input rows streaming past and the
    /// depthwise output rows fit together.
    public static let defaultBandBytes = 256 << 10

    /// Whether `pointwise` (1×1, stride 1, unpadded, one group) feeds `depthwise` (one output channel per channel) with
    /// matching shapes.
    public static func supports(pointwise p: ConvGeometry, depthwise d: ConvGeometry) -> Bool {
        p.isPointwise && p.groups == 1 && d.isDepthwise && d.outputChannels == d.inputChannels
            && d.inputChannels == p.outputChannels && d.batch == p.batch && d.inputHeight == p.outputHeight
            && d.inputWidth == p.outputWidth
    }

    public init(pointwise: PackedConvolution, depthwise: PackedConvolution, bandBytes: Int = defaultBandBytes) {
        precondition(Self.supports(pointwise: pointwise.packedGeometry, depthwise: depthwise.packedGeometry),
                     "PointwiseDepthwiseConvolution: \(pointwise.packedGeometry) does not feed \(depthwise.packedGeometry)")
        self.pointwise = pointwise
        self.depthwise = depthwise
        self.bandBytes = bandBytes
    }

    /// Output rows per band for `d` (the depthwise geometry): as many as keep the band's input rows within
    /// `bandBytes` (at least one).
    public func bandRows(_ d: ConvGeometry) -> Int {
        let rowBytes = max(1, d.inputWidth * d.inputChannels * MemoryLayout<Float>.stride)
        let window = (d.kernelHeight - 1) * d.dilationH + 1
        let rows = max(window, bandBytes / rowBytes)
        return max(1, (rows - window) / d.strideH + 1)
    }

    /// `output = dwAct(depthwise(pwAct(pointwise(input))))`. `p` and `d` are the two geometries for this call (they
    /// may differ from the packed ones in batch and spatial size only, and must chain: `supports(pointwise:depthwise:)`).
    public func forward(input: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>, pointwise p: ConvGeometry,
                        depthwise d: ConvGeometry, pointwiseActivation: FusedActivation,
                        depthwiseActivation: FusedActivation) {
        precondition(Self.supports(pointwise: p, depthwise: d), "PointwiseDepthwiseConvolution: \(p) does not feed \(d)")
        let (h, w, channels, inputChannels) = (d.inputHeight, d.inputWidth, d.inputChannels, p.inputChannels)
        let (oh, sh, pt) = (d.outputHeight, d.strideH, d.padTop)
        let window = (d.kernelHeight - 1) * d.dilationH + 1
        let rowFloats = w * channels, rows = d.batch * oh
        guard rows > 0, d.outputWidth > 0 else { return }
        let band = bandRows(d), bufferRows = (band - 1) * sh + window
        let pointwise = self.pointwise, depthwise = self.depthwise
        WorkerPool.shared.parallelRanges(rows) { range in
            let buffer = lcnn_band_scratch(Int64(bufferRows * rowFloats))!
            // Rows [held0, held1) of image `heldImage` are in the buffer, row held0 at its start.
            var heldImage = -1, held0 = 0, held1 = 0
            var row = range.lowerBound
            while row < range.upperBound {
                let n = row / oh, oy0 = row % oh
                let oy1 = min(oh, oy0 + band, oy0 + (range.upperBound - row))
                let need0 = max(0, oy0 * sh - pt), need1 = min(h, (oy1 - 1) * sh - pt + window)
                if need1 > need0 {
                    var have1 = need0
                    if heldImage == n && held0 <= need0 && need0 < held1 {
                        let kept = min(held1, need1) - need0
                        if need0 > held0 {
                            memmove(buffer, buffer + (need0 - held0) * rowFloats, kept * rowFloats * MemoryLayout<Float>.stride)
                        }
                        have1 = need0 + kept
                    }
                    if have1 < need1 {
                        pointwise.forwardPointwisePixels(input: input + (n * h + have1) * w * inputChannels,
                                                         output: buffer + (have1 - need0) * rowFloats,
                                                         count: (need1 - have1) * w, geometry: p,
                                                         activation: pointwiseActivation)
                    }
                    (heldImage, held0, held1) = (n, need0, need1)
                }
                // The depthwise kernel reads row iy of image n at base + (n·h + iy)·rowFloats: place the buffer there.
                let base = UnsafePointer(buffer) - (n * h + need0) * rowFloats
                depthwise.forwardDepthwiseRows(input: base, output: output, rows: row..<(row + oy1 - oy0), geometry: d,
                                               activation: depthwiseActivation)
                row += oy1 - oy0
            }
        }
    }
}
