import LiteCNN
import XCTest

/// A dense layer after an adaptive average pool that only repeats its input (VGG and AlexNet below 224×224: a 1×1 map
/// pooled to 7×7 or 6×6) runs over the map itself with the repeated inputs' weights summed. Checked against the
/// layer tree, with and without the repetition, and in both kinds of exported graph (opset 17 and 18 ReduceMean).
final class BroadcastFoldingTests: XCTestCase {
    private func model(pool: (Int, Int), mapSize: Int) -> Sequential {
        Sequential([
            Conv2D(inputChannels: 3, outputChannels: 6, kernelSize: (3, 3), padding: .uniform(1)), ReLU(),
            MaxPool2D(kernelSize: 4),
            AdaptiveAvgPool2D(outputSize: pool), Flatten(),
            Dropout(probability: 0.5), Linear(6 * pool.0 * pool.1, 11), ReLU(), Dropout(probability: 0.5), Linear(11, 5),
        ])
    }

    /// Runs the exported model in the runtime; returns the worst relative error against the layers and the number of
    /// folded dense steps.
    private func run(pool: (Int, Int), mapSize: Int, batch: Int, opset: Int) throws -> (error: Float, folded: Int) {
        let m = model(pool: pool, mapSize: mapSize)
        m.eval()
        let side = 4 * mapSize
        let graph = try exportGraph(m, inputChannels: 3, height: side, width: side, opset: opset)
        let input = randomInput([batch, 3, side, side], seed: 5)
        let engine = try InferenceEngine(graph: graph, options: InferenceOptions(threads: 2))
        let got = try engine.run(input)
        let want = m.forward(input.nchwToNHWC())
        XCTAssertEqual(got.shape, want.shape)
        var worst: Float = 0
        for (g, w) in zip(got.scalars, want.scalars) { worst = max(worst, abs(g - w) / max(1, abs(w))) }
        let steps = try engine.profile(input, runs: 1)
        return (worst, steps.filter { $0.op == "Gemm packed, repeated input folded" }.count)
    }

    func testRepeatedOneByOneMapIsFolded() throws {
        for opset in [17, 18] {
            for (pool, batch) in [((3, 3), 1), ((7, 7), 2), ((1, 4), 3)] {
                let r = try run(pool: pool, mapSize: 1, batch: batch, opset: opset)
                XCTAssertLessThan(r.error, 1e-5, "pool \(pool) batch \(batch) opset \(opset)")
                XCTAssertEqual(r.folded, 1, "pool \(pool) batch \(batch) opset \(opset): the first Linear is folded")
            }
        }
    }

    func testOverlappingBinsAreNotFolded() throws {
        // A 2×2 map pooled to 3×3: the bins overlap and average different pixels, so nothing repeats.
        let r = try run(pool: (3, 3), mapSize: 2, batch: 2, opset: 17)
        XCTAssertLessThan(r.error, 1e-5)
        XCTAssertEqual(r.folded, 0)
        // Same size in and out: no pooling at all.
        let same = try run(pool: (2, 2), mapSize: 2, batch: 1, opset: 17)
        XCTAssertLessThan(same.error, 1e-5)
        XCTAssertEqual(same.folded, 0)
    }
}
