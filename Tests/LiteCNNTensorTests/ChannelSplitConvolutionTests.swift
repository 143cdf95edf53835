import LiteCNNTensor
import XCTest

/// Pointwise convolutions with few pixels (a classifier at batch 1, a 7×7 map) split their output channels over the
/// threads; every split must equal the naive reference, with bias, residual, activations and a strided output.
final class ChannelSplitConvolutionTests: XCTestCase {
    override func tearDown() {
        WorkerPool.shared.threadCount = WorkerPool.shared.maximumThreads
    }

    private func check(pixels: (batch: Int, h: Int, w: Int), cin: Int, cout: Int, threads: Int, seed: UInt64) {
        WorkerPool.shared.threadCount = threads
        let g = ConvGeometry(batch: pixels.batch, inputHeight: pixels.h, inputWidth: pixels.w, inputChannels: cin,
                             outputChannels: cout, kernelHeight: 1, kernelWidth: 1)
        let x = randomFloats(g.inputShape.reduce(1, *), seed: seed, range: -2...2)
        let w = randomFloats(g.weightShape.reduce(1, *), seed: seed + 1)
        let bias = randomFloats(cout, seed: seed + 2)
        let count = g.outputShape.reduce(1, *)
        let residual = randomFloats(count, seed: seed + 3, range: -3...3)
        var plain = [Float](repeating: 0, count: count)
        ReferenceKernels.conv2dForward(input: x, weight: w, bias: bias, output: &plain, geometry: g)
        let packed = PackedConvolution(weight: w, bias: bias, geometry: g)
        let label = "\(pixels) \(cin)→\(cout) threads \(threads)"
        forEachInstructionSet { level in
            for activation in [FusedActivation.none, .relu, .hardSwish] {
                for useResidual in [false, true] {
                    let want = (0..<count).map { activation.apply(plain[$0] + (useResidual ? residual[$0] : 0)) }
                    var y = [Float](repeating: .nan, count: count)
                    residual.withUnsafeBufferPointer { r in
                        packed.forward(input: x, output: &y, geometry: g, activation: activation,
                                       residual: useResidual ? r.baseAddress : nil)
                    }
                    assertClose(y, want, depth: cin, "\(label) \(activation) residual \(useResidual) level \(level)")
                }
            }
            // Into a channel slice of a wider tensor: the other channels stay untouched.
            let pad = 5, ldo = cout + pad
            let rows = count / cout
            var wide = [Float](repeating: -7, count: rows * ldo)
            wide.withUnsafeMutableBufferPointer { out in
                packed.forward(input: x, output: out.baseAddress!, outputRowStride: ldo, geometry: g, activation: .relu,
                               residual: nil)
            }
            var inside = [Float](), untouched = true
            for r in 0..<rows {
                inside += wide[(r * ldo)..<(r * ldo + cout)]
                untouched = untouched && wide[(r * ldo + cout)..<((r + 1) * ldo)].allSatisfy { $0 == -7 }
            }
            assertClose(inside, plain.map { max($0, 0) }, depth: cin, "\(label) strided level \(level)")
            XCTAssertTrue(untouched, "\(label): channels outside the slice were written")
        }
    }

    func testClassifierAtBatchOne() {
        for threads in [1, 2] {
            check(pixels: (1, 1, 1), cin: 300, cout: 1000, threads: threads, seed: 10)  // two KC blocks, 63 panels
            check(pixels: (1, 1, 1), cin: 7, cout: 37, threads: threads, seed: 20)     // 3 panels, ragged last
            check(pixels: (1, 1, 1), cin: 16, cout: 17, threads: threads, seed: 30)    // 2 panels: one each
        }
    }

    func testFewPixelsManyChannels() {
        check(pixels: (1, 7, 7), cin: 64, cout: 203, threads: 2, seed: 40)   // one pixel tile of 49 rows
        check(pixels: (3, 1, 1), cin: 129, cout: 100, threads: 2, seed: 50)  // batch 3 classifier
        check(pixels: (2, 3, 5), cin: 33, cout: 48, threads: 2, seed: 60)
    }

    /// The AVX-512 direct product picks its tile height from the rows, columns and depth it is given (4 rows up to 4,
    /// else 6, 7 or 8 by a cost model) and its width from the panels left (1–4 panels of 16): every height from 1 to
    /// 24 on one thread (one pixel tile each, depths below and above 256) against widths that end on every panel
    /// count, and whole 7×7 and 14×14 maps (channel split on two threads, one tile of 49, 98 or 196 rows).
    func testEveryRowTileHeight() {
        for pixels in 1...24 {
            for (index, cout) in [16, 47, 65, 100, 9].enumerated() {
                check(pixels: (1, 1, pixels), cin: pixels % 3 == 0 ? 300 : 19, cout: cout, threads: 1,
                      seed: UInt64(1000 + 10 * pixels + index))
            }
        }
        check(pixels: (1, 7, 7), cin: 40, cout: 130, threads: 2, seed: 70)
        check(pixels: (2, 7, 7), cin: 21, cout: 113, threads: 2, seed: 80)
        check(pixels: (1, 14, 14), cin: 11, cout: 209, threads: 2, seed: 90)
        check(pixels: (1, 14, 14), cin: 260, cout: 230, threads: 2, seed: 95)
        // 7-row tiles that end in one 8-row tile instead of a lone row: 13 × 13 = 7·23 + 8, 2 × 5 × 5 = 7·6 + 8 (as
        // many output channels as pixels or more, so that one tile takes every row).
        check(pixels: (1, 13, 13), cin: 300, cout: 200, threads: 1, seed: 97)
        check(pixels: (2, 5, 5), cin: 300, cout: 100, threads: 1, seed: 98)
    }
}
