import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor
import XCTest

/// Builds small graphs by hand (ONNX semantics, NCHW logical).
final class GraphMaker {
    var nodes: [Node] = []
    var initializers: [String: Constant] = [:]
    var seed: UInt64
    var counter = 0
    let opset: Int

    init(seed: UInt64 = 1, opset: Int = 17) { self.seed = seed; self.opset = opset }

    func random() -> Float {
        seed = seed &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(seed >> 40) / Double(1 << 24)) * 2 - 1
    }

    func name(_ p: String) -> String { counter += 1; return "\(p)\(counter)" }

    func weight(_ shape: [Int], scale: Float = 0.5, positive: Bool = false) -> String {
        let n = name("w")
        let v = (0..<shape.reduce(1, *)).map { _ in positive ? 0.5 + abs(random()) : random() * scale }
        initializers[n] = .float(Tensor(shape: shape, scalars: v, layout: shape.count == 4 ? .nchw : .plain))
        return n
    }

    func ints(_ v: [Int], shape: [Int]? = nil) -> String {
        let n = name("i")
        initializers[n] = .int(v, shape: shape ?? [v.count])
        return n
    }

    @discardableResult
    func op(_ type: String, _ inputs: [String], _ attrs: [String: Attribute] = [:], outputs: Int = 1) -> [String] {
        let outs = (0..<outputs).map { _ in name(type.lowercased()) }
        nodes.append(Node(name: name(type + "_node"), opType: type, inputs: inputs, outputs: outs, attributes: attrs))
        return outs
    }

    func op1(_ type: String, _ inputs: [String], _ attrs: [String: Attribute] = [:]) -> String { op(type, inputs, attrs)[0] }

    func conv(_ x: String, _ cin: Int, _ cout: Int, k: [Int] = [3, 3], group: Int = 1, bias: Bool = true,
              _ attrs: [String: Attribute] = [:]) -> String {
        var a = attrs
        a["group"] = .int(group)
        a["kernel_shape"] = .ints(k)
        var ins = [x, weight([cout, cin / group] + k)]
        if bias { ins.append(weight([cout], scale: 0.2)) }
        return op1("Conv", ins, a)
    }

    func batchNorm(_ x: String, _ c: Int) -> String {
        op1("BatchNormalization", [x, weight([c], positive: true), weight([c], scale: 0.3), weight([c], scale: 0.3),
                                   weight([c], positive: true)], ["epsilon": .float(1e-3)])
    }

    func graph(input: [ValueInfo.Dimension], output: String) -> Graph {
        Graph(opsetVersion: opset, inputs: [ValueInfo(name: "input", shape: input)], outputs: [ValueInfo(name: output, shape: nil)],
              nodes: nodes, initializers: initializers)
    }
}

func randomInput(_ shape: [Int], seed: UInt64 = 7) -> Tensor {
    var s = seed
    let v = (0..<shape.reduce(1, *)).map { _ -> Float in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(s >> 40) / Double(1 << 24)) * 2 - 1
    }
    return Tensor(shape: shape, scalars: v, layout: .nchw)
}

final class RuntimeTests: XCTestCase {
    /// Runs engine and reference on `shape` and compares.
    func check(_ graph: Graph, _ shape: [Int], engine: InferenceEngine? = nil, tolerance: Float = 2e-4,
               file: StaticString = #filePath, line: UInt = #line) throws {
        let input = randomInput(shape)
        let e = try engine ?? InferenceEngine(graph: graph)
        let got = try e.run(input)
        let want = try ReferenceInterpreter(graph: graph).run(input)
        XCTAssertEqual(got.shape, want.shape, "shape", file: file, line: line)
        guard got.shape == want.shape else { return }
        var worst: Float = 0
        for (g, w) in zip(got.scalars, want.data) {
            worst = max(worst, abs(g - Float(w)) / max(1, abs(Float(w))))
        }
        XCTAssertLessThan(worst, tolerance, "max relative error for input \(shape)", file: file, line: line)
        if shape.count == 4 {
            // The NHWC entry point agrees with the NCHW one.
            let nhwc = try e.runNHWC(input.nchwToNHWC())
            let back = nhwc.rank == 4 ? nhwc.nhwcToNCHW().scalars : nhwc.scalars
            XCTAssertEqual(back, got.scalars, "runNHWC", file: file, line: line)
        }
    }

