import Foundation
import LiteCNNTensor
import XCTest

/// Winograd F(4×4, 3×3), fused residual epilogues and fused depthwise activations against `ReferenceKernels`, at
/// every instruction-set level.
final class FusedKernelTests: XCTestCase {
    private let allActivations: [FusedActivation] = [.none, .relu, .relu6, .hardSwish, .sigmoid, .hardSigmoid, .silu]

    /// Winograd tolerance: `|y − ref| ≤ 1e-3 · max(1, max|ref|)`, i.e. relative to the output's scale (the F(4, 3)
    /// transforms spread rounding over a tile, so elementwise relative error is meaningless near zero).
    private func assertWinogradClose(_ y: [Float], _ expected: [Float], _ message: String,
                                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(y.count, expected.count, message, file: file, line: line)
        let scale = max(1, expected.map(abs).max() ?? 0)
        var worst: Float = 0
        for i in 0..<min(y.count, expected.count) { let e = abs(y[i] - expected[i]); if !(e <= worst) { worst = e } }
        XCTAssert(worst <= 1e-3 * scale, "\(message): worst error \(worst) > 1e-3 × scale \(scale)", file: file, line: line)
    }

    private func checkWinograd(n: Int, h: Int, w: Int, cin: Int, cout: Int, pad: (Int, Int, Int, Int) = (1, 1, 1, 1),
                               activation: FusedActivation = .relu, withResidual: Bool = false, seed: UInt64,
                               file: StaticString = #filePath, line: UInt = #line) {
        let g = ConvGeometry(batch: n, inputHeight: h, inputWidth: w, inputChannels: cin, outputChannels: cout,
                             kernelHeight: 3, kernelWidth: 3, padTop: pad.0, padLeft: pad.1, padBottom: pad.2, padRight: pad.3)
        XCTAssertTrue(WinogradConvolution.supports(g))
        let x = randomFloats(g.inputShape.reduce(1, *), seed: seed), wt = randomFloats(g.weightShape.reduce(1, *), seed: seed + 1)
        let bias = randomFloats(cout, seed: seed + 2)
        let outCount = g.outputShape.reduce(1, *)
        let residual = withResidual ? randomFloats(outCount, seed: seed + 3, range: -4...4) : nil
        var expected = [Float](repeating: 0, count: outCount)
        ReferenceKernels.conv2dForward(input: x, weight: wt, bias: bias, output: &expected, geometry: g)
        if let residual { for i in 0..<outCount { expected[i] += residual[i] } }
        expected = expected.map { activation.apply($0) }
        let conv = WinogradConvolution(weights: wt, bias: bias, inputChannels: cin, outputChannels: cout,
                                       padTop: pad.0, padLeft: pad.1, padBottom: pad.2, padRight: pad.3, activation: activation)
        XCTAssertEqual(conv.geometry(batch: n, height: h, width: w), g)
        forEachInstructionSet { level in
            var y = [Float](repeating: .nan, count: outCount)
            if let residual {
                residual.withUnsafeBufferPointer { r in
                    conv.forward(input: x, output: &y, batch: n, height: h, width: w, residual: r.baseAddress)
                }
            } else {
                conv.forward(input: x, output: &y, batch: n, height: h, width: w)
            }
            assertWinogradClose(y, expected, "winograd \(g) \(activation) level \(level)", file: file, line: line)
        }
    }

    /// Large transformed weights (over 16 MiB) need 16 tiles per image; smaller ones only 16 tiles in the batch.
    func testWinogradChoiceWeighsTransformedWeightsAgainstTilesPerImage() {
        func geometry(_ n: Int, _ hw: Int, _ c: Int) -> ConvGeometry {
            ConvGeometry(batch: n, inputHeight: hw, inputWidth: hw, inputChannels: c, outputChannels: c,
                         kernelHeight: 3, kernelWidth: 3, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1)
        }
        XCTAssertFalse(WinogradConvolution.isProfitable(geometry(1, 7, 512)))   // 4 tiles
        XCTAssertFalse(WinogradConvolution.isProfitable(geometry(8, 7, 512)))   // 32 tiles, 36 MiB, 4 per image
        XCTAssertTrue(WinogradConvolution.isProfitable(geometry(8, 14, 256)))   // 9 MiB: batch tiles suffice
        XCTAssertTrue(WinogradConvolution.isProfitable(geometry(4, 7, 256)))    // 16 tiles in the batch
        XCTAssertTrue(WinogradConvolution.isProfitable(geometry(1, 14, 512)))   // 16 tiles per image
        XCTAssertFalse(WinogradConvolution.isProfitable(geometry(1, 14, 16)))   // too few channels
    }

