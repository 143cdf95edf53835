import LiteCNNTensor
import XCTest

/// `PoolKernels` against naive loops over odd shapes, floor and ceil mode, at every instruction-set level.
final class PoolKernelTests: XCTestCase {
    private func naive(_ x: [Float], _ g: ConvGeometry, ceilMode: Bool, max isMax: Bool, countIncludePad: Bool) -> [Float] {
        let shape = PoolKernels.outputShape(g, ceilMode: ceilMode)
        let (oh, ow, c) = (shape[1], shape[2], g.inputChannels)
        var out = [Float](repeating: 0, count: shape.reduce(1, *))
        for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow { for ch in 0..<c {
            var best = -Float.infinity, sum: Float = 0, valid = 0, padded = 0
            for ky in 0..<g.kernelHeight { for kx in 0..<g.kernelWidth {
                let iy = oy * g.strideH - g.padTop + ky * g.dilationH, ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                if iy < g.inputHeight + g.padBottom && ix < g.inputWidth + g.padRight { padded += 1 }
                if iy < 0 || iy >= g.inputHeight || ix < 0 || ix >= g.inputWidth { continue }
                let v = x[((n * g.inputHeight + iy) * g.inputWidth + ix) * c + ch]
                best = max(best, v); sum += v; valid += 1
            } }
            out[((n * oh + oy) * ow + ox) * c + ch] = isMax ? best : sum / Float(countIncludePad ? padded : valid)
        } } } }
        return out
    }

    func testOutputSizeRule() {
        // PyTorch: MaxPool2d(3, 2, padding=1) on 112 → 56; ceil mode on 7 with k3 s2 → 3; ceil drop rule.
        XCTAssertEqual(PoolKernels.outputSize(input: 112, kernel: 3, stride: 2, padBegin: 1, padEnd: 1, ceilMode: false), 56)
        XCTAssertEqual(PoolKernels.outputSize(input: 8, kernel: 3, stride: 2, padBegin: 0, padEnd: 0, ceilMode: true), 4)
        XCTAssertEqual(PoolKernels.outputSize(input: 8, kernel: 3, stride: 2, padBegin: 0, padEnd: 0, ceilMode: false), 3)
        XCTAssertEqual(PoolKernels.outputSize(input: 5, kernel: 2, stride: 2, padBegin: 1, padEnd: 1, ceilMode: true), 3)
        XCTAssertEqual(PoolKernels.outputSize(input: 2, kernel: 5, stride: 1, padBegin: 0, padEnd: 0, ceilMode: false), 0)
    }

    func testMaxAndAveragePooling() {
        let cases: [(ConvGeometry, Bool)] = [
            (ConvGeometry(batch: 2, inputHeight: 13, inputWidth: 11, inputChannels: 19, outputChannels: 19, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), false),
            (ConvGeometry(batch: 1, inputHeight: 8, inputWidth: 9, inputChannels: 33, outputChannels: 33, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2), true),  // ShuffleNet/GoogLeNet-style ceil mode
            (ConvGeometry(batch: 1, inputHeight: 7, inputWidth: 5, inputChannels: 5, outputChannels: 5, kernelHeight: 2,
                          kernelWidth: 3, strideH: 2, strideW: 1, padTop: 1, padLeft: 1, padBottom: 1, padRight: 0), true),
            (ConvGeometry(batch: 1, inputHeight: 1, inputWidth: 1, inputChannels: 3, outputChannels: 3, kernelHeight: 1,
                          kernelWidth: 1), false),
            // More than one 64-channel block, the second ending inside its third vector (SqueezeNet-like, ceil mode).
            (ConvGeometry(batch: 2, inputHeight: 9, inputWidth: 7, inputChannels: 100, outputChannels: 100, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2), true),
            // Channels in whole vectors take the fixed-window loop for interior columns: ResNet's stem pool (padding 1),
            // two 64-channel blocks with ceil mode, dilation, a 5×5 window wider than the border, a stride longer than
            // the window (columns no window reads).
            (ConvGeometry(batch: 1, inputHeight: 11, inputWidth: 13, inputChannels: 64, outputChannels: 64, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2, padTop: 1, padLeft: 1, padBottom: 1, padRight: 1), false),
            (ConvGeometry(batch: 2, inputHeight: 8, inputWidth: 15, inputChannels: 128, outputChannels: 128, kernelHeight: 3,
                          kernelWidth: 3, strideH: 2, strideW: 2), true),
            (ConvGeometry(batch: 2, inputHeight: 10, inputWidth: 9, inputChannels: 32, outputChannels: 32, kernelHeight: 3,
                          kernelWidth: 3, dilationH: 2, dilationW: 2, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2), false),
            (ConvGeometry(batch: 1, inputHeight: 9, inputWidth: 12, inputChannels: 48, outputChannels: 48, kernelHeight: 5,
                          kernelWidth: 5, padTop: 2, padLeft: 2, padBottom: 2, padRight: 2), false),
            (ConvGeometry(batch: 1, inputHeight: 10, inputWidth: 11, inputChannels: 16, outputChannels: 16, kernelHeight: 2,
                          kernelWidth: 2, strideH: 3, strideW: 3), true),
        ]
        for (index, (g, ceilMode)) in cases.enumerated() {
            let x = randomFloats(g.inputShape.reduce(1, *), seed: UInt64(700 + index), range: -5...5)
            let count = PoolKernels.outputShape(g, ceilMode: ceilMode).reduce(1, *)
            forEachInstructionSet { level in
                var y = [Float](repeating: .nan, count: count)
                PoolKernels.maxPool2d(input: x, output: &y, geometry: g, ceilMode: ceilMode)
                XCTAssertEqual(y, naive(x, g, ceilMode: ceilMode, max: true, countIncludePad: false), "max \(g) level \(level)")
                for include in [false, true] {
                    var a = [Float](repeating: .nan, count: count)
                    PoolKernels.avgPool2d(input: x, output: &a, geometry: g, ceilMode: ceilMode, countIncludePad: include)
                    assertClose(a, naive(x, g, ceilMode: ceilMode, max: false, countIncludePad: include), depth: 9,
                                "avg include \(include) \(g) ceil \(ceilMode) level \(level)")
                }
            }
        }
    }

    func testGlobalAveragePool() {
        let (n, h, w, c) = (3, 7, 5, 37)
        let x = randomFloats(n * h * w * c, seed: 800)
        var expected = [Float](repeating: 0, count: n * c)
        for i in 0..<n { for p in 0..<(h * w) { for ch in 0..<c { expected[i * c + ch] += x[(i * h * w + p) * c + ch] } } }
        expected = expected.map { $0 / Float(h * w) }
        forEachInstructionSet { level in
            var y = [Float](repeating: .nan, count: n * c)
            PoolKernels.globalAveragePool(input: x, output: &y, batch: n, height: h, width: w, channels: c)
            assertClose(y, expected, depth: h * w, "global average pool level \(level)")
        }
    }
}
