// Learning-rate schedules against torch.optim.lr_scheduler (fixture by scripts/make_training_goldens.py), warm-up,
// fractional exponential periods and the name-based factory.
import Foundation
import LiteCNN
import _TestSupport
import XCTest

final class ScheduleTests: XCTestCase {
    func testSchedulesMatchTorchLRSchedulers() throws {
        let golden = try Fixture.object("schedule_goldens.json")
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 5)
        for testCase in cases {
            let kind = try XCTUnwrap(testCase["schedule"] as? String)
            let initial = try Fixture.float(testCase["initial"])
            let stepsPerEpoch = try XCTUnwrap(testCase["steps_per_epoch"] as? Int)
            let totalSteps = try XCTUnwrap(testCase["total_steps"] as? Int)
            let expected = try XCTUnwrap(testCase["rates"] as? [Double])
            XCTAssertEqual(expected.count, totalSteps)
            let schedule: any LearningRateSchedule
            switch kind {
            case "step":
                schedule = StepSchedule(initial: initial, stepEpochs: try XCTUnwrap(testCase["step_epochs"] as? Int),
                                        gamma: try Fixture.float(testCase["gamma"]))
            case "exponential":
                schedule = ExponentialSchedule(initial: initial, gamma: try Fixture.float(testCase["gamma"]),
                                               everyEpochs: try XCTUnwrap(testCase["every_epochs"] as? Double))
            case "cosine":
                schedule = CosineSchedule(initial: initial, minimum: try Fixture.float(testCase["minimum"]))
            case "linear":
                schedule = LinearDecaySchedule(initial: initial, final: try Fixture.float(testCase["final"]))
            default:
                throw Fixture.Missing(what: "schedule \(kind)")
            }
            for step in 0..<totalSteps {
                let rate = schedule.learningRate(step: step, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
                XCTAssertEqual(Double(rate), expected[step], accuracy: 1e-6 * expected[step] + 1e-9, "\(kind) step \(step)")
            }
        }
    }

    func testLinearDecayEndpointsAndConstant() {
        let linear = LinearDecaySchedule(initial: 0.04, final: 0)
        XCTAssertEqual(linear.learningRate(step: 0, stepsPerEpoch: 10, totalSteps: 101), 0.04)
        XCTAssertEqual(linear.learningRate(step: 50, stepsPerEpoch: 10, totalSteps: 101), 0.02, accuracy: 1e-9)
        XCTAssertEqual(linear.learningRate(step: 100, stepsPerEpoch: 10, totalSteps: 101), 0)
        XCTAssertEqual(linear.learningRate(step: 500, stepsPerEpoch: 10, totalSteps: 101), 0, "past the end: final")
        XCTAssertEqual(linear.learningRate(step: 0, stepsPerEpoch: 1, totalSteps: 1), 0.04, "a one-step run")
        XCTAssertEqual(ConstantSchedule(0.3).learningRate(step: 77, stepsPerEpoch: 5, totalSteps: 80), 0.3)
        let cosine = CosineSchedule(initial: 1, minimum: 0.1)
        XCTAssertEqual(cosine.learningRate(step: 50, stepsPerEpoch: 10, totalSteps: 100), 0.55, accuracy: 1e-6)
        XCTAssertEqual(cosine.learningRate(step: 100, stepsPerEpoch: 10, totalSteps: 100), 0.1, accuracy: 1e-7)
    }

    /// MobileNet V2's recipe: ×0.98 every 2.4 epochs, here with 10 steps per epoch (a decay every 24 steps).
    func testExponentialDecayWithAFractionalPeriod() {
        let schedule = ExponentialSchedule(initial: 0.045, gamma: 0.98, everyEpochs: 2.4)
        func rate(_ step: Int) -> Float { schedule.learningRate(step: step, stepsPerEpoch: 10, totalSteps: 1000) }
        func expected(_ decays: Double) -> Double { 0.045 * pow(0.98, decays) }
        for (step, decays) in [(0, 0.0), (23, 0), (24, 1), (47, 1), (48, 2), (239, 9), (240, 10)] {
            // 240 = 10 periods exactly: the multiple must not round down to 9.
            XCTAssertEqual(Double(rate(step)), expected(decays), accuracy: 2e-8, "step \(step)")
        }
    }

