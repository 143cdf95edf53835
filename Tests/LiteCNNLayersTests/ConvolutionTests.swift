import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// Conv2D: gradient checks over the geometries the model zoo uses, and forward values against a direct sum.
final class ConvolutionTests: XCTestCase {
    func testPlainConvolutionGradient() {
        checkGradients(Conv2D(3, 4, kernelSize: 3, padding: 1), input: randomTensor([2, 5, 5, 3], seed: 1))
    }

    func testGroupedConvolutionGradient() {
        checkGradients(Conv2D(6, 9, kernelSize: 3, padding: 1, groups: 3), input: randomTensor([2, 4, 5, 6], seed: 2))
    }

    func testDepthwiseConvolutionGradient() {
        checkGradients(Conv2D(4, 4, kernelSize: 3, stride: 2, padding: 1, groups: 4), input: randomTensor([2, 7, 7, 4], seed: 3))
    }

    func testDepthwiseWithChannelMultiplierGradient() {
        checkGradients(Conv2D(3, 6, kernelSize: 5, padding: 2, groups: 3), input: randomTensor([1, 6, 6, 3], seed: 4))
    }

    func testDilatedConvolutionGradient() {
        checkGradients(Conv2D(2, 3, kernelSize: 3, padding: 2, dilation: 2), input: randomTensor([2, 7, 6, 2], seed: 5))
    }

    func testAsymmetricPaddingGradient() {
        let conv = Conv2D(inputChannels: 3, outputChannels: 2, kernelSize: (3, 3), stride: (2, 2),
                          padding: Padding2D(top: 0, left: 1, bottom: 1, right: 0))
        checkGradients(conv, input: randomTensor([2, 7, 7, 3], seed: 6))
    }

    func testStrideTwoOnOddSizesGradient() {
        checkGradients(Conv2D(3, 5, kernelSize: 3, stride: 2, padding: 1), input: randomTensor([2, 9, 7, 3], seed: 7))
    }

    func testOneByKAndKByOneGradients() {
        let wide = Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: (1, 3), padding: .symmetric(0, 1))
        checkGradients(wide, input: randomTensor([2, 4, 6, 3], seed: 8))
        let tall = Conv2D(inputChannels: 3, outputChannels: 4, kernelSize: (3, 1), stride: (2, 1), padding: .symmetric(1, 0))
        checkGradients(tall, input: randomTensor([2, 7, 4, 3], seed: 9))
    }

    func testPointwiseWithoutBiasGradient() {
        let conv = Conv2D(8, 5, kernelSize: 1, bias: false)
        XCTAssertEqual(conv.namedParameters().map(\.name), ["weight"])
        checkGradients(conv, input: randomTensor([2, 3, 3, 8], seed: 10))
    }

    /// Forward against a direct six-fold sum over PyTorch's definition.
    func testForwardMatchesDirectSum() {
        let conv = Conv2D(inputChannels: 4, outputChannels: 6, kernelSize: (3, 2), stride: (2, 1),
                          padding: Padding2D(top: 1, left: 0, bottom: 2, right: 1), dilation: (1, 2), groups: 2)
        let x = randomTensor([2, 6, 5, 4], seed: 11)
        let y = conv.forward(x)
        let g = conv.geometry(for: x.shape)
        XCTAssertEqual(y.shape, [2, g.outputHeight, g.outputWidth, 6])
        var expected = Tensor(shape: y.shape)
        for b in 0..<2 { for oy in 0..<g.outputHeight { for ox in 0..<g.outputWidth { for o in 0..<6 {
            let group = o / 3
            var sum = conv.bias!.value[o]
            for i in 0..<2 { for ky in 0..<3 { for kx in 0..<2 {
                let iy = oy * 2 - 1 + ky, ix = ox - 0 + kx * 2
                guard iy >= 0 && iy < 6 && ix >= 0 && ix < 5 else { continue }
                sum += conv.weight.value[o, i, ky, kx] * x[b, iy, ix, group * 2 + i]
            } } }
            expected[b, oy, ox, o] = sum
        } } } }
        assertClose(y, expected, absolute: 1e-5, relative: 1e-5, "grouped dilated conv")
    }
}
