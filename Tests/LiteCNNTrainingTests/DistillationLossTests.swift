// Hinton et al.'s distillation loss: value and student gradient against PyTorch (fixture by
// scripts/make_training_goldens.py), against finite differences, and its limiting cases.
import Foundation
import LiteCNN
import _TestSupport
import XCTest

final class DistillationLossTests: XCTestCase {
    func testLossAndGradientMatchPyTorch() throws {
        let golden = try Fixture.object("distillation_golden.json")
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 3)
        for testCase in cases {
            let criterion = DistillationLoss(temperature: try Fixture.float(testCase["temperature"]),
                                             alpha: try Fixture.float(testCase["alpha"]),
                                             labelSmoothing: try Fixture.float(testCase["label_smoothing"]))
            let loss = criterion.loss(studentLogits: try Fixture.tensor(testCase["student"], "student"),
                                      teacherLogits: try Fixture.tensor(testCase["teacher"], "teacher"),
                                      labels: try XCTUnwrap(testCase["labels"] as? [Int]))
            let expected = try XCTUnwrap(testCase["loss"] as? Double)
            let name = "T=\(criterion.temperature) alpha=\(criterion.alpha)"
            XCTAssertEqual(Double(loss), expected, accuracy: 2e-6 * max(1, abs(expected)), name)
            assertClose(criterion.gradient(), try Fixture.tensor(testCase["gradient"], "gradient"), tolerance: 2e-6, name)
        }
    }

    func testGradientMatchesFiniteDifferences() {
        let student = randomTensor([3, 7], seed: 11, range: -3...3)
        let teacher = randomTensor([3, 7], seed: 12, range: -5...5)
        let labels = [6, 0, 3]
        for (temperature, alpha, smoothing) in [(Float(4), Float(0.9), Float(0.1)), (2, 0.5, 0), (1, 1, 0)] {
            let criterion = DistillationLoss(temperature: temperature, alpha: alpha, labelSmoothing: smoothing)
            _ = criterion.loss(studentLogits: student, teacherLogits: teacher, labels: labels)
            let analytic = criterion.gradient()
            let h: Float = 1e-2
            for i in 0..<student.count {
                var plus = student, minus = student
                plus.scalars[i] += h
                minus.scalars[i] -= h
                let numeric = (Double(criterion.loss(studentLogits: plus, teacherLogits: teacher, labels: labels))
                    - Double(criterion.loss(studentLogits: minus, teacherLogits: teacher, labels: labels))) / Double(2 * h)
                XCTAssertEqual(Double(analytic.scalars[i]), numeric, accuracy: 1e-3,
                               "T=\(temperature) alpha=\(alpha): ∂L/∂s[\(i)]")
            }
        }
    }

    func testLimitingCases() {
        let student = randomTensor([4, 5], seed: 21, range: -2...2)
        let labels = [0, 1, 2, 4]
        // alpha = 0: plain (label-smoothed) cross-entropy.
        let hardOnly = DistillationLoss(temperature: 3, alpha: 0, labelSmoothing: 0.1)
        let crossEntropy = SoftmaxCrossEntropy(labelSmoothing: 0.1)
        let reference = crossEntropy.loss(logits: student, labels: labels)
        XCTAssertEqual(hardOnly.loss(studentLogits: student, teacherLogits: randomTensor([4, 5], seed: 22), labels: labels),
                       reference, accuracy: 1e-6)
        assertClose(hardOnly.gradient(), crossEntropy.gradient(), tolerance: 1e-7, "alpha = 0 gradient")
        // Teacher = student: the KL term and its gradient vanish, leaving (1 − alpha)·CE.
        let same = DistillationLoss(temperature: 4, alpha: 0.75)
        let loss = same.loss(studentLogits: student, teacherLogits: student, labels: labels)
        XCTAssertEqual(same.lastDistillationTerm, 0, accuracy: 1e-6)
        XCTAssertEqual(loss, 0.25 * SoftmaxCrossEntropy().loss(logits: student, labels: labels), accuracy: 1e-6)
        // A shift of the teacher's logits by a constant changes nothing (softmax invariance).
        let soft = DistillationLoss(temperature: 2, alpha: 1)
        let teacher = randomTensor([4, 5], seed: 23, range: -4...4)
        let base = soft.loss(studentLogits: student, teacherLogits: teacher, labels: labels)
        XCTAssertGreaterThan(base, 0, "KL of different distributions is positive")
        let shifted = Tensor(shape: teacher.shape, scalars: teacher.scalars.map { $0 + 30 })
        XCTAssertEqual(soft.loss(studentLogits: student, teacherLogits: shifted, labels: labels), base, accuracy: 1e-5)
    }
}
