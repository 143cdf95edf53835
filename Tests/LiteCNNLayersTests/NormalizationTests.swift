import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

/// BatchNorm2D: training gradient, running statistics, inference with running statistics, names.
final class NormalizationTests: XCTestCase {
    func testTrainingGradient() {
        let bn = BatchNorm2D(4)
        bn.weight.value = randomTensor([4], seed: 31, range: 0.5...1.5)
        bn.bias.value = randomTensor([4], seed: 32)
        checkGradients(bn, input: randomTensor([2, 3, 3, 4], seed: 33), tolerance: 5e-3)
        // 27 channels: the 16-wide, 8-wide and scalar channel blocks of the statistics loops.
        let wide = BatchNorm2D(27)
        wide.weight.value = randomTensor([27], seed: 39, range: 0.5...1.5)
        checkGradients(wide, input: randomTensor([2, 2, 3, 27], seed: 40), tolerance: 5e-3, samples: 80)
    }

    /// Frozen statistics: the output is the inference output, the running statistics do not move, and the gradient
    /// (input, γ, β) is that of the affine map the running statistics define.
    func testFrozenStatisticsGradientAndOutput() {
        let bn = BatchNorm2D(27)
        bn.weight.value = randomTensor([27], seed: 41, range: 0.5...1.5)
        bn.bias.value = randomTensor([27], seed: 42)
        bn.runningMean.value = randomTensor([27], seed: 43)
        bn.runningVariance.value = randomTensor([27], seed: 44, range: 0.5...2)
        let x = randomTensor([2, 2, 3, 27], seed: 45, range: -2...3)
        bn.eval()
        let inference = bn.forward(x)
        bn.freezesStatistics = true
        bn.train()
        let frozen = bn.forward(x)
        XCTAssertEqual(frozen.scalars, inference.scalars)
        let mean = bn.runningMean.value.scalars, variance = bn.runningVariance.value.scalars
        checkGradients(bn, input: x, tolerance: 5e-3, samples: 80)
        XCTAssertEqual(bn.runningMean.value.scalars, mean)
        XCTAssertEqual(bn.runningVariance.value.scalars, variance)
        // dx = γ/√(var + ε)·dy exactly: no batch-statistics terms.
        let dy = randomTensor(x.shape, seed: 46)
        _ = bn.forward(x)
        let dx = bn.backward(dy)
        for i in [0, 5, 26, 27 + 13, dx.count - 1] {
            let c = i % 27
            let expected = bn.weight.value.scalars[c] / (variance[c] + bn.epsilon).squareRoot() * dy.scalars[i]
            XCTAssertEqual(dx.scalars[i], expected, accuracy: 1e-5 * max(1, abs(expected)))
        }
    }

    /// Per-channel mean and biased variance of rows of an `[M, C]` matrix, in double precision.
    func statistics(_ x: Tensor, channels: Int) -> (mean: [Double], biased: [Double]) {
        let rows = x.count / channels
        var mean = [Double](repeating: 0, count: channels), variance = mean
        for r in 0..<rows { for c in 0..<channels { mean[c] += Double(x.scalars[r * channels + c]) / Double(rows) } }
        for r in 0..<rows { for c in 0..<channels {
            let d = Double(x.scalars[r * channels + c]) - mean[c]
            variance[c] += d * d / Double(rows)
        } }
        return (mean, variance)
    }

    func testRunningStatisticsAfterTwoTrainingSteps() {
        let channels = 27  // 16 + 8 + 3: every channel-block width of the statistics loops
        let bn = BatchNorm2D(channels, momentum: 0.1)
        bn.train()
        let first = randomTensor([2, 4, 5, channels], seed: 34, range: 1...5)
        let second = randomTensor([3, 2, 2, channels], seed: 35, range: -2...0)
        _ = bn.forward(first)
        _ = bn.forward(second)
        var runningMean = [Double](repeating: 0, count: channels), runningVar = [Double](repeating: 1, count: channels)
        for x in [first, second] {
            let m = Double(x.count / channels)
            let (mean, biased) = statistics(x, channels: channels)
            for c in 0..<channels {
                runningMean[c] = 0.9 * runningMean[c] + 0.1 * mean[c]
                runningVar[c] = 0.9 * runningVar[c] + 0.1 * biased[c] * m / (m - 1)
            }
        }
        for c in 0..<channels {
            XCTAssertEqual(Double(bn.runningMean.value.scalars[c]), runningMean[c], accuracy: 1e-5, "running_mean[\(c)]")
            XCTAssertEqual(Double(bn.runningVariance.value.scalars[c]), runningVar[c], accuracy: 1e-5, "running_var[\(c)]")
        }
    }

