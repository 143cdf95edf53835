// The end-to-end check that training works: short runs on the built-in shapes data reach a test accuracy far above
// chance, which a broken backward pass, optimizer, loss gradient or BatchNorm train/eval switch could not; a student
// distilled from the trained teacher learns too.
import Foundation
import LiteCNNData
import LiteCNNLayers
import LiteCNNTraining
import XCTest

final class LearningTests: XCTestCase {
    /// A small VGG-style network for 16×16 RGB: three Conv-BN-ReLU stages (the first two max-pooled), global average
    /// pooling, Dropout(0.1) and a linear classifier. Every layer kind of the zoo's stems and heads is in the path.
    static func smallNetwork(width: Int = 16, classes: Int = 10) -> any Layer {
        Sequential([
            Conv2D(3, width, kernelSize: 3, padding: 1), BatchNorm2D(width), ReLU(), MaxPool2D(kernelSize: 2),
            Conv2D(width, 2 * width, kernelSize: 3, padding: 1), BatchNorm2D(2 * width), ReLU(), MaxPool2D(kernelSize: 2),
            Conv2D(2 * width, 4 * width, kernelSize: 3, padding: 1), BatchNorm2D(4 * width), ReLU(),
            GlobalAvgPool(), Dropout(probability: 0.1), Linear(4 * width, classes),
        ])
    }

    static func configuration(label: String) -> TrainingConfiguration {
        var c = TrainingConfiguration(model: label, data: "shapes", samples: 3000, resolution: 16, epochs: 4,
                                      batchSize: 32, learningRate: 0.005, optimizer: .adam, seed: 1)
        c.testSamples = 500
        c.threads = 2
        c.schedule = ScheduleKind.cosine.rawValue
        c.warmupEpochs = 0.25
        return c
    }

    func testShortRunOnShapesLearnsWellAboveChanceAndDistillationTrainsAStudent() throws {
        let directory = try makeTemporaryDirectory(self)
        let c = Self.configuration(label: "small_cnn")
        let start = Date()
        let teacher = Self.smallNetwork(width: 16)
        let teacherRun = RunDirectory(directory.appendingPathComponent("teacher"))
        let trainer = try Trainer(configuration: c, data: try Trainer.openData(c), runDirectory: teacherRun, resume: false,
                                  customModel: teacher)
        XCTAssertEqual(try trainer.run(), .finished)
        let seconds = Date().timeIntervalSince(start)
        let history = trainer.state.history
        let last = try XCTUnwrap(history.last)
        print("LearningTests: test top-1 per epoch \(history.map(\.testTop1)), train loss \(history.map(\.trainLoss)), \(String(format: "%.1f", seconds)) s")
        let chance = 100.0 / 10
        XCTAssertGreaterThanOrEqual(last.testTop1, 2.5 * chance, "a short run must learn (chance is \(chance)%)")
        XCTAssertLessThan(last.trainLoss, history[0].trainLoss, "the training loss falls")
        XCTAssertLessThan(last.testLoss, log(10.0), "the test loss is below that of a uniform guess")
        // Eval mode is what was measured: the same network in train mode (batch statistics, dropout) gives other logits.
        XCTAssertFalse(teacher.isTraining)

        // Distillation: a narrower student trained against the teacher's softened outputs and the labels. The
        // teacher is passed as weights in the network's own layout: build the same architecture and load them.
        var studentConfiguration = Self.configuration(label: "small_cnn_student")
        studentConfiguration.epochs = 3
        studentConfiguration.temperature = 4
        studentConfiguration.distillWeight = 0.7
        let student = try Trainer(configuration: studentConfiguration, data: try Trainer.openData(studentConfiguration),
                                  runDirectory: RunDirectory(directory.appendingPathComponent("student")), resume: false,
                                  customModel: Self.smallNetwork(width: 8), customTeacher: teacher)
        XCTAssertEqual(try student.run(), .finished)
        let studentHistory = student.state.history
        print("LearningTests: distilled student test top-1 \(studentHistory.map(\.testTop1))")
        XCTAssertGreaterThanOrEqual(try XCTUnwrap(studentHistory.last).testTop1, 2 * chance, "the distilled student learns")
    }
}
