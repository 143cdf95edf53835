import Foundation
import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class LossTests: XCTestCase {
    func testSoftmaxIsStableAndNormalized() {
        let x = Tensor(shape: [2, 3], scalars: [1000, 1001, 1002, -1000, 0, 1000])
        let y = Softmax().forward(x)
        XCTAssertFalse(y.scalars.contains { $0.isNaN })
        let e: [Float] = [exp(-2), exp(-1), 1]
        let total = e.reduce(0, +)
        XCTAssertEqual(y[0, 0], e[0] / total, accuracy: 1e-6)
        XCTAssertEqual(y[0, 2], e[2] / total, accuracy: 1e-6)
        XCTAssertEqual(y[1, 2], 1, accuracy: 1e-6)
        XCTAssertEqual(y[1, 0], 0)
    }

    func testSoftmaxGradient() {
        checkGradients(Softmax(), input: randomTensor([3, 5], seed: 101, range: -2...2))
        checkGradients(Softmax(), input: randomTensor([1, 2, 2, 4], seed: 102))
    }

    /// Reference in double precision: L = mean_n Σ_k −q_k log softmax(x_n)_k, q = (1 − ε)·onehot + ε/K.
    func referenceLoss(_ logits: [Double], classes: Int, labels: [Int], smoothing: Double) -> Double {
        var total = 0.0
        for (n, label) in labels.enumerated() {
            let row = Array(logits[(n * classes)..<((n + 1) * classes)])
            let largest = row.max()!
            let logSum = largest + log(row.map { exp($0 - largest) }.reduce(0, +))
            for k in 0..<classes {
                let q = (k == label ? 1 - smoothing : 0) + smoothing / Double(classes)
                total -= q * (row[k] - logSum)
            }
        }
        return total / Double(labels.count)
    }

    func testLossAndGradientAgainstFiniteDifferences() {
        for smoothing in [Float(0), 0.1, 0.3] {
            let logits = randomTensor([4, 6], seed: 103, range: -3...3)
            let labels = [0, 5, 2, 2]
            let criterion = SoftmaxCrossEntropy(labelSmoothing: smoothing)
            let value = criterion.loss(logits: logits, labels: labels)
            let gradient = criterion.gradient()
            let asDouble = logits.scalars.map(Double.init)
            XCTAssertEqual(Double(value), referenceLoss(asDouble, classes: 6, labels: labels, smoothing: Double(smoothing)),
                           accuracy: 1e-5, "loss with smoothing \(smoothing)")
            let h = 1e-3
            for i in 0..<logits.count {
                var plus = asDouble, minus = asDouble
                plus[i] += h
                minus[i] -= h
                let numeric = (referenceLoss(plus, classes: 6, labels: labels, smoothing: Double(smoothing))
                    - referenceLoss(minus, classes: 6, labels: labels, smoothing: Double(smoothing))) / (2 * h)
                XCTAssertEqual(Double(gradient.scalars[i]), numeric, accuracy: 1e-5, "∂L/∂logit[\(i)], smoothing \(smoothing)")
            }
            // Each row of (softmax − q)/N sums to zero.
            for n in 0..<4 {
                XCTAssertEqual(gradient.scalars[(n * 6)..<((n + 1) * 6)].reduce(0, +), 0, accuracy: 1e-6)
            }
        }
    }

    func testKnownValues() {
        // Uniform logits: L = log K for any label; with smoothing too.
        let criterion = SoftmaxCrossEntropy(labelSmoothing: 0.2)
        XCTAssertEqual(criterion.loss(logits: Tensor(shape: [2, 4], repeating: 0.5), labels: [1, 3]), log(4), accuracy: 1e-6)
        // Extreme logits stay finite.
        let confident = SoftmaxCrossEntropy()
        let value = confident.loss(logits: Tensor(shape: [1, 2], scalars: [500, -500]), labels: [1])
        XCTAssertEqual(value, 1000, accuracy: 1e-2)
        XCTAssertEqual(confident.gradient().scalars, [1, -1])
    }
}
