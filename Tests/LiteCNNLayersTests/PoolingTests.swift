import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// Pooling: PyTorch's output-size rules, window divisors, tie routing, and gradient checks.
final class PoolingTests: XCTestCase {
    // MARK: Shapes

    func testOutputSizesFollowPyTorch() {
        // floor((7 + 2 − 3)/2) + 1 = 4
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 2, padding: 1).outputShape(for: [1, 7, 7, 2]), [1, 4, 4, 2])
        // ResNet/ShuffleNet stem: 112 → 56
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 2, padding: 1).outputShape(for: [1, 112, 112, 1]), [1, 56, 56, 1])
        // SqueezeNet-style ceil mode (kernel 3, stride 2): 111 → 55, 54 → 27 (floor mode: 26).
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true).outputShape(for: [1, 111, 111, 1]), [1, 55, 55, 1])
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true).outputShape(for: [1, 54, 54, 1]), [1, 27, 27, 1])
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: false).outputShape(for: [1, 54, 54, 1]), [1, 26, 26, 1])
        // Ceil mode: a last window starting beyond input + left padding is dropped:
        // input 5, kernel 3, stride 3, padding 1 → ⌈4/3⌉ + 1 = 3, but window 2 would start at 6 − 1 = 5 ≥ 5 → 2.
        XCTAssertEqual(MaxPool2D(kernelSize: 3, stride: 3, padding: 1, ceilMode: true).outputShape(for: [1, 5, 5, 1]),
                       [1, 2, 2, 1])
        XCTAssertEqual(AvgPool2D(kernelSize: 2, stride: 2, padding: 1, ceilMode: true).outputShape(for: [1, 3, 4, 1]),
                       [1, 2, 3, 1])
        XCTAssertEqual(MaxPool2D(kernelSize: 2).stride, 2)
        XCTAssertEqual(AdaptiveAvgPool2D(outputSize: (6, 6)).outputShape(for: [2, 13, 13, 5]), [2, 6, 6, 5])
        XCTAssertEqual(GlobalAvgPool().outputShape(for: [2, 7, 7, 5]), [2, 5])
    }

    // MARK: Values

    /// 1×6 row 1…6, kernel 3, stride 2, padding 1, ceil mode: windows cover columns [−1, 2), [1, 4), [3, 6) and
    /// [5, 7) (clipped at the right padding), rows [−1, 2).
    func testAveragePoolDivisorsWithAndWithoutPadding() {
        let x = nhwc(1, 1, 6, 1, [1, 2, 3, 4, 5, 6])
        let including = AvgPool2D(kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: true)
        XCTAssertEqual(including.forward(x).shape, [1, 1, 4, 1])
        assertClose(including.forward(x), nhwc(1, 1, 4, 1, [3.0 / 9, 9.0 / 9, 15.0 / 9, 6.0 / 6]), absolute: 1e-6)
        let excluding = AvgPool2D(kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false)
        assertClose(excluding.forward(x), nhwc(1, 1, 4, 1, [1.5, 3, 5, 6]), absolute: 1e-6)
    }

    func testMaxPoolValuesIgnorePadding() {
        // All negative: padding must not win the max.
        let x = nhwc(1, 2, 2, 1, [-1, -2, -3, -4])
        let y = MaxPool2D(kernelSize: 3, stride: 1, padding: 1).forward(x)
        XCTAssertEqual(y.scalars, [-1, -1, -1, -1])
    }

    func testMaxPoolRoutesTiesToTheFirstMaximum() {
        let pool = MaxPool2D(kernelSize: 2, stride: 1)
        pool.train()
        // 2×3, channels 2: channel 0 all equal; channel 1 has its max twice at (0, 1) and (1, 1).
        let x = nhwc(1, 2, 3, 2, [5, 0, 5, 9, 5, 1, 5, 2, 5, 9, 5, 3])
        let y = pool.forward(x)
        XCTAssertEqual(y.scalars, [5, 9, 5, 9])
        let dx = pool.backward(nhwc(1, 1, 2, 2, [1, 10, 100, 1000]))
        // Channel 0: window 0 → (0, 0), window 1 → (0, 1). Channel 1: both windows → (0, 1) (row-major first).
        XCTAssertEqual(dx.scalars, [1, 0, 100, 1010, 0, 0, 0, 0, 0, 0, 0, 0])
    }

    func testAdaptiveBinsOverlapWhenSizesDoNotDivide() {
        // 5 → 3 bins: [0, 2), [1, 4), [3, 5).
        let x = nhwc(1, 1, 5, 1, [1, 2, 3, 4, 5])
        let y = AdaptiveAvgPool2D(outputSize: (1, 3)).forward(x)
        assertClose(y, nhwc(1, 1, 3, 1, [1.5, 3, 4.5]), absolute: 1e-6)
    }

    func testGlobalAverage() {
        let x = randomTensor([2, 3, 4, 5], seed: 51)
        let y = GlobalAvgPool().forward(x)
        XCTAssertEqual(y.shape, [2, 5])
        for b in 0..<2 { for c in 0..<5 {
            var sum: Float = 0
            for i in 0..<3 { for j in 0..<4 { sum += x[b, i, j, c] } }
            XCTAssertEqual(y[b, c], sum / 12, accuracy: 1e-6)
        } }
    }

    func testMaxPoolTrainingAndInferenceAgree() {
        let pool = MaxPool2D(kernelSize: 3, stride: 2, padding: 1, ceilMode: true)
        let x = randomTensor([2, 9, 8, 5], seed: 61)
        pool.eval()
        let inference = pool.forward(x)
        pool.train()
        XCTAssertEqual(pool.forward(x), inference)
    }

    // MARK: Gradients

    func testMaxPoolGradients() {
        checkGradients(MaxPool2D(kernelSize: 3, stride: 2, padding: 1), input: spacedTensor([2, 7, 7, 3], seed: 52))
        checkGradients(MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true), input: spacedTensor([2, 8, 6, 2], seed: 53))
        checkGradients(MaxPool2D(kernelSize: 2), input: spacedTensor([1, 5, 4, 3], seed: 54))
    }

    func testAvgPoolGradients() {
        checkGradients(AvgPool2D(kernelSize: 3, stride: 2, padding: 1), input: randomTensor([2, 7, 6, 3], seed: 55))
        checkGradients(AvgPool2D(kernelSize: 3, stride: 2, padding: 1, ceilMode: true, countIncludePad: false),
                       input: randomTensor([2, 6, 8, 2], seed: 56))
        checkGradients(AvgPool2D(kernelSize: 2, ceilMode: true), input: randomTensor([1, 5, 5, 2], seed: 57))
    }

    func testAdaptiveAndGlobalGradients() {
        checkGradients(AdaptiveAvgPool2D(outputSize: (3, 2)), input: randomTensor([2, 7, 5, 3], seed: 58))
        checkGradients(AdaptiveAvgPool2D(outputSize: (4, 4)), input: randomTensor([1, 6, 9, 2], seed: 59))
        checkGradients(GlobalAvgPool(), input: randomTensor([2, 3, 5, 4], seed: 60))
    }
}
