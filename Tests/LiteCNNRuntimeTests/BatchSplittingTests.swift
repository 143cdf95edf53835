import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor
import XCTest

/// A batch run whole, per image or per thread (`InferenceOptions.BatchSplitting`) gives the same outputs, and graphs
/// whose operators mix the images of a batch are never split.
final class BatchSplittingTests: XCTestCase {
    override func tearDown() {
        WorkerPool.shared.threadCount = WorkerPool.shared.maximumThreads
    }

    /// Conv + BN + ReLU, a depthwise conv, squeeze-and-excitation, a residual Add, and PyTorch's flatten through shape
    /// arithmetic into a Gemm: every operator keeps the images apart.
    private func perImageGraph() -> Graph {
        let m = GraphMaker(seed: 80)
        let x = m.op1("Relu", [m.batchNorm(m.conv("input", 3, 8, ["pads": .ints([1, 1, 1, 1])]), 8)])
        let dw = m.op1("Relu", [m.conv(x, 8, 8, group: 8, ["pads": .ints([1, 1, 1, 1]), "strides": .ints([2, 2])])])
        let squeezed = m.op1("GlobalAveragePool", [dw])
        let gate = m.op1("Sigmoid", [m.conv(m.op1("Relu", [m.conv(squeezed, 8, 4, k: [1, 1])]), 4, 8, k: [1, 1])])
        let excited = m.op1("Mul", [dw, gate])
        let sum = m.op1("Add", [excited, m.conv(dw, 8, 8, k: [1, 1])])
        let shape = m.op1("Shape", [sum])
        let n = m.op1("Unsqueeze", [m.op1("Gather", [shape, m.ints([0], shape: [])], ["axis": .int(0)]), m.ints([0])])
        let flat = m.op1("Reshape", [sum, m.op1("Concat", [n, m.ints([-1])], ["axis": .int(0)])])
        let y = m.op1("Gemm", [flat, m.weight([8 * 5 * 6, 7]), m.weight([7], scale: 0.2)])
        return m.graph(input: [.symbolic("N"), .fixed(3), .fixed(9), .fixed(11)], output: y)
    }

