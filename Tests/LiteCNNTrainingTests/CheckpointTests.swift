// Tests of the checkpoint file: a round trip restores weights, buffers, optimizer state and loop state exactly; a
// reader running while checkpoints are rewritten never sees a partial file; damaged or foreign files are refused
// with the file named.
import Foundation
import LiteCNNData
import LiteCNNIO
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import LiteCNNTraining
import Synchronization
import XCTest

final class CheckpointTests: XCTestCase {
    /// A small model with trained-looking state: one SGD-with-momentum step applied, BatchNorm statistics updated.
    private func trainedModel(seed: UInt64) throws -> (any Layer, any Optimizer) {
        WeightInitialization.seed(seed)
        let model = try ModelZoo.build("mobilenet_v2", options: ModelOptions(classCount: 10, inputChannels: 3, width: 0.25))
        let optimizer = try makeOptimizer(kind: .sgd, parameters: model.namedParameters().filter { $0.parameter.isTrainable },
                                          learningRate: 0.1)
        var generator = SeededGenerator(seed: seed)
        let input = Tensor(shape: [4, 16, 16, 3], layout: .nhwc) { out in
            for i in out.indices { out[i] = generator.nextNormal() }
        }
        model.train()
        let logits = model.forward(input)
        let loss = SoftmaxCrossEntropy()
        _ = loss.loss(logits: logits, labels: [0, 1, 2, 3])
        model.zeroGradients()
        _ = model.backward(loss.gradient())
        optimizer.step()
        return (model, optimizer)
    }

    func testRoundTripRestoresModelOptimizerAndStateExactly() throws {
        let directory = try makeTemporaryDirectory(self)
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let (model, optimizer) = try trainedModel(seed: 1)
        let history = [EpochMetrics(epoch: 1, steps: 9, trainLoss: 2.1, trainTop1: 12.5, testLoss: 2.2, testTop1: 11,
                                    testTop5: 52, imagesPerSecond: 100, learningRate: 0.1, elapsedSeconds: 4)]
        let state = TrainingState(epoch: 1, stepInEpoch: 3, globalStep: 12, lossSum: 0.1 + 0.2, correct: 7, seen: 48,
                                  trainSeconds: 1.25, elapsedSeconds: 9.5, learningRate: 0.05, history: history)
        let configuration = tinyConfiguration()
        try Checkpoint.write(model: model, optimizer: optimizer, state: state, configuration: configuration, to: url)

        let (header, file) = try Checkpoint.read(from: url)
        XCTAssertEqual(header.state, state)
        XCTAssertEqual(header.state.lossSum.bitPattern, (0.1 + 0.2).bitPattern, "the running sum is stored exactly")
        XCTAssertEqual(header.configHash, configuration.identityHash)
        XCTAssertEqual(header.seed, configuration.seed)
        XCTAssertTrue(file.names.contains { $0.hasPrefix(Checkpoint.optimizerPrefix) }, "optimizer state is saved")
        XCTAssertTrue(file.names.contains { $0.hasSuffix("running_mean") }, "BatchNorm buffers are saved")

        let (fresh, freshOptimizer) = try trainedModel(seed: 2)
        try Checkpoint.restore(file, into: fresh, optimizer: freshOptimizer)
        for ((name, a), (_, b)) in zip(model.namedParameters(), fresh.namedParameters()) {
            XCTAssertEqual(a.value.scalars.map(\.bitPattern), b.value.scalars.map(\.bitPattern), name)
        }
        let savedState = optimizer.state(), restoredState = freshOptimizer.state()
        XCTAssertEqual(Set(savedState.keys), Set(restoredState.keys))
        for (key, tensor) in savedState {
            XCTAssertEqual(tensor.scalars.map(\.bitPattern), restoredState[key]?.scalars.map(\.bitPattern), key)
        }
    }

