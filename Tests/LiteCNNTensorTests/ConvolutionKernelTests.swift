import LiteCNNTensor
import XCTest

/// `Kernels.conv2d*` against `ReferenceKernels.conv2d*` over odd shapes, at every instruction-set level.
final class ConvolutionKernelTests: XCTestCase {
    private func geometry(_ n: Int, _ h: Int, _ w: Int, _ cin: Int, _ cout: Int, k: (Int, Int), s: (Int, Int) = (1, 1),
                          d: (Int, Int) = (1, 1), pad: (Int, Int, Int, Int) = (0, 0, 0, 0), groups: Int = 1) -> ConvGeometry {
        ConvGeometry(batch: n, inputHeight: h, inputWidth: w, inputChannels: cin, outputChannels: cout,
                     kernelHeight: k.0, kernelWidth: k.1, strideH: s.0, strideW: s.1, dilationH: d.0, dilationW: d.1,
                     padTop: pad.0, padLeft: pad.1, padBottom: pad.2, padRight: pad.3, groups: groups)
    }

    /// Forward (with and without bias), backward-input and backward-weight (accumulating onto a nonzero gradient).
    private func checkAll(_ g: ConvGeometry, seed: UInt64, file: StaticString = #filePath, line: UInt = #line) {
        let inputCount = g.inputShape.reduce(1, *), outputCount = g.outputShape.reduce(1, *)
        let weightCount = g.weightShape.reduce(1, *)
        let x = randomFloats(inputCount, seed: seed), w = randomFloats(weightCount, seed: seed + 1)
        let bias = randomFloats(g.outputChannels, seed: seed + 2), dy = randomFloats(outputCount, seed: seed + 3)
        let gw0 = randomFloats(weightCount, seed: seed + 4)
        let depth = g.inputChannelsPerGroup * g.kernelHeight * g.kernelWidth

        var expectedY = [Float](repeating: 0, count: outputCount), expectedYNoBias = expectedY
        ReferenceKernels.conv2dForward(input: x, weight: w, bias: bias, output: &expectedY, geometry: g)
        ReferenceKernels.conv2dForward(input: x, weight: w, bias: nil, output: &expectedYNoBias, geometry: g)
        var expectedDX = [Float](repeating: 0, count: inputCount)
        ReferenceKernels.conv2dBackwardInput(gradOutput: dy, weight: w, gradInput: &expectedDX, geometry: g)
        var expectedDW = gw0
        ReferenceKernels.conv2dBackwardWeight(input: x, gradOutput: dy, gradWeight: &expectedDW, geometry: g)
        // Each input gradient sums over (output channels per group × taps); each weight gradient over output pixels.
        let depthDX = g.outputChannelsPerGroup * g.kernelHeight * g.kernelWidth
        let depthDW = g.batch * g.outputHeight * g.outputWidth

        forEachInstructionSet { level in
            var y = [Float](repeating: .nan, count: outputCount)
            Kernels.conv2dForward(input: x, weight: w, bias: bias, output: &y, geometry: g)
            assertClose(y, expectedY, depth: depth, "forward \(g) level \(level)", file: file, line: line)
            var yNoBias = [Float](repeating: .nan, count: outputCount)
            Kernels.conv2dForward(input: x, weight: w, bias: nil, output: &yNoBias, geometry: g)
            assertClose(yNoBias, expectedYNoBias, depth: depth, "forward no bias \(g) level \(level)", file: file, line: line)
            var dx = [Float](repeating: .nan, count: inputCount)
            Kernels.conv2dBackwardInput(gradOutput: dy, weight: w, gradInput: &dx, geometry: g)
            assertClose(dx, expectedDX, depth: depthDX, "backward input \(g) level \(level)", file: file, line: line)
            var dw = gw0
            Kernels.conv2dBackwardWeight(input: x, gradOutput: dy, gradWeight: &dw, geometry: g)
            assertClose(dw, expectedDW, depth: depthDW, "backward weight \(g) level \(level)", file: file, line: line)
        }
    }