    private func assertClose(_ a: Tensor, _ b: Tensor, _ message: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.shape, b.shape, message, file: file, line: line)
        var worst: Float = 0
        for (u, v) in zip(a.scalars, b.scalars) { worst = max(worst, abs(u - v) / max(1, abs(v))) }
        XCTAssertLessThan(worst, 1e-5, message, file: file, line: line)
    }

    func testEveryWayGivesTheSameOutputs() throws {
        let g = perImageGraph()
        let input = randomInput([5, 3, 9, 11], seed: 3)
        let want = try ReferenceInterpreter(graph: g).run(input)
        let wantTensor = Tensor(shape: want.shape, scalars: want.data.map { Float($0) }, layout: .plain)
        for threads in [1, 2] {
            let whole = try InferenceEngine(graph: g, options: .init(threads: threads, batchSplitting: .never)).run(input)
            assertClose(whole, wantTensor, "whole batch, \(threads) threads, against the reference")
            for way in [InferenceOptions.BatchSplitting.perImage, .perThread] {
                let engine = try InferenceEngine(graph: g, options: .init(threads: threads, batchSplitting: way))
                // Twice: the second run reuses the lane plans.
                for run in 0..<2 {
                    assertClose(try engine.run(input), whole, "\(way), \(threads) threads, run \(run)")
                }
                let expected: InferenceOptions.BatchSplitting = way == .perThread && threads == 1 ? .never : way
                XCTAssertEqual(engine.batchSplitting(forInputShape: [5, 3, 9, 11]), expected)
                // The NHWC entry point splits too, and agrees.
                let nhwc = try engine.runNHWC(input.nchwToNHWC())
                XCTAssertEqual(nhwc.scalars, try engine.run(input).scalars, "\(way) runNHWC, \(threads) threads")
                XCTAssertGreaterThan(engine.peakActivationBytes, 0)
            }
        }
    }

    /// Inputs and 4-D outputs of 16 K floats or more are converted between NCHW and NHWC in one part per thread along
    /// their pixels (whole batch or not, NCHW or NHWC entry point): the same values on one and two threads.
    func testLargeImagesConvertedInPartsAgree() throws {
        let m = GraphMaker(seed: 83)
        let y = m.op1("Relu", [m.conv("input", 3, 5, ["pads": .ints([1, 1, 1, 1])])])
        let g = m.graph(input: [.symbolic("N"), .fixed(3), .fixed(80), .fixed(75)], output: y)
        for n in [1, 3] {
            let input = randomInput([n, 3, 80, 75], seed: 6 + UInt64(n))
            let want = try ReferenceInterpreter(graph: g).run(input)
            let wantTensor = Tensor(shape: want.shape, scalars: want.data.map { Float($0) }, layout: .plain)
            for threads in [1, 2] {
                let engine = try InferenceEngine(graph: g, options: .init(threads: threads, batchSplitting: .never))
                assertClose(try engine.run(input), wantTensor, "batch \(n), \(threads) threads")
                XCTAssertEqual(try engine.runNHWC(input.nchwToNHWC()).scalars, try engine.run(input).nchwToNHWC().scalars,
                               "runNHWC, batch \(n), \(threads) threads")
            }
        }
    }

    func testAutomaticTimesEveryWayThenKeepsOne() throws {
        WorkerPool.shared.threadCount = 2
        let g = perImageGraph()
        let shape = [4, 3, 9, 11]
        let input = randomInput(shape, seed: 4)
        let whole = try InferenceEngine(graph: g, options: .init(threads: 2, batchSplitting: .never)).run(input)
        let engine = try InferenceEngine(graph: g, options: .init(threads: 2))
        try engine.prepare(inputShape: shape)
        XCTAssertEqual(engine.batchSplitting(forInputShape: shape), .automatic, "three ways to time at batch 4 on 2 threads")
        for run in 0..<8 {
            assertClose(try engine.run(input), whole, "automatic run \(run)")
        }
        let chosen = engine.batchSplitting(forInputShape: shape)
        XCTAssertTrue([.never, .perImage, .perThread].contains(chosen), "chosen: \(chosen)")
        assertClose(try engine.run(input), whole, "after choosing \(chosen)")
        // Batch 1 has nothing to choose.
        let one = try engine.run(randomInput([1, 3, 9, 11], seed: 5))
        XCTAssertEqual(one.shape, [1, 7])
        XCTAssertEqual(engine.batchSplitting(forInputShape: [1, 3, 9, 11]), .never)
    }

    func testGraphsThatMixImagesRunWhole() throws {
        // The batch mean subtracted from every image (ReduceMean over axis 0).
        let m = GraphMaker(seed: 81)
        let x = m.conv("input", 3, 4, k: [1, 1])
        let mean = m.op1("ReduceMean", [x], ["axes": .ints([0]), "keepdims": .int(1)])
        let centered = m.op1("Sub", [x, mean])
        // A softmax over the whole batch, through a Reshape that folds the batch into one row and back.
        let m2 = GraphMaker(seed: 82)
        let x2 = m2.conv("input", 3, 2, k: [1, 1])
        let row = m2.op1("Reshape", [x2, m2.ints([1, -1])])
        let soft = m2.op1("Softmax", [row], ["axis": .int(1)])
        let back = m2.op1("Reshape", [soft, m2.op1("Shape", [x2])])
        for (graph, label) in [(m.graph(input: [.symbolic("N"), .fixed(3), .fixed(4), .fixed(5)], output: centered), "ReduceMean over the batch"),
                               (m2.graph(input: [.symbolic("N"), .fixed(3), .fixed(4), .fixed(5)], output: back), "softmax over the batch")] {
            let input = randomInput([3, 3, 4, 5], seed: 6)
            let want = try ReferenceInterpreter(graph: graph).run(input)
            for way in InferenceOptions.BatchSplitting.allCases {
                let engine = try InferenceEngine(graph: graph, options: .init(threads: 2, batchSplitting: way))
                for _ in 0..<2 {
                    let got = try engine.run(input)
                    XCTAssertEqual(got.shape, want.shape, label)
                    for (g, w) in zip(got.scalars, want.data) { XCTAssertEqual(g, Float(w), accuracy: 1e-4, "\(label), \(way)") }
                }
                XCTAssertEqual(engine.batchSplitting(forInputShape: [3, 3, 4, 5]), .never, "\(label) must run whole (\(way))")
            }
        }
    }
}
