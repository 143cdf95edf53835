import LiteCNNTensor
import XCTest

/// The data-movement kernels of the runtime (channel gather, layout transpose, strided convolution output, blocked max
/// pooling) against naive loops, at every instruction-set level.
final class DataMovementKernelTests: XCTestCase {
    func testGatherChannelsAgainstNaive() {
        let srcC = 23, pixels = 37
        let src = randomFloats(pixels * srcC, seed: 91)
        func ints(_ v: [Int]) -> [Int32] { v.map { Int32($0) } }
        var maps: [(String, [Int32])] = []
        maps.append(("one run", ints(Array(3..<20))))
        maps.append(("two runs", ints(Array(0..<9) + Array(14..<23))))
        maps.append(("shuffle g=2 even", ints((0..<22).map { ($0 % 2) * 11 + $0 / 2 })))
        maps.append(("shuffle g=2 odd count", ints((0..<21).map { ($0 % 2) * 11 + $0 / 2 })))
        maps.append(("zip of halves of a shuffle", ints((0..<19).map { $0 % 2 == 0 ? 2 + $0 / 2 : 12 + $0 / 2 })))
        maps.append(("shuffle g=3", ints((0..<21).map { ($0 % 3) * 7 + $0 / 3 })))
        maps.append(("random", ints((0..<29).map { ($0 * 7 + 5) % srcC })))
        maps.append(("empty", []))
        for (name, map) in maps {
            let dstStride = map.count + 5
            var want = [Float](repeating: -1, count: pixels * dstStride)
            for p in 0..<pixels { for (k, c) in map.enumerated() { want[p * dstStride + 2 + k] = src[p * srcC + Int(c)] } }
            forEachInstructionSet { level in
                var got = [Float](repeating: -1, count: pixels * dstStride)
                src.withUnsafeBufferPointer { s in got.withUnsafeMutableBufferPointer { d in map.withUnsafeBufferPointer { m in
                    PoolKernels.gatherChannels(src: s.baseAddress!, srcStride: srcC, dst: d.baseAddress! + 2, dstStride: dstStride,
                                               pixels: pixels, map: m.baseAddress ?? UnsafePointer(bitPattern: 4)!, count: map.count)
                } } }
                XCTAssertEqual(got, want, "\(name) level \(level)")
            }
        }
    }

    /// Transposes of every size class: tiny (scalar only), 2–7 planes interleaved (RGB images; 16-column permute
    /// tiles with a ragged end), whole 8×8 tiles, tiles with ragged edges on both sides, and padded row strides on
    /// both sides; floats outside the destination stay untouched.
    func testTransposeAgainstNaive() {
        let planes = (2...7).map { ($0, 16 * $0 + 5) } + [(3, 16), (3, 15)]
        for (rows, cols) in [(1, 1), (3, 50), (50, 3), (8, 8), (16, 64), (13, 29), (67, 9), (9, 131)] + planes {
            for (lds, ldd) in [(cols, rows), (cols + 5, rows + 3)] {
                let src = randomFloats(rows * lds, seed: UInt64(rows * 1000 + cols))
                var want = [Float](repeating: -7, count: cols * ldd + 4)
                for i in 0..<rows { for j in 0..<cols { want[j * ldd + i] = src[i * lds + j] } }
                forEachInstructionSet { level in
                    var got = [Float](repeating: -7, count: cols * ldd + 4)
                    src.withUnsafeBufferPointer { s in got.withUnsafeMutableBufferPointer { d in
                        Kernels.transpose(src: s.baseAddress!, rows: rows, cols: cols, srcRowStride: lds,
                                          dst: d.baseAddress!, dstRowStride: ldd)
                    } }
                    XCTAssertEqual(got, want, "\(rows)×\(cols) lds \(lds) ldd \(ldd) level \(level)")
                }
            }
        }
    }