    /// The direct kernel (one group, small K): stems with 1–4 input channels up to 7×7 with stride, padding and dilation,
    /// small non-square kernels, odd output channel counts (masked tails), odd widths (a lone last pixel), with residual
    /// and every activation.
    func testDirectKernelStemsAndSmallKernels() {
        let cases: [ConvGeometry] = [
            geometry(1, 9, 11, 3, 33, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)),
            geometry(2, 13, 13, 3, 7, k: (7, 7), s: (2, 2), pad: (3, 3, 3, 3)),
            geometry(1, 8, 7, 1, 17, k: (5, 5), d: (2, 2), pad: (2, 1, 0, 3)),
            geometry(1, 5, 5, 4, 64, k: (3, 3)),
            geometry(2, 6, 5, 8, 40, k: (3, 1), pad: (1, 0, 1, 0)),
            geometry(1, 3, 7, 8, 9, k: (2, 2), s: (1, 2)),
            // Wide enough for whole 6-pixel tiles read in place, and partial tiles at the row's end.
            geometry(1, 29, 41, 3, 16, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)),
            geometry(2, 31, 37, 3, 24, k: (7, 7), s: (2, 2), pad: (3, 3, 3, 3)),
            // Deeper windows (K up to 160): SqueezeNet's 3×3 expand over 16 channels; output widths that end a 32-lane
            // AVX-512 block part-way (40 = 32 + 8, 33, 7).
            geometry(1, 9, 23, 16, 40, k: (3, 3), pad: (1, 1, 1, 1)),
            geometry(2, 7, 19, 17, 33, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)),
            geometry(1, 8, 14, 6, 7, k: (5, 5), pad: (2, 2, 2, 2)),
            // AVX-512 reads padded windows from a zero-bordered copy of the rows (a slab of about 256 KB): rows wide
            // enough that a slab holds only a few output rows (chunks of 3, at stride 1 and 2), padding only at the
            // bottom and right, height-only dilation (one run per window row, rows 2 apart), a row range that
            // crosses from one image to the next (batch 3, split over the threads).
            geometry(1, 9, 700, 16, 20, k: (3, 3), pad: (1, 1, 1, 1)),
            geometry(1, 11, 701, 16, 36, k: (3, 3), s: (2, 2), pad: (1, 0, 1, 2)),
            geometry(1, 10, 9, 5, 21, k: (3, 3), pad: (0, 0, 2, 1)),
            geometry(2, 12, 10, 4, 18, k: (3, 3), d: (2, 1), pad: (2, 1, 2, 1)),
            geometry(3, 5, 7, 8, 50, k: (1, 3), s: (1, 2), pad: (0, 1, 0, 1)),
        ]
        let activations: [FusedActivation] = [.none, .relu, .relu6, .hardSwish, .sigmoid, .hardSigmoid, .silu]
        for (i, g) in cases.enumerated() {
            XCTAssertTrue(PackedConvolution.usesDirectKernel(g), "\(g)")
            let seed = UInt64(100 + 10 * i)
            let x = randomFloats(g.inputShape.reduce(1, *), seed: seed), w = randomFloats(g.weightShape.reduce(1, *), seed: seed + 1)
            let bias = randomFloats(g.outputChannels, seed: seed + 2)
            let count = g.outputShape.reduce(1, *)
            let residual = randomFloats(count, seed: seed + 3)
            var plain = [Float](repeating: 0, count: count)
            ReferenceKernels.conv2dForward(input: x, weight: w, bias: bias, output: &plain, geometry: g)
            let conv = PackedConvolution(weight: w, bias: bias, geometry: g)
            forEachInstructionSet { level in
                for activation in activations {
                    var y = [Float](repeating: .nan, count: count)
                    residual.withUnsafeBufferPointer { r in
                        conv.forward(input: x, output: &y, geometry: g, activation: activation, residual: r.baseAddress)
                    }
                    let expected = zip(plain, residual).map { activation.apply($0 + $1) }
                    assertClose(y, expected, depth: g.kernelHeight * g.kernelWidth * g.inputChannels,
                                "direct \(g) \(activation) level \(level)")
                }
            }
        }
        XCTAssertFalse(PackedConvolution.usesDirectKernel(geometry(1, 5, 5, 64, 64, k: (3, 3))))
        XCTAssertFalse(PackedConvolution.usesDirectKernel(geometry(1, 5, 5, 18, 64, k: (3, 3))), "K = 162 takes the GEMM")
        XCTAssertFalse(PackedConvolution.usesDirectKernel(geometry(1, 5, 5, 8, 8, k: (3, 3), groups: 2)))
        XCTAssertFalse(PackedConvolution.usesDirectKernel(geometry(1, 5, 5, 16, 64, k: (1, 1))), "narrow 1×1s take the GEMM")
    }

    func testPointwise() {
        checkAll(geometry(2, 5, 7, 17, 33, k: (1, 1)), seed: 1)
        checkAll(geometry(1, 1, 1, 1, 3, k: (1, 1)), seed: 2)
        checkAll(geometry(3, 4, 5, 24, 40, k: (1, 1)), seed: 3)
        // More output channels than pixels (MobileNet's late stages at batch 1): on several threads the output
        // channels are split, each thread running every pixel.
        checkAll(geometry(1, 9, 11, 24, 104, k: (1, 1)), seed: 4)
        checkAll(geometry(1, 7, 7, 300, 1000, k: (1, 1)), seed: 5)
        // One pixel (a classifier at batch 1): a matrix-vector product over 128-column blocks, the last one partial.
        checkAll(geometry(1, 1, 1, 300, 301, k: (1, 1)), seed: 13)
    }

    /// Deep 3×3 convolutions whose weights outweigh their pixels (ResNet-18's and VGG's last stages at batch 1): the
    /// patches are gathered whole and the output channels split over the threads (one tile on one thread).
    func testDeepConvolutionSplitByOutputChannels() {
        checkAll(geometry(1, 5, 6, 40, 72, k: (3, 3), pad: (1, 1, 1, 1)), seed: 6)
        checkAll(geometry(2, 4, 3, 33, 100, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)), seed: 7)
        let threads = WorkerPool.shared.threadCount
        WorkerPool.shared.threadCount = 1
        defer { WorkerPool.shared.threadCount = threads }
        checkAll(geometry(1, 5, 6, 40, 72, k: (3, 3), pad: (1, 1, 1, 1)), seed: 8)
        // With a fused residual and activation (ResNet's second convolution of a block), on both paths.
        let g = geometry(1, 5, 6, 40, 72, k: (3, 3), pad: (1, 1, 1, 1))
        let x = randomFloats(g.inputShape.reduce(1, *), seed: 9), w = randomFloats(g.weightShape.reduce(1, *), seed: 10)
        let bias = randomFloats(72, seed: 11), count = g.outputShape.reduce(1, *), residual = randomFloats(count, seed: 12)
        var plain = [Float](repeating: 0, count: count)
        ReferenceKernels.conv2dForward(input: x, weight: w, bias: bias, output: &plain, geometry: g)
        let expected = zip(plain, residual).map { FusedActivation.relu.apply($0 + $1) }
        let conv = PackedConvolution(weight: w, bias: bias, geometry: g)
        for t in [1, 2] {
            WorkerPool.shared.threadCount = t
            forEachInstructionSet { level in
                var y = [Float](repeating: .nan, count: count)
                residual.withUnsafeBufferPointer { conv.forward(input: x, output: &y, geometry: g, activation: .relu, residual: $0.baseAddress) }
                assertClose(y, expected, depth: 360, "residual, \(t) threads, level \(level)")
            }
        }
    }

    func testPointwiseStridedAndPadded() {
        checkAll(geometry(2, 7, 9, 5, 17, k: (1, 1), s: (2, 2)), seed: 10)
        checkAll(geometry(1, 3, 4, 3, 5, k: (1, 1), pad: (1, 0, 0, 1)), seed: 11)
    }

    func testDense3x3() {
        checkAll(geometry(2, 9, 11, 5, 17, k: (3, 3), pad: (1, 1, 1, 1)), seed: 20)
        checkAll(geometry(2, 7, 9, 3, 16, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)), seed: 21)
        checkAll(geometry(1, 6, 5, 40, 24, k: (3, 3), pad: (1, 1, 1, 1)), seed: 22)  // K = 360: two k-blocks
        checkAll(geometry(1, 1, 1, 3, 5, k: (3, 3), pad: (1, 1, 1, 1)), seed: 23)   // 1×1 image
    }

    func testDilationAsymmetricPaddingAndRectangularKernels() {
        checkAll(geometry(2, 8, 8, 4, 6, k: (3, 3), d: (2, 2), pad: (2, 2, 2, 2)), seed: 30)
        checkAll(geometry(1, 7, 6, 3, 5, k: (3, 3), s: (2, 1), pad: (0, 1, 2, 1)), seed: 31)
        checkAll(geometry(2, 6, 9, 5, 7, k: (1, 5), pad: (0, 2, 0, 2)), seed: 32)
        checkAll(geometry(2, 9, 6, 5, 7, k: (5, 1), pad: (2, 0, 2, 0)), seed: 33)
        checkAll(geometry(1, 11, 10, 2, 3, k: (7, 7), s: (2, 2), d: (1, 2), pad: (3, 3, 3, 3)), seed: 34)
    }

    func testGrouped() {
        checkAll(geometry(2, 6, 7, 6, 10, k: (3, 3), pad: (1, 1, 1, 1), groups: 2), seed: 40)
        checkAll(geometry(2, 5, 6, 45, 45, k: (1, 1), groups: 3), seed: 41)                 // ShuffleNet 1×1, 15 per group
        checkAll(geometry(1, 7, 7, 16, 24, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1), groups: 8), seed: 42)
        checkAll(geometry(1, 4, 4, 180, 120, k: (1, 1), groups: 3), seed: 43)              // 60 → 40 per group
        // 70 outputs per group: each group's weights are reordered and packed in two slices (64 + 6 columns).
        checkAll(geometry(1, 5, 4, 40, 140, k: (3, 3), pad: (1, 1, 1, 1), groups: 2), seed: 44)
    }

    func testDepthwiseFastPaths() {
        checkAll(geometry(2, 9, 11, 17, 17, k: (3, 3), pad: (1, 1, 1, 1), groups: 17), seed: 50)
        checkAll(geometry(2, 9, 13, 33, 33, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1), groups: 33), seed: 51)
        checkAll(geometry(1, 10, 12, 5, 5, k: (5, 5), pad: (2, 2, 2, 2), groups: 5), seed: 52)
        checkAll(geometry(2, 11, 15, 16, 16, k: (5, 5), s: (2, 2), pad: (2, 2, 2, 2), groups: 16), seed: 53)
        checkAll(geometry(1, 6, 20, 48, 48, k: (3, 3), groups: 48), seed: 54)               // unpadded, long interior
        checkAll(geometry(1, 5, 40, 33, 33, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1), groups: 33), seed: 55)  // wide stride 2
        checkAll(geometry(2, 6, 41, 10, 10, k: (5, 5), s: (2, 2), pad: (2, 2, 2, 2), groups: 10), seed: 56)
        checkAll(geometry(1, 4, 30, 24, 24, k: (3, 3), pad: (1, 1, 1, 1), groups: 24), seed: 57)
        // Short rows with many channels (MobileNet's 7×7 stages): border pixels sum four channel blocks at once, the
        // last of them partly or wholly past the channel count.
        checkAll(geometry(1, 7, 7, 100, 100, k: (3, 3), pad: (1, 1, 1, 1), groups: 100), seed: 58)
        checkAll(geometry(2, 7, 9, 72, 72, k: (5, 5), pad: (2, 2, 2, 2), groups: 72), seed: 59)
        checkAll(geometry(1, 13, 13, 136, 136, k: (5, 5), s: (2, 2), pad: (2, 2, 2, 2), groups: 136), seed: 49)
    }

    /// Training-sized shapes, so that every kernel splits its rows, tiles and accumulators over the worker pool (the
    /// small shapes above stay on one thread): MobileNet-like depthwise, pointwise and dense layers at batch 16.
    func testTrainingSizedShapesUseEveryThreadedPath() {
        checkAll(geometry(16, 16, 16, 96, 96, k: (3, 3), pad: (1, 1, 1, 1), groups: 96), seed: 200)
        checkAll(geometry(16, 16, 16, 96, 96, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1), groups: 96), seed: 201)
        checkAll(geometry(16, 8, 8, 64, 96, k: (1, 1)), seed: 202)
        checkAll(geometry(16, 8, 8, 32, 48, k: (3, 3), pad: (1, 1, 1, 1)), seed: 203)
        checkAll(geometry(16, 16, 16, 3, 32, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1)), seed: 204)
    }

    func testDepthwiseGeneric() {
        checkAll(geometry(1, 9, 10, 3, 3, k: (3, 3), d: (2, 2), pad: (2, 2, 2, 2), groups: 3), seed: 60)
        checkAll(geometry(2, 8, 9, 7, 7, k: (3, 3), pad: (0, 1, 2, 1), groups: 7), seed: 61)
        checkAll(geometry(1, 12, 11, 18, 18, k: (7, 7), s: (3, 2), pad: (3, 3, 3, 3), groups: 18), seed: 62)
        checkAll(geometry(1, 1, 1, 20, 20, k: (3, 3), pad: (1, 1, 1, 1), groups: 20), seed: 63)
        checkAll(geometry(2, 7, 8, 9, 9, k: (1, 3), pad: (0, 1, 0, 1), groups: 9), seed: 64)
    }

    func testDepthwiseWithMultiplier() {
        checkAll(geometry(2, 7, 8, 3, 6, k: (3, 3), pad: (1, 1, 1, 1), groups: 3), seed: 70)
        checkAll(geometry(1, 9, 9, 5, 15, k: (5, 5), s: (2, 2), pad: (2, 2, 2, 2), groups: 5), seed: 71)
    }

    func testFusedActivationAndPackedReuse() {
        let g = geometry(2, 8, 9, 12, 20, k: (3, 3), pad: (1, 1, 1, 1))
        let dwg = geometry(2, 8, 9, 20, 20, k: (3, 3), s: (2, 2), pad: (1, 1, 1, 1), groups: 20)
        for (index, geo) in [g, dwg].enumerated() {
            let x = randomFloats(geo.inputShape.reduce(1, *), seed: UInt64(80 + index), range: -3...3)
            let w = randomFloats(geo.weightShape.reduce(1, *), seed: UInt64(90 + index))
            let bias = randomFloats(geo.outputChannels, seed: UInt64(95 + index))
            var plain = [Float](repeating: 0, count: geo.outputShape.reduce(1, *))
            ReferenceKernels.conv2dForward(input: x, weight: w, bias: bias, output: &plain, geometry: geo)
            let packed = PackedConvolution(weight: w, bias: bias, geometry: geo)
            forEachInstructionSet { level in
                for activation in [FusedActivation.relu, .relu6] {
                    let expected = plain.map { activation == .relu ? max($0, 0) : min(max($0, 0), 6) }
                    var y = [Float](repeating: .nan, count: plain.count)
                    packed.forward(input: x, output: &y, geometry: geo, activation: activation)
                    assertClose(y, expected, depth: 9 * geo.inputChannelsPerGroup, "\(activation) \(geo) level \(level)")
                }
            }
            // Same packed weights, another batch and image size.
            var other = geo
            other.batch = 1; other.inputHeight = 5; other.inputWidth = 13
            let x2 = randomFloats(other.inputShape.reduce(1, *), seed: 99)
            var expected2 = [Float](repeating: 0, count: other.outputShape.reduce(1, *)), y2 = expected2
            ReferenceKernels.conv2dForward(input: x2, weight: w, bias: bias, output: &expected2, geometry: other)
            packed.forward(input: x2, output: &y2, geometry: other)
            assertClose(y2, expected2, depth: 9 * geo.inputChannelsPerGroup, "packed reuse \(other)")
        }
    }
}