    func testWarmupRampsLinearlyThenFollowsTheWrappedSchedule() {
        let schedule = WarmupSchedule(wrapping: StepSchedule(initial: 0.1, stepEpochs: 1, gamma: 0.5), warmupSteps: 4)
        let rates = (0..<12).map { schedule.learningRate(step: $0, stepsPerEpoch: 5, totalSteps: 12) }
        let expected: [Float] = [0.025, 0.05, 0.075, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025]
        for (rate, want) in zip(rates, expected) { XCTAssertEqual(rate, want, accuracy: 1e-7, "\(rates)") }
        XCTAssertEqual(WarmupSchedule(wrapping: ConstantSchedule(1), warmupSteps: 0)
            .learningRate(step: 0, stepsPerEpoch: 1, totalSteps: 1), 1, "no warm-up")
    }

    func testFactoryBuildsEveryKindAndNamesBadArguments() throws {
        XCTAssertEqual(ScheduleKind.allCases.map(\.rawValue), ["constant", "linear", "step", "cosine", "exponential"])
        let expectedTypes: [ScheduleKind: Any.Type] = [.constant: ConstantSchedule.self, .linear: LinearDecaySchedule.self,
                                                       .step: StepSchedule.self, .cosine: CosineSchedule.self,
                                                       .exponential: ExponentialSchedule.self]
        for kind in ScheduleKind.allCases {
            let schedule = try makeSchedule(kind: kind, initial: 0.1, stepEpochs: 2, gamma: 0.5, minimum: 0.001)
            XCTAssert(type(of: schedule) == expectedTypes[kind]!, "\(kind): \(type(of: schedule))")
            XCTAssertEqual(schedule.learningRate(step: 0, stepsPerEpoch: 10, totalSteps: 100), 0.1, "\(kind) starts at --lr")
            let warm = try makeSchedule(kind: kind, initial: 0.1, stepEpochs: 2, gamma: 0.5, minimum: 0.001, warmupSteps: 5)
            XCTAssertEqual(warm.learningRate(step: 0, stepsPerEpoch: 10, totalSteps: 100), 0.02, accuracy: 1e-8, "\(kind) warm-up")
        }
        let linear = try makeSchedule(kind: .linear, initial: 0.1, minimum: 0.001)
        XCTAssertEqual(linear.learningRate(step: 99, stepsPerEpoch: 10, totalSteps: 100), 0.001, accuracy: 1e-9)
        let exponential = try makeSchedule(kind: .exponential, initial: 0.1, stepEpochs: 2.4, gamma: 0.97)
        XCTAssertEqual(exponential.learningRate(step: 24, stepsPerEpoch: 10, totalSteps: 100), 0.097, accuracy: 1e-8)
        for (kind, lr, epochs, gamma, minimum, warmup, flag) in [
            (ScheduleKind.constant, Float(-0.1), 1.0, Float(0.1), Float(0), 0, "--lr"),
            (.cosine, 0.1, 1, 0.1, .nan, 0, "--final-lr"),
            (.step, 0.1, 2.4, 0.1, 0, 0, "--step-epochs"),
            (.exponential, 0.1, 0, 0.1, 0, 0, "--step-epochs"),
            (.step, 0.1, 1, 0, 0, 0, "--gamma"),
            (.constant, 0.1, 1, 0.1, 0, -1, "--warmup-steps"),
        ] {
            XCTAssertThrowsError(try makeSchedule(kind: kind, initial: lr, stepEpochs: epochs, gamma: gamma, minimum: minimum,
                                                  warmupSteps: warmup)) { error in
                XCTAssertEqual((error as? TrainingArgumentError)?.argument, flag, "\(error)")
            }
        }
    }
}