    func testStridedConvolutionOutputMatchesContiguous() {
        // GEMM 1×1, GEMM 3×3 with padding, grouped, and the direct kernel (SqueezeNet's expand with two 32-channel
        // blocks, dilated columns through the row buffer, a 3-channel stem — last), with and without residual.
        let geometries = [
            ConvGeometry(batch: 2, inputHeight: 5, inputWidth: 6, inputChannels: 16, outputChannels: 40, kernelHeight: 3, kernelWidth: 3,
                         padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            ConvGeometry(batch: 1, inputHeight: 6, inputWidth: 9, inputChannels: 4, outputChannels: 10, kernelHeight: 3, kernelWidth: 3,
                         dilationW: 2, padTop: 1, padLeft: 2, padBottom: 1, padRight: 2),
            ConvGeometry(batch: 2, inputHeight: 5, inputWidth: 7, inputChannels: 37, outputChannels: 13, kernelHeight: 1, kernelWidth: 1),
            ConvGeometry(batch: 1, inputHeight: 6, inputWidth: 5, inputChannels: 9, outputChannels: 11, kernelHeight: 3, kernelWidth: 3,
                         padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
            ConvGeometry(batch: 2, inputHeight: 4, inputWidth: 3, inputChannels: 12, outputChannels: 9, kernelHeight: 1, kernelWidth: 1,
                         groups: 3),
            ConvGeometry(batch: 2, inputHeight: 7, inputWidth: 9, inputChannels: 3, outputChannels: 17, kernelHeight: 3, kernelWidth: 3,
                         strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1),
        ]
        for (index, g) in geometries.enumerated() {
            let x = randomFloats(g.inputShape.reduce(1, *), seed: UInt64(300 + index))
            let w = randomFloats(g.outputChannels * g.inputChannelsPerGroup * g.kernelHeight * g.kernelWidth, seed: UInt64(400 + index))
            let b = randomFloats(g.outputChannels, seed: UInt64(500 + index))
            let pixels = g.batch * g.outputHeight * g.outputWidth, oc = g.outputChannels
            let residual = randomFloats(pixels * oc, seed: UInt64(600 + index))
            XCTAssertTrue(PackedConvolution.supportsOutputRowStride(g))
            if index == geometries.count - 1 { XCTAssertTrue(PackedConvolution.usesDirectKernel(g), "\(g)") }
            forEachInstructionSet { level in
                let packed = PackedConvolution(weight: w, bias: b, geometry: g)
                for useResidual in [false, true] {
                    var want = [Float](repeating: 0, count: pixels * oc)
                    residual.withUnsafeBufferPointer { r in
                        packed.forward(input: x, output: &want, geometry: g, activation: .relu, residual: useResidual ? r.baseAddress : nil)
                    }
                    let ld = oc + 6, offset = 4
                    var got = [Float](repeating: .nan, count: pixels * ld)
                    residual.withUnsafeBufferPointer { r in got.withUnsafeMutableBufferPointer { o in
                        packed.forward(input: x, output: o.baseAddress! + offset, outputRowStride: ld, geometry: g, activation: .relu,
                                       residual: useResidual ? r.baseAddress : nil)
                    } }
                    for p in 0..<pixels {
                        XCTAssertEqual(Array(got[(p * ld + offset)..<(p * ld + offset + oc)]), Array(want[(p * oc)..<(p * oc + oc)]),
                                       "geometry \(index) residual \(useResidual) level \(level) pixel \(p)")
                        // The rest of each row is untouched.
                        XCTAssertTrue(got[(p * ld)..<(p * ld + offset)].allSatisfy(\.isNaN))
                        XCTAssertTrue(got[(p * ld + offset + oc)..<(p * ld + ld)].allSatisfy(\.isNaN))
                    }
                }
            }
        }
    }

    func testBlockedMaxPoolingOddChannelsAndBorders() {
        func naive(_ x: [Float], _ g: ConvGeometry, ceilMode: Bool) -> [Float] {
            let shape = PoolKernels.outputShape(g, ceilMode: ceilMode)
            let (oh, ow, c) = (shape[1], shape[2], g.inputChannels)
            var out = [Float](repeating: 0, count: shape.reduce(1, *))
            for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
                var best = -Float.infinity
                for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                    let iy = oy * g.strideH - g.padTop + ky * g.dilationH, ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                    if iy < 0 || iy >= g.inputHeight || ix < 0 || ix >= g.inputWidth { continue }
                    best = max(best, x[((n * g.inputHeight + iy) * g.inputWidth + ix) * c + ch])
                } }
                out[((n * oh + oy) * ow + ox) * c + ch] = best
            } } } }
            return out
        }
        let cases: [(ConvGeometry, Bool)] = [
            // SqueezeNet: 3×3/2 ceil mode, channels 32 + 8 + 5 and 64 + 7.
            (ConvGeometry(batch: 2, inputHeight: 11, inputWidth: 13, inputChannels: 45, outputChannels: 45, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2), true),
            (ConvGeometry(batch: 1, inputHeight: 10, inputWidth: 9, inputChannels: 71, outputChannels: 71, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), true),
            (ConvGeometry(batch: 1, inputHeight: 9, inputWidth: 8, inputChannels: 8, outputChannels: 8, kernelHeight: 3,
                          kernelWidth: 2, strideH: 1, strideW: 2, dilationH: 2, dilationW: 1, padTop: 2, padLeft: 1,
                          padBottom: 1, padRight: 0), false),
            // More taps than the blocked kernel keeps (falls back).
            (ConvGeometry(batch: 1, inputHeight: 9, inputWidth: 9, inputChannels: 10, outputChannels: 10, kernelHeight: 9,
                          kernelWidth: 9), false),
        ]
        for (index, (g, ceilMode)) in cases.enumerated() {
            let x = randomFloats(g.inputShape.reduce(1, *), seed: UInt64(800 + index), range: -5...5)
            let count = PoolKernels.outputShape(g, ceilMode: ceilMode).reduce(1, *)
            let want = naive(x, g, ceilMode: ceilMode)
            forEachInstructionSet { level in
                var y = [Float](repeating: .nan, count: count)
                PoolKernels.maxPool2d(input: x, output: &y, geometry: g, ceilMode: ceilMode)
                XCTAssertEqual(y, want, "case \(index) level \(level)")
            }
        }
    }
}
