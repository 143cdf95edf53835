import LiteCNNTensor
import XCTest

/// `PointwiseDepthwiseConvolution` against the two convolutions run one after the other, on odd shapes: bands of
/// one row up to the whole image, strides 1 and 2, 3×3 and 5×5 windows with padding and dilation, several images, and
/// one or two threads (each thread's range starts mid-image and recomputes no row it can reuse).
final class PointwiseDepthwiseConvolutionTests: XCTestCase {
    private func check(batch: Int, h: Int, w: Int, cin: Int, c: Int, k: Int, stride: Int, pad: Int, dilation: Int = 1,
                       bandBytes: Int, threads: Int, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let gp = ConvGeometry(batch: batch, inputHeight: h, inputWidth: w, inputChannels: cin, outputChannels: c,
                              kernelHeight: 1, kernelWidth: 1)
        let gd = ConvGeometry(batch: batch, inputHeight: h, inputWidth: w, inputChannels: c, outputChannels: c,
                              kernelHeight: k, kernelWidth: k, strideH: stride, strideW: stride, dilationH: dilation,
                              dilationW: dilation, padTop: pad, padLeft: pad, padBottom: pad, padRight: pad, groups: c)
        XCTAssertTrue(PointwiseDepthwiseConvolution.supports(pointwise: gp, depthwise: gd), file: file, line: line)
        let x = randomFloats(gp.inputShape.reduce(1, *), seed: seed)
        let wp = randomFloats(c * cin, seed: seed + 1), bp = randomFloats(c, seed: seed + 2)
        let wd = randomFloats(c * k * k, seed: seed + 3), bd = randomFloats(c, seed: seed + 4)
        let pw = PackedConvolution(weight: wp, bias: bp, geometry: gp)
        let dw = PackedConvolution(weight: wd, bias: bd, geometry: gd)
        let threadsBefore = WorkerPool.shared.threadCount
        defer { WorkerPool.shared.threadCount = threadsBefore }
        WorkerPool.shared.threadCount = threads
        let fused = PointwiseDepthwiseConvolution(pointwise: pw, depthwise: dw, bandBytes: bandBytes)
        forEachInstructionSet { level in
            // Each band runs the same kernels on the same rows as the whole layers: the results are identical.
            var middle = [Float](repeating: 0, count: gp.outputShape.reduce(1, *))
            var want = [Float](repeating: 0, count: gd.outputShape.reduce(1, *))
            pw.forward(input: x, output: &middle, geometry: gp, activation: .relu6)
            dw.forward(input: middle, output: &want, geometry: gd, activation: .relu)
            var got = [Float](repeating: .nan, count: want.count)
            fused.forward(input: x, output: &got, pointwise: gp, depthwise: gd, pointwiseActivation: .relu6,
                          depthwiseActivation: .relu)
            XCTAssertEqual(got, want, "\(gd) band \(fused.bandRows(gd)) rows, \(threads) threads, level \(level)",
                           file: file, line: line)
        }
    }

    func testBandsAgreeWithTheTwoLayers() {
        let row = { (w: Int, c: Int) in w * c * 4 }
        // MobileNet-like: 3×3/2 and 3×3/1 with padding 1, bands of 1 row, a few rows, and the whole image.
        for bandRows in [1, 3, 1000] {
            check(batch: 1, h: 13, w: 11, cin: 7, c: 24, k: 3, stride: 2, pad: 1, bandBytes: bandRows * row(11, 24),
                  threads: 1, seed: 10)
            check(batch: 2, h: 9, w: 10, cin: 16, c: 33, k: 3, stride: 1, pad: 1, bandBytes: bandRows * row(10, 33),
                  threads: 2, seed: 20)
        }
        // 5×5 windows (MobileNet V3, EfficientNet), stride 2 and 1, a dilated 3×3, no padding, odd channel counts.
        check(batch: 2, h: 15, w: 9, cin: 5, c: 17, k: 5, stride: 2, pad: 2, bandBytes: 2 * row(9, 17), threads: 2, seed: 30)
        check(batch: 1, h: 12, w: 12, cin: 20, c: 40, k: 5, stride: 1, pad: 2, bandBytes: 6 * row(12, 40), threads: 1, seed: 40)
        check(batch: 1, h: 14, w: 8, cin: 9, c: 16, k: 3, stride: 1, pad: 2, dilation: 2, bandBytes: 5 * row(8, 16),
              threads: 2, seed: 50)
        check(batch: 3, h: 7, w: 6, cin: 4, c: 64, k: 3, stride: 2, pad: 0, bandBytes: 3 * row(6, 64), threads: 2, seed: 60)
    }
}