    func testTrainingNormalizesWithBiasedBatchVariance() {
        let bn = BatchNorm2D(2, epsilon: 1e-5)
        bn.weight.value = Tensor(shape: [2], scalars: [2, 0.5])
        bn.bias.value = Tensor(shape: [2], scalars: [1, -1])
        bn.train()
        // Channel 0 holds 1, 2, 3, 4 (mean 2.5, biased variance 1.25); channel 1 holds 10 four times.
        let x = nhwc(1, 2, 2, 2, [1, 10, 2, 10, 3, 10, 4, 10])
        let y = bn.forward(x)
        for (i, v) in [Float(1), 2, 3, 4].enumerated() {
            XCTAssertEqual(y.scalars[2 * i], 2 * (v - 2.5) / (1.25 + 1e-5).squareRoot() + 1, accuracy: 1e-5)
            XCTAssertEqual(y.scalars[2 * i + 1], -1, accuracy: 1e-5)
        }
    }

    func testLargeMeanDoesNotCancelVariance() {
        let bn = BatchNorm2D(1)
        bn.train()
        // Values 1000 + {0, 0.01, …}: a naive Σx² − (Σx)² in float32 would lose the variance completely.
        let values = (0..<256).map { 1000 + Float($0 % 16) * 0.01 }
        let x = Tensor(shape: [4, 8, 8, 1], scalars: values)
        let inputVariance = statistics(x, channels: 1).biased[0]
        let (mean, variance) = statistics(bn.forward(x), channels: 1)
        XCTAssertEqual(mean[0], 0, accuracy: 1e-3)
        // y = (x − μ)/√(σ² + ε) has variance σ²/(σ² + ε).
        XCTAssertEqual(variance[0], inputVariance / (inputVariance + 1e-5), accuracy: 1e-3)
    }

    func testInferenceUsesRunningStatistics() {
        let bn = BatchNorm2D(2, epsilon: 1e-3)
        bn.runningMean.value = Tensor(shape: [2], scalars: [1, -2])
        bn.runningVariance.value = Tensor(shape: [2], scalars: [4, 0.25])
        bn.weight.value = Tensor(shape: [2], scalars: [3, 1])
        bn.bias.value = Tensor(shape: [2], scalars: [0.5, 0])
        bn.eval()
        let x = randomTensor([2, 3, 3, 2], seed: 36)
        let y = bn.forward(x)
        for i in 0..<x.count {
            let c = i % 2
            let expected = c == 0 ? 3 * (x.scalars[i] - 1) / (4 + 1e-3).squareRoot() + 0.5
                                  : (x.scalars[i] + 2) / (0.25 + 1e-3).squareRoot()
            XCTAssertEqual(y.scalars[i], expected, accuracy: 1e-5)
        }
        // Inference leaves the running statistics alone.
        XCTAssertEqual(bn.runningMean.value.scalars, [1, -2])
        XCTAssertEqual(bn.runningVariance.value.scalars, [4, 0.25])
    }

    func testParameterNamesAndKinds() {
        let bn = BatchNorm2D(5)
        XCTAssertEqual(bn.namedParameters().map(\.name), ["weight", "bias", "running_mean", "running_var"])
        XCTAssertEqual(bn.namedParameters().map(\.parameter.kind), [.weight, .weight, .buffer, .buffer])
        XCTAssertEqual(bn.parameterCount, 10)
        XCTAssertEqual(bn.weight.value.scalars, [Float](repeating: 1, count: 5))
        XCTAssertEqual(bn.runningVariance.value.scalars, [Float](repeating: 1, count: 5))
    }

    func testGradientAccumulatesAcrossBackwardCalls() {
        let bn = BatchNorm2D(3)
        bn.train()
        let x = randomTensor([2, 2, 2, 3], seed: 37)
        let dy = randomTensor([2, 2, 2, 3], seed: 38)
        bn.zeroGradients()
        _ = bn.forward(x)
        _ = bn.backward(dy)
        let once = bn.weight.gradient
        _ = bn.forward(x)
        _ = bn.backward(dy)
        assertClose(bn.weight.gradient, once.scaled(by: 2), absolute: 1e-6, relative: 1e-6, "accumulated dγ")
    }
}
