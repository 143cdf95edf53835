import Foundation
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest

/// Forward + backward + plain SGD update of zoo models at the training benchmark's sizes (issue 4's throughput target).
/// Opt-in (`LITECNN_TRAIN_BENCH=1`): timings belong to benchmarks, not to the test suite. Prints images/s.
final class TrainingStepBenchmark: XCTestCase {
    func testTrainingThroughput() throws {
        guard ProcessInfo.processInfo.environment["LITECNN_TRAIN_BENCH"] == "1" else {
            throw XCTSkip("set LITECNN_TRAIN_BENCH=1 to time training steps")
        }
        let cases: [(String, Int, Int)] = [("squeezenet1_1", 64, 32), ("mobilenet_v2", 64, 32), ("shufflenet_v2_x1_0", 64, 32)]
        let only = ProcessInfo.processInfo.environment["LITECNN_TRAIN_BENCH_MODEL"]
        for (name, resolution, batch) in cases where only == nil || only == name {
            WeightInitialization.seed(1)
            let model = try ModelZoo.build(name, options: ModelOptions(classCount: 10))
            model.train()
            var generator = SeededGenerator(seed: 3)
            let x = Tensor(shape: [batch, resolution, resolution, 3], layout: .nhwc) { out in
                for i in out.indices { out[i] = generator.nextUnit() }
            }
            let labels = (0..<batch).map { $0 % 10 }
            let loss = SoftmaxCrossEntropy()
            let parameters = model.trainableParameters
            func step() {
                model.zeroGradients()
                _ = loss.loss(logits: model.forward(x), labels: labels)
                _ = model.backward(loss.gradient())
                for p in parameters {
                    let g = p.gradient
                    p.value.scalars.withUnsafeMutableBufferPointer { v in
                        g.scalars.withUnsafeBufferPointer { d in for i in 0..<v.count { v[i] -= 0.01 * d[i] } }
                    }
                }
            }
            step()
            let steps = 5
            let start = Date(), cpuStart = clock()
            for _ in 0..<steps { step() }
            let seconds = Date().timeIntervalSince(start) / Double(steps)
            let cpuSeconds = Double(clock() - cpuStart) / Double(CLOCKS_PER_SEC) / Double(steps)
            print(String(format: "%@ %d×%d batch %d: %.1f ms/step (CPU %.1f ms), %.1f images/s (threads %d)", name, resolution,
                         resolution, batch, seconds * 1000, cpuSeconds * 1000, Double(batch) / seconds,
                         WorkerPool.shared.threadCount))
        }
    }
}
