import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor
import XCTest

/// Zero-copy channel Concat (convolutions writing into their slice), channel views (shuffle, channel Slice/Split
/// gathered once by their consumer) and the blocked max pooling, against the reference interpreter on odd shapes.
final class DataMovementTests: XCTestCase {
    private func compare(_ graph: Graph, _ shape: [Int], options: InferenceOptions = .init(), tolerance: Float = 2e-4,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        let input = randomInput(shape, seed: 17)
        let engine = try InferenceEngine(graph: graph, options: options)
        let got = try engine.run(input)
        let want = try ReferenceInterpreter(graph: graph).run(input)
        XCTAssertEqual(got.shape, want.shape, "shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        var worst: Float = 0
        for (g, w) in zip(got.scalars, want.data) { worst = max(worst, abs(g - Float(w)) / max(1, abs(Float(w)))) }
        XCTAssertLessThan(worst, tolerance, "max relative error for input \(shape)", file: file, line: line)
        if shape.count == 4 {
            let nhwc = try engine.runNHWC(input.nchwToNHWC())
            let back = nhwc.rank == 4 ? nhwc.nhwcToNCHW().scalars : nhwc.scalars
            XCTAssertEqual(back, got.scalars, "runNHWC", file: file, line: line)
        }
    }

    /// The number of steps labelled `op` in the plan for `shape`.
    private func steps(_ op: String, _ graph: Graph, _ shape: [Int]) throws -> Int {
        let engine = try InferenceEngine(graph: graph, options: InferenceOptions(threads: 1))
        return try engine.profile(randomInput(shape), runs: 1).filter { $0.op == op }.count
    }

    private func concatSteps(_ graph: Graph, _ shape: [Int]) throws -> Int { try steps("Concat", graph, shape) }

    /// PyTorch's channel shuffle with constant shapes.
    private func shuffle(_ m: GraphMaker, _ x: String, n: Int, c: Int, h: Int, w: Int, groups: Int) -> String {
        let r1 = m.op1("Reshape", [x, m.ints([n, groups, c / groups, h, w])])
        let t = m.op1("Transpose", [r1], ["perm": .ints([0, 2, 1, 3, 4])])
        return m.op1("Reshape", [t, m.ints([n, c, h, w])])
    }

    private func convBNRelu(_ m: GraphMaker, _ x: String, _ cin: Int, _ cout: Int, k: Int = 1, stride: Int = 1, group: Int = 1,
                            relu: Bool = true) -> String {
        let p = k / 2
        let c = m.conv(x, cin, cout, k: [k, k], group: group, bias: false,
                       ["strides": .ints([stride, stride]), "pads": .ints([p, p, p, p])])
        let b = m.batchNorm(c, cout)
        return relu ? m.op1("Relu", [b]) : b
    }

    /// ShuffleNet V2: a stride-2 block (both branches concatenated), then stride-1 blocks that chunk the shuffled map
    /// (with Slice and with Split), with an odd branch width, batch 1 and 2.
    func testShuffleNetV2BlocksMatchReference() throws {
        for batch in [1, 2] {
            let m = GraphMaker(seed: 21)
            let (b, h, w) = (5, 4, 5)  // branch channels, spatial size after the stride-2 block (input 7×9)
            let stem = convBNRelu(m, "input", 3, 6, k: 3)
            let left = convBNRelu(m, convBNRelu(m, stem, 6, 6, k: 3, stride: 2, group: 6, relu: false), 6, b)
            let right0 = convBNRelu(m, stem, 6, b)
            let right = convBNRelu(m, convBNRelu(m, right0, b, b, k: 3, stride: 2, group: b, relu: false), b, b)
            var x = shuffle(m, m.op1("Concat", [left, right], ["axis": .int(1)]), n: batch, c: 2 * b, h: h, w: w, groups: 2)
            for useSplit in [false, true, false] {
                let x1: String, x2: String
                if useSplit {
                    let parts = m.op("Split", [x, m.ints([b, b])], ["axis": .int(1)], outputs: 2)
                    (x1, x2) = (parts[0], parts[1])
                } else {
                    x1 = m.op1("Slice", [x, m.ints([0]), m.ints([b]), m.ints([1])])
                    x2 = m.op1("Slice", [x, m.ints([b]), m.ints([2 * b]), m.ints([1])])
                }
                let y = convBNRelu(m, convBNRelu(m, convBNRelu(m, x2, b, b), b, b, k: 3, group: b, relu: false), b, b)
                x = shuffle(m, m.op1("Concat", [x1, y], ["axis": .int(1)]), n: batch, c: 2 * b, h: h, w: w, groups: 2)
            }
            let out = convBNRelu(m, x, 2 * b, 7)
            let g = m.graph(input: [.fixed(batch), .fixed(3), .fixed(7), .fixed(9)], output: out)
            try compare(g, [batch, 3, 7, 9])
            try compare(g, [batch, 3, 7, 9], options: InferenceOptions(threads: 1))
            // No shuffle, Slice or Split step remains; each stride-1 block copies x1 into its Concat (the branch's
            // last convolution writes in place) and gathers x2 for its first convolution.
            for op in ["Reshape", "Transpose", "Slice", "Split"] { XCTAssertEqual(try steps(op, g, [batch, 3, 7, 9]), 0, op) }
            XCTAssertEqual(try concatSteps(g, [batch, 3, 7, 9]), 3)
            XCTAssertEqual(try steps("Channel gather", g, [batch, 3, 7, 9]), 4)
        }
    }

    /// A Concat of three convolutions (GEMM 1×1, GEMM 3×3, direct kernel) that write straight into its buffer, and
    /// the cases that must copy: an input that is read again later, an input that is a graph output, and an input
    /// given twice.
    func testConcatOfConvolutionsWritesInPlaceOnlyWhenSafe() throws {
        for variant in 0..<4 {
            let m = GraphMaker(seed: UInt64(30 + variant))
            let stem = m.op1("Relu", [m.conv("input", 3, 37, k: [1, 1])])
            let a = m.op1("Relu", [m.conv(stem, 37, 13, k: [1, 1])])           // GEMM 1×1
            let b = m.op1("Relu", [m.conv(stem, 37, 11, k: [3, 3], ["pads": .ints([1, 1, 1, 1])])])  // GEMM 3×3
            let c = m.conv(m.op1("Relu", [m.conv("input", 3, 3, k: [1, 1])]), 3, 9, k: [1, 1])  // direct kernel
            var parts = [a, b, c]
            if variant == 3 { parts = [a, b, c, b] }
            var cat = m.op1("Concat", parts, ["axis": .int(1)])
            let channels = variant == 3 ? 44 : 33
            cat = m.op1("Relu", [cat])
            var out = m.conv(cat, channels, 5, k: [1, 1])
            if variant == 1 {
                // `a` is read again after the Concat: it must keep its own buffer.
                let back = m.conv(a, 13, 5, k: [1, 1])
                out = m.op1("Add", [out, back])
            }
            var graph = m.graph(input: [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")], output: out)
            if variant == 2 {
                // `c` is also a graph output (first, so that `run` returns it) and must hold the convolution's result.
                graph = Graph(opsetVersion: m.opset, inputs: graph.inputs, outputs: [ValueInfo(name: c, shape: nil), ValueInfo(name: out, shape: nil)],
                              nodes: m.nodes, initializers: m.initializers)
                try compare(graph, [2, 3, 7, 6])
                graph = Graph(opsetVersion: m.opset, inputs: graph.inputs, outputs: [ValueInfo(name: out, shape: nil), ValueInfo(name: c, shape: nil)],
                              nodes: m.nodes, initializers: m.initializers)
            }
            try compare(graph, [2, 3, 7, 6])
            try compare(graph, [1, 3, 5, 9])
            // Parts written in place leave no copy step: variant 0 copies nothing, 1 copies `a`, 2 copies `c`,
            // 3 copies both `b`s.
            let copies = try concatSteps(graph, [1, 3, 5, 9])
            XCTAssertEqual(copies, [0, 1, 1, 2][variant], "variant \(variant)")
        }
    }

    /// Views as graph outputs and through Identity, a slice of a view with a step, a view read by two consumers, and
    /// ShuffleNet V1's three-group shuffle between convolutions.
    func testChannelViewsEverywhere() throws {
        let m = GraphMaker(seed: 41)
        let x = m.op1("Relu", [m.conv("input", 3, 12, k: [1, 1])])
        let s = shuffle(m, x, n: 2, c: 12, h: 5, w: 3, groups: 3)
        let id = m.op1("Identity", [s])
        let strided = m.op1("Slice", [id, m.ints([1]), m.ints([12]), m.ints([1]), m.ints([3])])  // channels 1, 4, 7, 10
        let parts = m.op("Split", [id, m.ints([5, 7])], ["axis": .int(1)], outputs: 2)
        let dw = m.conv(parts[1], 7, 7, k: [3, 3], group: 7, ["pads": .ints([1, 1, 1, 1])])
        let cat = m.op1("Concat", [strided, parts[0], dw, strided], ["axis": .int(1)])
        let y = m.op1("Add", [m.conv(cat, 20, 12, k: [1, 1]), s])
        try compare(m.graph(input: [.fixed(2), .fixed(3), .fixed(5), .fixed(3)], output: y), [2, 3, 5, 3])
        // A view that is itself the graph output, and one that is a Slice of a plain map.
        try compare(m.graph(input: [.fixed(2), .fixed(3), .fixed(5), .fixed(3)], output: strided), [2, 3, 5, 3])
        try compare(m.graph(input: [.fixed(2), .fixed(3), .fixed(5), .fixed(3)], output: parts[1]), [2, 3, 5, 3])
        let m2 = GraphMaker(seed: 42)
        let x2 = m2.op1("Relu", [m2.conv("input", 3, 9, k: [1, 1])])
        let sl = m2.op1("Slice", [x2, m2.ints([2]), m2.ints([8]), m2.ints([1])])
        try compare(m2.graph(input: [.fixed(1), .fixed(3), .fixed(4), .fixed(4)], output: sl), [1, 3, 4, 4])
    }

    /// SqueezeNet's fire modules: squeeze, two expands concatenated, ceil-mode max pooling over the concatenation.
    func testFireModulesWithCeilModePooling() throws {
        let m = GraphMaker(seed: 51)
        var x = m.op1("Relu", [m.conv("input", 3, 16, k: [3, 3], ["strides": .ints([2, 2])])])
        var channels = 16
        for (squeeze, expand) in [(5, 11), (6, 19)] {
            let s = m.op1("Relu", [m.conv(x, channels, squeeze, k: [1, 1])])
            let e1 = m.op1("Relu", [m.conv(s, squeeze, expand, k: [1, 1])])
            let e3 = m.op1("Relu", [m.conv(s, squeeze, expand, k: [3, 3], ["pads": .ints([1, 1, 1, 1])])])
            x = m.op1("Concat", [e1, e3], ["axis": .int(1)])
            channels = 2 * expand
            x = m.op1("MaxPool", [x], ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)])
        }
        let g = m.graph(input: [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")], output: x)
        try compare(g, [2, 3, 23, 21])
        try compare(g, [1, 3, 30, 27])
    }
}