    /// Kernel buffers below and above the 2 MiB mapping threshold: aligned, writable end to end, freed cleanly.
    func testCacheAlignedBuffersOnBothSidesOfTheMappingThreshold() {
        for floats in [1, 15, 1000, (2 << 20) / 4 - 17, (2 << 20) / 4, (2 << 20) / 4 + 1, 3_000_001] {
            let p = allocateCacheAligned(floats: floats)
            XCTAssertEqual(UInt(bitPattern: p) % 64, 0, "\(floats) floats")
            if floats * 4 >= 2 << 20 { XCTAssertEqual(UInt(bitPattern: p) % UInt(2 << 20), 0, "\(floats) floats") }
            for i in stride(from: 0, to: floats, by: 997) { p[i] = Float(i) }
            p[floats - 1] = -1
            var sum: Float = 0
            for i in stride(from: 0, to: floats - 1, by: 997) { sum += p[i] - Float(i) }
            XCTAssertEqual(sum, 0)
            XCTAssertEqual(p[floats - 1], -1)
            deallocateCacheAligned(p)
        }
    }

    func testWinogradOddShapes() {
        var seed: UInt64 = 100
        for (h, w) in [(1, 1), (2, 5), (5, 7), (7, 13), (13, 2)] {
            for (cin, cout) in [(1, 3), (3, 17), (17, 1), (17, 64)] {
                checkWinograd(n: 1, h: h, w: w, cin: cin, cout: cout, seed: seed)
                seed += 10
            }
        }
        checkWinograd(n: 2, h: 13, w: 7, cin: 64, cout: 17, activation: .relu6, seed: 300)
        checkWinograd(n: 1, h: 56, w: 56, cin: 3, cout: 17, activation: .none, seed: 310)
    }

    func testWinogradLargeChannelsPaddingAndResidual() {
        checkWinograd(n: 1, h: 14, w: 14, cin: 64, cout: 64, activation: .relu, withResidual: true, seed: 400)
        checkWinograd(n: 3, h: 5, w: 9, cin: 17, cout: 20, pad: (0, 0, 0, 0), activation: .none, seed: 410)
        checkWinograd(n: 1, h: 6, w: 7, cin: 5, cout: 9, pad: (2, 0, 1, 2), activation: .hardSwish, withResidual: true, seed: 420)
        // Few tiles: split over output channels in 16-wide panels (40 = 16 + 24) when there are several threads.
        checkWinograd(n: 1, h: 7, w: 7, cin: 33, cout: 40, activation: .relu, withResidual: true, seed: 425)
        checkWinograd(n: 1, h: 3, w: 4, cin: 8, cout: 100, activation: .sigmoid, seed: 427)
        // K = 300 > one GEMM k-block (256), many tile blocks.
        checkWinograd(n: 2, h: 9, w: 11, cin: 300, cout: 33, activation: .none, seed: 430)
    }