    func testConcurrentReaderNeverSeesAPartialCheckpoint() throws {
        let directory = try makeTemporaryDirectory(self)
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let (model, optimizer) = try trainedModel(seed: 3)
        let configuration = tinyConfiguration()
        try Checkpoint.write(model: model, optimizer: optimizer, state: TrainingState(), configuration: configuration, to: url)
        let writes = 40
        final class Shared: Sendable {
            let done = Atomic<Bool>(false)
            let result = Mutex<(reads: Int, failures: [String], steps: Set<Int>)>((0, [], []))
        }
        let shared = Shared()
        let reader = Thread {
            while !shared.done.load(ordering: .acquiring) {
                do {
                    let (header, file) = try Checkpoint.read(from: url)
                    // Decode every tensor: a torn file would fail here or in the header.
                    for name in file.names { _ = try file.tensor(named: name) }
                    shared.result.withLock { $0.reads += 1; $0.steps.insert(header.state.globalStep) }
                } catch {
                    shared.result.withLock { $0.failures.append("\(error)") }
                }
            }
        }
        reader.start()
        for step in 1...writes {
            try Checkpoint.write(model: model, optimizer: optimizer, state: TrainingState(globalStep: step),
                                 configuration: configuration, to: url)
        }
        // Let the reader see the last file at least once.
        Thread.sleep(forTimeInterval: 0.05)
        shared.done.store(true, ordering: .releasing)
        while !reader.isFinished { Thread.sleep(forTimeInterval: 0.01) }
        let result = shared.result.withLock { $0 }
        XCTAssertEqual(result.failures, [], "a reader saw a partial checkpoint")
        XCTAssertGreaterThan(result.reads, 0)
        XCTAssertEqual(try Checkpoint.read(from: url).header.state.globalStep, writes)
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0 != "checkpoint.safetensors" }
        XCTAssertEqual(leftovers, [], "no temporary file is left behind")
    }

    func testDamagedOrForeignFilesAreRefusedNamingTheFile() throws {
        let directory = try makeTemporaryDirectory(self)
        let url = directory.appendingPathComponent("checkpoint.safetensors")
        let (model, optimizer) = try trainedModel(seed: 4)
        try Checkpoint.write(model: model, optimizer: optimizer, state: TrainingState(globalStep: 5),
                             configuration: tinyConfiguration(), to: url)
        let bytes = Array(try Data(contentsOf: url))

        // Truncated (what a non-atomic write killed half-way would leave).
        let truncated = directory.appendingPathComponent("truncated.safetensors")
        try Data(bytes[0..<(bytes.count / 2)]).write(to: truncated)
        XCTAssertThrowsError(try Checkpoint.read(from: truncated)) { XCTAssertTrue("\($0)".contains("truncated.safetensors"), "\($0)") }

        // A plain weights file is not a checkpoint.
        let weights = directory.appendingPathComponent("weights.safetensors")
        try saveWeights(model, to: weights)
        XCTAssertThrowsError(try Checkpoint.read(from: weights)) { error in
            XCTAssertTrue("\(error)".contains("weights.safetensors") && "\(error)".contains("not a LiteCNN training checkpoint"), "\(error)")
        }

        // A checkpoint of another architecture does not load, and the model is left untouched.
        let (_, file) = try Checkpoint.read(from: url)
        WeightInitialization.seed(9)
        let other = try ModelZoo.build("mobilenet_v2", options: ModelOptions(classCount: 10, inputChannels: 3, width: 0.5))
        let before = other.namedParameters().map { $0.parameter.value.scalars }
        let otherOptimizer = try makeOptimizer(kind: .sgd, parameters: other.namedParameters().filter { $0.parameter.isTrainable },
                                               learningRate: 0.1)
        XCTAssertThrowsError(try Checkpoint.restore(file, into: other, optimizer: otherOptimizer))
        XCTAssertEqual(other.namedParameters().map { $0.parameter.value.scalars }, before)
    }
}
