// Tests of resumption: a run stopped (mid-epoch or at an epoch boundary) and resumed from its checkpoint computes
// bit for bit the losses, weights and metrics of the uninterrupted run; a changed configuration is refused; --epochs
// may extend a finished run; a fresh run does not overwrite an existing one.
import Foundation
import LiteCNNData
import LiteCNNIO
import LiteCNNLayers
import LiteCNNTensor
import LiteCNNTraining
import XCTest

final class ResumeTests: XCTestCase {
    private func train(_ c: TrainingConfiguration, in run: RunDirectory, resume: Bool) throws -> (losses: [Float], trainer: Trainer, outcome: TrainingOutcome) {
        let trainer = try Trainer(configuration: c, data: try Trainer.openData(c), runDirectory: run, resume: resume)
        var losses: [Float] = []
        trainer.onStep = { losses.append($0.loss) }
        let outcome = try trainer.run()
        return (losses, trainer, outcome)
    }

    func testResumeReproducesTheUninterruptedRunBitwise() throws {
        let directory = try makeTemporaryDirectory(self)
        var c = tinyConfiguration(samples: 160, epochs: 2, batch: 16)   // 10 steps per epoch, 20 in all
        c.checkpointEvery = 3
        c.schedule = ScheduleKind.cosine.rawValue
        c.warmupEpochs = 0.5
        c.optimizer = OptimizerKind.adamw.rawValue
        c.learningRate = 0.003
        let reference = try train(c, in: RunDirectory(directory.appendingPathComponent("full")), resume: false)
        XCTAssertEqual(reference.outcome, .finished)
        XCTAssertEqual(reference.losses.count, 20)
        XCTAssertEqual(Set(reference.losses.map(\.bitPattern)).count, 20, "the losses change from step to step")

        for stop in [7, 10] {   // in the middle of epoch 1, and exactly at its end
            let run = RunDirectory(directory.appendingPathComponent("stopped-\(stop)"))
            var first = c
            first.maxSteps = stop
            let head = try train(first, in: run, resume: false)
            XCTAssertEqual(head.outcome, .stoppedAtMaxSteps(globalStep: stop))
            XCTAssertEqual(try Checkpoint.read(from: run.checkpoint).header.state.globalStep, stop)

            let tail = try train(c, in: run, resume: true)   // a new process would build everything anew just the same
            XCTAssertEqual(tail.outcome, .finished)
            XCTAssertEqual(tail.trainer.resumedFrom?.globalStep, stop)
            XCTAssertEqual((head.losses + tail.losses).map(\.bitPattern), reference.losses.map(\.bitPattern),
                           "stopped at step \(stop): the resumed losses differ from the uninterrupted run's")
            for ((name, a), (_, b)) in zip(reference.trainer.model.namedParameters(), tail.trainer.model.namedParameters()) {
                XCTAssertEqual(a.value.scalars.map(\.bitPattern), b.value.scalars.map(\.bitPattern), "\(name) after resuming at \(stop)")
            }
            let referenceHistory = reference.trainer.state.history, resumedHistory = tail.trainer.state.history
            XCTAssertEqual(resumedHistory.count, 2)
            for (a, b) in zip(referenceHistory, resumedHistory) {
                XCTAssertEqual(a.trainLoss.bitPattern, b.trainLoss.bitPattern)
                XCTAssertEqual(a.trainTop1, b.trainTop1)
                XCTAssertEqual(a.testLoss.bitPattern, b.testLoss.bitPattern)
                XCTAssertEqual(a.testTop1, b.testTop1)
                XCTAssertEqual(a.learningRate, b.learningRate)
            }
            // The saved model equals the checkpoint's weights and loads as a zoo model.
            let loaded = try loadZooModel(from: run.model)
            XCTAssertEqual(loaded.name, "mobilenet_v2")
            XCTAssertEqual(loaded.model.namedParameters().map { $0.parameter.value.scalars },
                           tail.trainer.model.namedParameters().map { $0.parameter.value.scalars })
        }
    }

    func testChangedSettingsAreRefusedAndMoreEpochsExtendTheRun() throws {
        let directory = try makeTemporaryDirectory(self)
        let run = RunDirectory(directory.appendingPathComponent("run"))
        let c = tinyConfiguration(samples: 160, epochs: 1, batch: 32)
        let first = try train(c, in: run, resume: false)
        XCTAssertEqual(first.trainer.state.history.count, 1)
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.metricsCSV.path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.curves.path))
        XCTAssertEqual(try TrainingConfiguration.read(from: run.configuration).classes, 10, "classes come from the data")

        // A fresh run does not overwrite it.
        XCTAssertThrowsError(try train(c, in: run, resume: false)) { error in
            XCTAssertTrue("\(error)".contains("already holds a run"), "\(error)")
        }
        // Another learning rate is another run.
        var changed = c
        changed.learningRate = 0.5
        XCTAssertThrowsError(try train(changed, in: run, resume: true)) { error in
            guard case .resumeMismatch = error as? TrainingError else { return XCTFail("\(error)") }
        }
        // Resuming a finished run does nothing; more epochs continue it.
        let again = try train(c, in: run, resume: true)
        XCTAssertEqual(again.losses, [])
        var longer = c
        longer.epochs = 2
        let extended = try train(longer, in: run, resume: true)
        XCTAssertEqual(extended.losses.count, 5)
        XCTAssertEqual(extended.trainer.state.history.map(\.epoch), [1, 2])
        let csv = try String(contentsOf: run.metricsCSV, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(csv.count, 3)
        // --resume without a checkpoint says so.
        XCTAssertThrowsError(try train(c, in: RunDirectory(directory.appendingPathComponent("empty")), resume: true)) { error in
            XCTAssertTrue("\(error)".contains("nothing to resume"), "\(error)")
        }
    }
}