    func testPackedConvolutionResidualAndActivations() {
        let geometries = [
            ConvGeometry(batch: 2, inputHeight: 5, inputWidth: 7, inputChannels: 17, outputChannels: 33, kernelHeight: 1, kernelWidth: 1),
            ConvGeometry(batch: 1, inputHeight: 7, inputWidth: 6, inputChannels: 300, outputChannels: 19, kernelHeight: 1, kernelWidth: 1),
            // One pixel (a classifier at batch 1): the matrix-vector kernel, 64 columns at a time, 115 = 64 + 51.
            ConvGeometry(batch: 1, inputHeight: 1, inputWidth: 1, inputChannels: 300, outputChannels: 115, kernelHeight: 1, kernelWidth: 1),
            ConvGeometry(batch: 1, inputHeight: 9, inputWidth: 8, inputChannels: 5, outputChannels: 12, kernelHeight: 3, kernelWidth: 3,
                         strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            ConvGeometry(batch: 2, inputHeight: 9, inputWidth: 11, inputChannels: 24, outputChannels: 24, kernelHeight: 3, kernelWidth: 3,
                         padTop: 1, padLeft: 1, padBottom: 1, padRight: 1, groups: 24),
        ]
        for (index, g) in geometries.enumerated() {
            let seed = UInt64(500 + 10 * index)
            let x = randomFloats(g.inputShape.reduce(1, *), seed: seed, range: -2...2)
            let wt = randomFloats(g.weightShape.reduce(1, *), seed: seed + 1)
            let bias = randomFloats(g.outputChannels, seed: seed + 2)
            let outCount = g.outputShape.reduce(1, *)
            let residual = randomFloats(outCount, seed: seed + 3, range: -3...3)
            var plain = [Float](repeating: 0, count: outCount)
            ReferenceKernels.conv2dForward(input: x, weight: wt, bias: bias, output: &plain, geometry: g)
            let packed = PackedConvolution(weight: wt, bias: bias, geometry: g)
            let depth = g.inputChannelsPerGroup * g.kernelHeight * g.kernelWidth
            forEachInstructionSet { level in
                for activation in allActivations {
                    for useResidual in [false, true] {
                        let expected = (0..<outCount).map { activation.apply(plain[$0] + (useResidual ? residual[$0] : 0)) }
                        var y = [Float](repeating: .nan, count: outCount)
                        residual.withUnsafeBufferPointer { r in
                            packed.forward(input: x, output: &y, geometry: g, activation: activation,
                                           residual: useResidual ? r.baseAddress : nil)
                        }
                        assertClose(y, expected, depth: depth, "\(g) \(activation) residual \(useResidual) level \(level)")
                    }
                }
            }
        }
    }

    func testDepthwiseFusedActivationsOnFastPaths() {
        // Interior blocks of 8 and 4 pixels, borders, 16- and 8-channel blocks with masked tails, 3×3 and 5×5, s1/s2.
        let shapes: [(h: Int, w: Int, c: Int, k: Int, s: Int)] = [(6, 21, 37, 3, 1), (7, 23, 24, 3, 2), (9, 19, 13, 5, 1), (11, 27, 20, 5, 2)]
        for (index, shape) in shapes.enumerated() {
            let p = shape.k / 2
            let g = ConvGeometry(batch: 1, inputHeight: shape.h, inputWidth: shape.w, inputChannels: shape.c, outputChannels: shape.c,
                                 kernelHeight: shape.k, kernelWidth: shape.k, strideH: shape.s, strideW: shape.s,
                                 padTop: p, padLeft: p, padBottom: p, padRight: p, groups: shape.c)
            let seed = UInt64(600 + 10 * index)
            let x = randomFloats(g.inputShape.reduce(1, *), seed: seed, range: -3...3)
            let wt = randomFloats(g.weightShape.reduce(1, *), seed: seed + 1)
            let bias = randomFloats(g.outputChannels, seed: seed + 2)
            var plain = [Float](repeating: 0, count: g.outputShape.reduce(1, *))
            ReferenceKernels.conv2dForward(input: x, weight: wt, bias: bias, output: &plain, geometry: g)
            let packed = PackedConvolution(weight: wt, bias: bias, geometry: g)
            forEachInstructionSet { level in
                for activation in allActivations {
                    var y = [Float](repeating: .nan, count: plain.count)
                    packed.forward(input: x, output: &y, geometry: g, activation: activation)
                    assertClose(y, plain.map { activation.apply($0) }, depth: shape.k * shape.k, "\(g) \(activation) level \(level)")
                }
            }
        }
    }

    func testActivationExtremes() {
        // The vectorized exp is clamped: sigmoid/SiLU must stay finite and saturate correctly far from zero.
        let (m, n, k) = (7, 19, 1)
        let a: [Float] = [-200, -90, -20, 0, 20, 90, 200], b = [Float](repeating: 1, count: n)
        forEachInstructionSet { level in
            for activation in [FusedActivation.sigmoid, .silu, .hardSwish, .hardSigmoid] {
                var c = [Float](repeating: .nan, count: m * n)
                Kernels.gemm(m: m, n: n, k: k, a: a, lda: k, b: b, ldb: n, c: &c, ldc: n, bias: nil, activation: activation)
                for i in 0..<m {
                    let expected = activation.apply(a[i])
                    XCTAssert(c[i * n].isFinite && abs(c[i * n] - expected) <= 1e-5 * max(1, abs(expected)),
                              "\(activation)(\(a[i])) = \(c[i * n]), expected \(expected), level \(level)")
                }
            }
        }
    }
}