    func testConvolutionVariantsWithBatchNormAndActivations() throws {
        let variants: [(cin: Int, cout: Int, k: [Int], group: Int, attrs: [String: Attribute])] = [
            (3, 8, [3, 3], 1, ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            (4, 6, [3, 3], 2, ["pads": .ints([1, 1, 1, 1])]),
            (8, 8, [3, 3], 8, ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            (4, 8, [5, 5], 4, ["pads": .ints([2, 2, 2, 2])]),
            (5, 7, [3, 3], 1, ["dilations": .ints([2, 2]), "pads": .ints([2, 2, 2, 2])]),
            (4, 4, [3, 3], 4, ["dilations": .ints([2, 1]), "pads": .ints([2, 1, 2, 1])]),
            (3, 5, [3, 3], 1, ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])]),
            (3, 5, [4, 4], 1, ["auto_pad": .string("SAME_LOWER"), "strides": .ints([2, 2])]),
            (3, 5, [3, 3], 1, ["auto_pad": .string("VALID")]),
            (3, 6, [3, 3], 1, ["pads": .ints([0, 1, 2, 0])]),
            (4, 6, [1, 5], 1, ["pads": .ints([0, 2, 0, 2])]),
            (6, 4, [1, 1], 1, [:]),
            (6, 4, [1, 1], 2, ["strides": .ints([2, 2])]),
        ]
        let activations: [(String, [String: Attribute], Bool)] = [
            ("Relu", [:], false), ("Clip", [:], true), ("HardSwish", [:], false), ("Sigmoid", [:], false),
            ("HardSigmoid", ["alpha": .float(0.25), "beta": .float(0.4)], false), ("", [:], false),
        ]
        for (i, v) in variants.enumerated() {
            let m = GraphMaker(seed: UInt64(i + 1))
            var y = m.conv("input", v.cin, v.cout, k: v.k, group: v.group, bias: i % 2 == 0, v.attrs)
            if i % 3 != 2 { y = m.batchNorm(y, v.cout) }
            let (act, attrs, clip) = activations[i % activations.count]
            if clip {
                y = m.op1("Clip", [y, m.weight([], scale: 0).replacingOccurrences(of: "", with: ""), ""])
                // min = 0 from a zero scalar, max = 6.
                m.nodes[m.nodes.count - 1].inputs[2] = m.name("six")
                m.initializers[m.nodes[m.nodes.count - 1].inputs[2]] = .float(Tensor(6))
                m.initializers[m.nodes[m.nodes.count - 1].inputs[1]] = .float(Tensor(0))
            } else if !act.isEmpty {
                y = m.op1(act, [y], attrs)
            }
            try check(m.graph(input: [.symbolic("N"), .fixed(v.cin), .symbolic("H"), .symbolic("W")], output: y), [2, v.cin, 11, 9])
        }
    }

    func testStandaloneBatchNormAndClipVariants() throws {
        let m = GraphMaker(seed: 3, opset: 13)
        var y = m.batchNorm("input", 4)
        y = m.op1("Relu", [y])
        let lo = m.weight([], scale: 0)
        m.initializers[lo] = .float(Tensor(-0.2))
        let hi = m.name("hi")
        m.initializers[hi] = .float(Tensor(0.3))
        let c = m.conv(y, 4, 4, ["pads": .ints([1, 1, 1, 1])])
        let clipped = m.op1("Clip", [c, lo, hi])
        let out = m.op1("Add", [clipped, y])
        try check(m.graph(input: [.fixed(1), .fixed(4), .fixed(6), .fixed(6)], output: out), [1, 4, 6, 6])
    }

    func testResidualAndSqueezeExcitation() throws {
        let m = GraphMaker(seed: 5)
        let a = m.op1("Relu", [m.batchNorm(m.conv("input", 4, 8), 8)])
        let b = m.conv(a, 8, 8, k: [3, 3], group: 8, ["pads": .ints([1, 1, 1, 1])])
        let pooled = m.op1("GlobalAveragePool", [b])
        let s1 = m.op1("Relu", [m.conv(pooled, 8, 4, k: [1, 1])])
        let s2 = m.op1("HardSigmoid", [m.conv(s1, 4, 8, k: [1, 1])], ["alpha": .float(1.0 / 6), "beta": .float(0.5)])
        let scaled = m.op1("Mul", [b, s2])
        let perChannel = m.op1("Mul", [scaled, m.weight([8, 1, 1])])
        let shifted = m.op1("Sub", [perChannel, m.weight([1, 8, 1, 1])])
        let scalar = m.op1("Div", [shifted, m.weight([], positive: true)])
        let residual = m.op1("Add", [scalar, m.conv(a, 8, 8, k: [1, 1])])
        try check(m.graph(input: [.symbolic("N"), .fixed(4), .fixed(9), .fixed(9)], output: residual), [2, 4, 9, 9])
    }

    func testChannelShuffleWithShapeArithmetic() throws {
        let m = GraphMaker(seed: 9)
        let x = m.conv("input", 4, 12, k: [1, 1])
        // PyTorch's export: reshape target built from Shape/Gather/Unsqueeze/Concat.
        let shape = m.op1("Shape", [x])
        func dim(_ i: Int) -> String { m.op1("Unsqueeze", [m.op1("Gather", [shape, m.ints([i], shape: [])], ["axis": .int(0)]), m.ints([0])]) }
        let n = dim(0), h = dim(2), w = dim(3)
        let five = m.op1("Concat", [n, m.ints([3]), m.ints([4]), h, w], ["axis": .int(0)])
        let r1 = m.op1("Reshape", [x, five])
        let t = m.op1("Transpose", [r1], ["perm": .ints([0, 2, 1, 3, 4])])
        let four = m.op1("Concat", [n, m.ints([-1]), h, w], ["axis": .int(0)])
        let r2 = m.op1("Reshape", [t, four])
        let y = m.conv(r2, 12, 6, k: [3, 3], group: 3, ["pads": .ints([1, 1, 1, 1])])
        let g = m.graph(input: [.symbolic("N"), .fixed(4), .symbolic("H"), .symbolic("W")], output: y)
        let engine = try InferenceEngine(graph: g)
        try check(g, [1, 4, 5, 7], engine: engine)
        try check(g, [3, 4, 6, 4], engine: engine)
    }

    func testConcatSplitSlicePad() throws {
        let m = GraphMaker(seed: 11)
        let x = m.conv("input", 3, 8, ["pads": .ints([1, 1, 1, 1])])
        let parts = m.op("Split", [x, m.ints([3, 5])], ["axis": .int(1)], outputs: 2)
        let cat = m.op1("Concat", [parts[1], parts[0], x], ["axis": .int(1)])
        let s1 = m.op1("Slice", [cat, m.ints([1, 0]), m.ints([100, -1]), m.ints([2, 3]), m.ints([2, 1])])
        let s2 = m.op1("Slice", [s1, m.ints([-1]), m.ints([2]), m.ints([1]), m.ints([-2])])
        let padded = m.op1("Pad", [s2, m.ints([0, 1, 2, 0, 0, 0, 1, 3]), m.weight([], scale: 0.5)])
        let catH = m.op1("Concat", [padded, padded], ["axis": .int(2)])
        let y = m.op1("Relu", [m.conv(catH, 8, 4, k: [1, 1])])
        try check(m.graph(input: [.symbolic("N"), .fixed(3), .fixed(7), .fixed(8)], output: y), [2, 3, 7, 8])
        // Equal split by num_outputs (opset 18) and a slice over the batch.
        let m2 = GraphMaker(seed: 12, opset: 18)
        let x2 = m2.conv("input", 2, 6, k: [1, 1])
        let p2 = m2.op("Split", [x2], ["axis": .int(1), "num_outputs": .int(3)], outputs: 3)
        let sum = m2.op1("Add", [m2.op1("Mul", [p2[0], p2[1]]), p2[2]])
        let sb = m2.op1("Slice", [sum, m2.ints([1]), m2.ints([3]), m2.ints([0])])
        try check(m2.graph(input: [.symbolic("N"), .fixed(2), .fixed(5), .fixed(5)], output: sb), [3, 2, 5, 5])
    }

    func testPoolingWithCeilModeAndPadding() throws {
        let cases: [(String, [String: Attribute])] = [
            ("MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1)]),
            ("MaxPool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])]),
            ("MaxPool", ["kernel_shape": .ints([2, 3]), "strides": .ints([1, 2]), "dilations": .ints([2, 1]), "pads": .ints([1, 0, 0, 1])]),
            ("AveragePool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1), "pads": .ints([1, 1, 1, 1])]),
            ("AveragePool", ["kernel_shape": .ints([3, 3]), "strides": .ints([2, 2]), "ceil_mode": .int(1), "pads": .ints([1, 1, 1, 1]),
                             "count_include_pad": .int(1)]),
            ("AveragePool", ["kernel_shape": .ints([2, 2]), "strides": .ints([2, 2])]),
        ]
        for (i, (op, attrs)) in cases.enumerated() {
            let m = GraphMaker(seed: UInt64(20 + i))
            let y = m.op1(op, [m.conv("input", 3, 5, k: [1, 1])], attrs)
            try check(m.graph(input: [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")], output: y), [2, 3, 10, 9])
        }
    }

    /// Fusions the compiler finds in exported zoo graphs: SiLU written as Mul(x, Sigmoid(x)); Conv → BN → Add → Relu
    /// whose skip is computed after the convolution (ResNet's downsample branch: the fused step must move to the Add);
    /// a Winograd-sized convolution with a residual; and a skip that only broadcasts (not fusable, still correct).
    func testFusedSiLUResidualsAndLateSkip() throws {
        let m = GraphMaker(seed: 41)
        let x = m.batchNorm(m.conv("input", 3, 16, ["pads": .ints([1, 1, 1, 1])]), 16)
        let silu = m.op1("Mul", [m.op1("Sigmoid", [x]), x])
        let main = m.batchNorm(m.conv(silu, 16, 16, ["pads": .ints([1, 1, 1, 1])]), 16)   // Winograd-sized
        let skip = m.conv(silu, 16, 16, k: [1, 1])                                          // produced after `main`
        let joined = m.op1("Relu", [m.op1("Add", [main, skip])])
        let narrow = m.conv(joined, 16, 16, k: [1, 1])
        let broadcastSkip = m.op1("GlobalAveragePool", [joined])
        let broadcastJoin = m.op1("Add", [narrow, broadcastSkip])
        try check(m.graph(input: [.symbolic("N"), .fixed(3), .fixed(20), .fixed(20)], output: broadcastJoin), [2, 3, 20, 20])
    }

    func testClassifierHeadAndSoftmax() throws {
        let m = GraphMaker(seed: 30)
        let x = m.op1("Relu", [m.conv("input", 3, 16, ["strides": .ints([2, 2])])])
        let flat = m.op1("Flatten", [m.op1("GlobalAveragePool", [x])])
        let logits = m.op1("Gemm", [flat, m.weight([10, 16]), m.weight([10])], ["transB": .int(1), "alpha": .float(0.7), "beta": .float(1.3)])
        let y = m.op1("Softmax", [logits], ["axis": .int(1)])
        try check(m.graph(input: [.symbolic("N"), .fixed(3), .fixed(12), .fixed(12)], output: y), [3, 3, 12, 12])
        // ReduceMean (keepdims 0 over H, W; then over channels) and a MatMul head.
        let m2 = GraphMaker(seed: 31, opset: 13)
        let x2 = m2.conv("input", 3, 8)
        let r = m2.op1("ReduceMean", [x2], ["axes": .ints([2, 3]), "keepdims": .int(0)])
        let mm = m2.op1("MatMul", [r, m2.weight([8, 5])])
        let r2 = m2.op1("ReduceMean", [x2], ["axes": .ints([1]), "keepdims": .int(1)])
        let f2 = m2.op1("Flatten", [r2])
        let mm2 = m2.op1("Gemm", [f2, m2.weight([f2 == "" ? 0 : 6 * 6, 5]), m2.weight([1, 5])])
        let y2 = m2.op1("Add", [mm, mm2])
        try check(m2.graph(input: [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)], output: y2), [2, 3, 8, 8])
    }

    func testDynamicBatchReshapeAndLayoutDependentOps() throws {
        let m = GraphMaker(seed: 40)
        let x = m.op1("Relu", [m.conv("input", 3, 4, ["pads": .ints([1, 1, 1, 1])])])
        let shape = m.op1("Shape", [x])
        let n = m.op1("Unsqueeze", [m.op1("Gather", [shape, m.ints([0], shape: [])], ["axis": .int(0)]), m.ints([0])])
        let target = m.op1("Concat", [n, m.ints([-1])], ["axis": .int(0)])
        let flat = m.op1("Reshape", [x, target])  // NCHW order of a 6×6 map: layout-dependent
        let t = m.op1("Transpose", [x], ["perm": .ints([0, 2, 3, 1])])
        let tflat = m.op1("Flatten", [t])
        let both = m.op1("Concat", [flat, tflat], ["axis": .int(1)])
        let y = m.op1("Gemm", [both, m.weight([288, 7])])
        let g = m.graph(input: [.symbolic("N"), .fixed(3), .fixed(6), .fixed(6)], output: y)
        let engine = try InferenceEngine(graph: g)
        try check(g, [1, 3, 6, 6], engine: engine)
        try check(g, [3, 3, 6, 6], engine: engine)
        try check(g, [1, 3, 6, 6], engine: engine)
        // A Gather on the channel axis of an activation and a Squeeze.
        let m2 = GraphMaker(seed: 41)
        let x2 = m2.conv("input", 3, 5, k: [1, 1])
        let gth = m2.op1("Gather", [x2, m2.ints([4, 0, 2])], ["axis": .int(1)])
        let sq = m2.op1("Squeeze", [m2.op1("Gather", [gth, m2.ints([1], shape: [])], ["axis": .int(1)]), m2.ints([0])])
        try check(m2.graph(input: [.fixed(1), .fixed(3), .fixed(4), .fixed(5)], output: sq), [1, 3, 4, 5])
    }

    /// MobileNet's `1×1 → depthwise` pairs with a large intermediate map run as one banded step (one and two
    /// threads, stride 2 then 5×5 stride 1, batch 2); a pair whose pointwise output has a second reader, and one
    /// whose map is too small, run apart. Both agree with the reference.
    func testPointwiseDepthwisePairsFuseWhenLarge() throws {
        let m = GraphMaker(seed: 45)
        let expand = m.op1("Clip", [m.batchNorm(m.conv("input", 8, 32, k: [1, 1]), 32), m.name("zero"), m.name("six")])
        m.initializers[m.nodes.last!.inputs[1]] = .float(Tensor(0))
        m.initializers[m.nodes.last!.inputs[2]] = .float(Tensor(6))
        let down = m.op1("Relu", [m.conv(expand, 32, 32, group: 32, ["strides": .ints([2, 2]), "pads": .ints([1, 1, 1, 1])])])
        let wide = m.op1("Relu", [m.conv(down, 32, 64, k: [1, 1])])
        let five = m.conv(wide, 64, 64, k: [5, 5], group: 64, ["pads": .ints([2, 2, 2, 2])])
        let shared = m.conv(five, 64, 16, k: [1, 1])                       // also read by the Add: not fused
        let depthwise = m.conv(shared, 16, 16, group: 16, ["pads": .ints([1, 1, 1, 1])])
        let out = m.op1("Add", [depthwise, shared])
        let graph = m.graph(input: [.symbolic("N"), .fixed(8), .symbolic("H"), .symbolic("W")], output: out)
        for threads in [1, 2] {
            let engine = try InferenceEngine(graph: graph, options: .init(threads: threads))
            try check(graph, [2, 8, 128, 128], engine: engine)
            let fused = try engine.profile(randomInput([2, 8, 128, 128]), runs: 1).filter { $0.op.contains("fused") }.map(\.op)
            // 128²×32 floats (2 MB per image) fuse on either thread count; 64²×64 (1 MB) on one thread only.
            XCTAssertEqual(fused, threads == 1 ? ["Conv 1×1/1 dense + 3×3/2 depthwise, fused", "Conv 1×1/1 dense + 5×5/1 depthwise, fused"]
                                               : ["Conv 1×1/1 dense + 3×3/2 depthwise, fused"], "\(threads) threads")
            try check(graph, [1, 8, 20, 24], engine: engine)              // small: nothing fuses
            XCTAssertTrue(try engine.profile(randomInput([1, 8, 20, 24]), runs: 1).allSatisfy { !$0.op.contains("fused") })
        }
    }

    func testMemoryPlanReusesBuffers() throws {
        let m = GraphMaker(seed: 50)
        var y = "input"
        var total = 3 * 16 * 16
        for i in 0..<8 {
            y = m.op1("Relu", [m.conv(y, i == 0 ? 3 : 8, 8, ["pads": .ints([1, 1, 1, 1])])])
            total += 8 * 16 * 16
        }
        let engine = try InferenceEngine(graph: m.graph(input: [.symbolic("N"), .fixed(3), .fixed(16), .fixed(16)], output: y))
        XCTAssertEqual(engine.peakActivationBytes, 0)
        try engine.prepare(inputShape: [1, 3, 16, 16])
        let peak = engine.peakActivationBytes
        XCTAssertGreaterThan(peak, 0)
        XCTAssertLessThan(peak, total * 4 / 2, "a chain needs about two live activations, not all of them")
        try engine.prepare(inputShape: [2, 3, 16, 16])
        XCTAssertGreaterThan(engine.peakActivationBytes, peak)
    }

    func testErrorsNameNodeOperatorAndOpset() throws {
        let m = GraphMaker(seed: 60)
        let y = m.op1("LSTM", [m.conv("input", 3, 4)])
        XCTAssertThrowsError(try InferenceEngine(graph: m.graph(input: [.fixed(1), .fixed(3), .fixed(5), .fixed(5)], output: y))) { e in
            let ge = e as? GraphError
            XCTAssertEqual(ge?.opType, "LSTM")
            XCTAssertEqual(ge?.opset, 17)
            XCTAssertNotNil(ge?.node)
        }
        let m2 = GraphMaker(seed: 61)
        let y2 = m2.op1("Add", [m2.conv("input", 3, 4), "nowhere"])
        XCTAssertThrowsError(try InferenceEngine(graph: m2.graph(input: [.fixed(1), .fixed(3), .fixed(5), .fixed(5)], output: y2))) { e in
            XCTAssertTrue("\(e)".contains("nowhere"), "\(e)")
        }
        let m3 = GraphMaker(seed: 62)
        let y3 = m3.op1("Pad", ["input", m3.ints([0, 0, 1, 1, 0, 0, 1, 1])], ["mode": .string("reflect")])
        XCTAssertThrowsError(try InferenceEngine(graph: m3.graph(input: [.fixed(1), .fixed(3), .fixed(5), .fixed(5)], output: y3)))
        // Bad shapes are thrown at planning time, not trapped.
        let m4 = GraphMaker(seed: 63)
        let y4 = m4.op1("Add", [m4.conv("input", 3, 4, k: [1, 1]), m4.weight([1, 3, 1, 1])])
        let e4 = try InferenceEngine(graph: m4.graph(input: [.symbolic("N"), .fixed(3), .symbolic("H"), .symbolic("W")], output: y4))
        XCTAssertThrowsError(try e4.run(randomInput([1, 3, 4, 4]))) { e in XCTAssertEqual((e as? GraphError)?.opType, "Add") }
        let m5 = GraphMaker(seed: 64)
        let y5 = m5.conv("input", 3, 4)
        let e5 = try InferenceEngine(graph: m5.graph(input: [.symbolic("N"), .symbolic("C"), .symbolic("H"), .symbolic("W")], output: y5))
        XCTAssertThrowsError(try e5.run(randomInput([1, 2, 4, 4])))
        XCTAssertThrowsError(try e5.run(randomInput([1, 3, 2, 2])))
        let e6 = try InferenceEngine(graph: m5.graph(input: [.fixed(1), .fixed(3), .fixed(4), .fixed(4)], output: y5))
        XCTAssertThrowsError(try e6.prepare(inputShape: [2, 3, 4, 4]))
    }

    func testThreadsOptionGivesSameResults() throws {
        let m = GraphMaker(seed: 70)
        let y = m.op1("Relu", [m.batchNorm(m.conv("input", 8, 32, ["pads": .ints([1, 1, 1, 1])]), 32)])
        let g = m.graph(input: [.symbolic("N"), .fixed(8), .fixed(20), .fixed(20)], output: y)
        let input = randomInput([2, 8, 20, 20])
        let one = try InferenceEngine(graph: g, options: .init(threads: 1)).run(input)
        let two = try InferenceEngine(graph: g, options: .init(threads: 2)).run(input)
        WorkerPool.shared.threadCount = WorkerPool.shared.maximumThreads
        XCTAssertEqual(one.shape, [2, 32, 20, 20])
        for (a, b) in zip(one.scalars, two.scalars) { XCTAssertEqual(a, b, accuracy: 1e-4) }
    }
}
