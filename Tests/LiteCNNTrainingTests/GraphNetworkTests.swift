// GraphNetwork: a graph interpreted as a trainable Layer. Zoo models exported to graphs must train exactly like the
// Layer tree they came from (forward in both modes, BatchNorm running statistics, every gradient); a small mixed
// graph passes a finite-difference gradient check and matches the inference runtime; a PyTorch-exported ONNX file
// (with its shape arithmetic) matches the runtime; export writes the current parameters back; unsupported operators
// are reported with node, operator and opset.
import Foundation
import LiteCNNGraph
import LiteCNNLayers
import LiteCNNModels
import LiteCNNONNX
import LiteCNNRuntime
import LiteCNNTensor
import LiteCNNTraining
import XCTest
import _TestSupport

final class GraphNetworkTests: XCTestCase {
    /// max |a − b| ≤ tolerance · max(max |b|, tiny).
    func assertClose(_ a: Tensor, _ b: Tensor, tolerance: Float, _ what: String, floor: Float = 1e-6,
                     file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): sizes \(a.shape) vs \(b.shape)", file: file, line: line)
        guard a.count == b.count else { return }
        var worst: Float = 0, scale: Float = 0
        for i in 0..<a.count {
            worst = max(worst, abs(a.scalars[i] - b.scalars[i]))
            scale = max(scale, abs(b.scalars[i]))
        }
        XCTAssertFalse(worst.isNaN, "\(what): NaN", file: file, line: line)
        XCTAssertLessThanOrEqual(worst, tolerance * max(scale, floor), "\(what): max difference \(worst), max |value| \(scale)",
                                 file: file, line: line)
    }

    /// The Layer tree and GraphNetwork(exportGraph(tree)) agree in inference, in training (batch statistics, running
    /// statistics after the step), and in the gradients of the input and of every parameter.
    func checkZooParity(_ name: String, options: ModelOptions = ModelOptions(classCount: 5), size: Int = 32, batch: Int = 3,
                        file: StaticString = #filePath, line: UInt = #line) throws {
        WeightInitialization.seed(17)
        let model = try ModelZoo.build(name, options: options)
        let graph = try exportGraph(model, inputChannels: 3, height: size, width: size)
        let net = try GraphNetwork(graph: graph, imageShape: [3, size, size])
        let modelParameters = model.namedParameters()
        XCTAssertEqual(net.namedParameters().map(\.name).sorted(), modelParameters.map(\.name).sorted(),
                       "\(name): parameter names", file: file, line: line)
        XCTAssertEqual(net.namedParameters().filter { $0.parameter.isTrainable }.count,
                       modelParameters.filter { $0.parameter.isTrainable }.count, file: file, line: line)
        let x = randomTensor([batch, size, size, 3], seed: 5)

        model.eval(); net.eval()
        assertClose(net.forward(x), model.forward(x), tolerance: 1e-4, "\(name) eval forward", file: file, line: line)
        XCTAssertEqual(net.outputShape(for: x.shape), model.outputShape(for: x.shape), file: file, line: line)

        model.train(); net.train()
        for (_, layer) in model.namedLayers() where layer is Dropout || layer is DropPath { layer.isTraining = false }
        model.zeroGradients(); net.zeroGradients()
        let yModel = model.forward(x), yNet = net.forward(x)
        assertClose(yNet, yModel, tolerance: 1e-3, "\(name) training forward", file: file, line: line)
        let g = randomTensor(yModel.shape, seed: 9)
        let dxModel = model.backward(g), dxNet = net.backward(g)
        assertClose(dxNet, dxModel, tolerance: 2e-3, "\(name) input gradient", file: file, line: line)
        // Gradients that are zero in exact arithmetic (a bias before a training-mode BatchNorm) are rounding noise:
        // they are compared against the largest gradient of the model.
        let largest = modelParameters.filter { $0.parameter.isTrainable }.map { $0.parameter.gradient.scalars.map(abs).max() ?? 0 }.max() ?? 1
        for (pname, p) in modelParameters {
            guard let q = net.parameter(named: pname) else { XCTFail("\(name): no parameter \(pname)", file: file, line: line); continue }
            if p.isTrainable {
                assertClose(q.gradient, p.gradient, tolerance: 2e-3, "\(name) gradient of \(pname)", floor: 1e-3 * largest,
                            file: file, line: line)
            } else {
                // A running mean near zero (0.1 · a batch mean of ~1e-6, of activations of order 1) is compared
                // against 1e-4 of 1e-2: the batch mean's rounding noise, which the summation order (thread split)
                // changes, is ~1e-7 of the activations' scale.
                assertClose(q.value, p.value, tolerance: 1e-4, "\(name) running statistic \(pname)", floor: 1e-2, file: file, line: line)
            }
        }
        // The exported graph carries the updated running statistics.
        let exported = net.exportGraph()
        for (pname, p) in modelParameters where !p.isTrainable {
            guard case let .float(t)? = exported.initializers[pname] else { XCTFail("\(pname) not exported"); continue }
            assertClose(t, p.value, tolerance: 1e-4, "\(name) exported \(pname)", floor: 1e-2, file: file, line: line)
        }
    }

    func testSqueezeNetMatchesLayerTree() throws { try checkZooParity("squeezenet1_0", size: 48) }
    func testResNetMatchesLayerTree() throws { try checkZooParity("resnet18") }
    func testMobileNetV2MatchesLayerTree() throws { try checkZooParity("mobilenet_v2", options: ModelOptions(classCount: 5, width: 0.5)) }
    func testMobileNetV3MatchesLayerTree() throws { try checkZooParity("mobilenet_v3_small") }
    func testShuffleNetV2MatchesLayerTree() throws { try checkZooParity("shufflenet_v2_x0_5") }
    func testShuffleNetV1MatchesLayerTree() throws {
        try checkZooParity("shufflenet_v1", options: ModelOptions(classCount: 5, width: 0.5, groups: 3))
    }
    func testEfficientNetMatchesLayerTree() throws { try checkZooParity("efficientnet_b0", size: 64, batch: 2) }

    // MARK: A small mixed graph

    /// `[N, 4, 6, 5]` → Conv → HardSwish → Split → (shuffle via Reshape/Transpose/Reshape, Clip) ‖ (Add broadcast,
    /// Mul by a Sigmoid gate) → Concat → Pad → Slice → AveragePool (ceil, excluding pads) → Mul by
    /// GlobalAveragePool → ReduceMean → Gemm → MatMul → Add bias.
    static func mixedGraph(opset: Int = 17) -> Graph {
        var b = GraphBuilder(name: "mixed", opset: opset)
        b.addInput("x", shape: [.symbolic("batch"), .fixed(4), .fixed(6), .fixed(5)])
        b.addInitializer("conv.weight", randomTensor([6, 4, 3, 3], seed: 1, range: -0.4...0.4))
        b.addInitializer("conv.bias", randomTensor([6], seed: 2))
        let c = b.add("Conv", name: "conv", inputs: ["x", "conv.weight", "conv.bias"],
                      attributes: ["pads": .ints([1, 1, 1, 1]), "kernel_shape": .ints([3, 3])])
        let hs = b.add("HardSwish", name: "hs", inputs: [c])
        let parts = b.addNode("Split", name: "split", inputs: [hs, b.int([4, 2])], outputCount: 2, attributes: ["axis": .int(1)])
        // Channel shuffle of the first part (4 channels, 2 groups), with the batch from Shape arithmetic.
        let shape = b.add("Shape", name: "shape", inputs: [parts[0]])
        let batch = b.add("Gather", name: "gather", inputs: [shape, b.addIntInitializer("zero", [0], shape: [])], attributes: ["axis": .int(0)])
        let batch1 = b.add("Unsqueeze", name: "unsq", inputs: [batch, b.int([0])])
        let target = b.add("Concat", name: "target", inputs: [batch1, b.int([2, 2, 6, 5])], attributes: ["axis": .int(0)])
        let grouped = b.add("Reshape", name: "r1", inputs: [parts[0], target])
        let swapped = b.add("Transpose", name: "tr", inputs: [grouped], attributes: ["perm": .ints([0, 2, 1, 3, 4])])
        let shuffled = b.add("Reshape", name: "r2", inputs: [swapped, b.int([-1, 4, 6, 5])])
        let clipped = b.add("Clip", name: "clip", inputs: [shuffled, b.floatScalar(-0.3), b.floatScalar(0.5)])
        let biased = b.add("Add", name: "add_c", inputs: [parts[1], b.addInitializer("cbias", randomTensor([2, 1, 1], seed: 3))])
        let gate = b.add("Sigmoid", name: "sig", inputs: [biased])
        let gated = b.add("Mul", name: "mul_gate", inputs: [biased, gate])
        let joined = b.add("Concat", name: "cat", inputs: [clipped, gated], attributes: ["axis": .int(1)])
        let padded = b.add("Pad", name: "pad", inputs: [joined, b.int([0, 0, 1, 0, 0, 0, 0, 2])])
        let sliced = b.add("Slice", name: "slice", inputs: [padded, b.int([1, 6]), b.int([7, 0]), b.int([2, 3]), b.int([1, -2])])
        let pooled = b.add("AveragePool", name: "avg", inputs: [sliced], attributes: [
            "kernel_shape": .ints([3, 2]), "strides": .ints([2, 2]), "pads": .ints([1, 0, 1, 1]), "ceil_mode": .int(1),
            "count_include_pad": .int(0)])
        let g = b.add("GlobalAveragePool", name: "gap", inputs: [pooled])
        let scaled = b.add("Mul", name: "mul_se", inputs: [pooled, g])
        let mean = b.add("ReduceMean", name: "mean", inputs: [scaled], attributes: ["axes": .ints([2, 3]), "keepdims": .int(0)])
        b.addInitializer("fc.weight", randomTensor([3, 6], seed: 4))
        b.addInitializer("fc.bias", randomTensor([3], seed: 5))
        let fc = b.add("Gemm", name: "fc", inputs: [mean, "fc.weight", "fc.bias"], attributes: ["transB": .int(1), "alpha": .float(0.7)])
        b.addInitializer("proj", randomTensor([3, 4], seed: 6))
        let proj = b.add("MatMul", name: "mm", inputs: [fc, "proj"])
        let out = b.add("Add", name: "out", inputs: [proj, b.addInitializer("obias", randomTensor([4], seed: 7))])
        b.renameValue(out, to: "y")
        b.addOutput("y", shape: [.symbolic("batch"), .fixed(4)])
        return b.build()
    }

    func testMixedGraphGradientsMatchFiniteDifferences() throws {
        let net = try GraphNetwork(graph: Self.mixedGraph(), imageShape: [4, 6, 5])
        XCTAssertEqual(net.namedParameters().map(\.name).sorted(), ["conv.bias", "conv.weight", "fc.bias", "fc.weight", "proj"])
        let x = randomTensor([2, 6, 5, 4], seed: 11)
        let report = checkGradients(net, input: x, epsilon: 1e-3, tolerance: 1e-2, samples: 64)
        XCTAssertGreaterThan(report.checked, 150)
    }

    func testMixedGraphMatchesInferenceEngine() throws {
        let graph = Self.mixedGraph()
        let net = try GraphNetwork(graph: graph, imageShape: [4, 6, 5])
        let engine = try InferenceEngine(graph: graph)
        for batch in [1, 3] {   // a batch other than the folding's: the Reshape target is refolded
            let x = randomTensor([batch, 6, 5, 4], seed: UInt64(20 + batch))
            net.eval()
            assertClose(net.forward(x), try engine.runNHWC(x), tolerance: 1e-5, "eval batch \(batch)")
            net.train()
            assertClose(net.forward(x), try engine.runNHWC(x), tolerance: 1e-5, "train batch \(batch)")
        }
    }

    func testValueHookSeesEveryNodeOutputAndIsStraightThrough() throws {
        let graph = Self.mixedGraph()
        let net = try GraphNetwork(graph: graph, imageShape: [4, 6, 5])
        let x = randomTensor([2, 6, 5, 4], seed: 3)
        var seen: [String] = []
        net.valueHook = { name, _ in seen.append(name) }
        net.train()
        let y = net.forward(x)
        XCTAssertEqual(seen, net.graph.nodes.flatMap(\.outputs))
        let g = randomTensor(y.shape, seed: 4)
        net.zeroGradients()
        let dxPlain = net.backward(g)
        let gradPlain = net.parameter(named: "fc.weight")!.gradient

        // Rounding the Conv output to a grid (fake quantization) changes the forward and what later layers saved, so
        // the weight gradients change; backward still runs through the hooked value as the identity.
        let conv = graph.nodes[0].outputs[0]
        net.valueHook = { name, t in
            if name == conv { t.scalars = t.scalars.map { ($0 * 4).rounded() / 4 } }
            if t.rank == 4 { XCTAssertEqual(t.layout, .nhwc) }
        }
        let yq = net.forward(x)
        XCTAssertGreaterThan(zip(yq.scalars, y.scalars).map { abs($0 - $1) }.max()!, 1e-4)
        net.zeroGradients()
        let dxQ = net.backward(g)
        XCTAssertEqual(dxQ.shape, dxPlain.shape)
        XCTAssertNotEqual(net.parameter(named: "fc.weight")!.gradient, gradPlain)
        // Identity hook: same gradients as without a hook.
        net.valueHook = { _, _ in }
        _ = net.forward(x)
        net.zeroGradients()
        XCTAssertEqual(net.backward(g), dxPlain)
        XCTAssertEqual(net.parameter(named: "fc.weight")!.gradient, gradPlain)
    }

    func testMaxPoolAndAsymmetricWindowsMatchInferenceEngine() throws {
        var b = GraphBuilder(name: "pools", opset: 13)
        b.addInput("x", shape: [.symbolic("batch"), .fixed(3), .fixed(9), .fixed(7)])
        let m = b.add("MaxPool", name: "max", inputs: ["x"], attributes: [
            "kernel_shape": .ints([3, 2]), "strides": .ints([2, 1]), "pads": .ints([1, 0, 0, 1]), "ceil_mode": .int(1)])
        let a = b.add("AveragePool", name: "avg", inputs: [m], attributes: [
            "kernel_shape": .ints([2, 3]), "strides": .ints([1, 2]), "pads": .ints([1, 1, 1, 1]), "count_include_pad": .int(1)])
        let f = b.add("Flatten", name: "flat", inputs: [a], attributes: ["axis": .int(1)])
        let s = b.add("Softmax", name: "softmax", inputs: [f], attributes: ["axis": .int(1)])
        b.addOutput(s, shape: nil)
        let graph = b.build()
        let net = try GraphNetwork(graph: graph, imageShape: [3, 9, 7])
        let x = randomTensor([2, 9, 7, 3], seed: 8)
        assertClose(net.forward(x), try InferenceEngine(graph: graph).runNHWC(x), tolerance: 1e-5, "pools")
        // Distinct values: no ties for the max, so finite differences are valid.
        var distinct = x
        for i in 0..<distinct.count { distinct.scalars[i] = Float((i * 37) % distinct.count) / Float(distinct.count) }
        checkGradients(net, input: distinct, epsilon: 1e-4, tolerance: 1e-2)
    }

    // MARK: Export

    func testExportGraphWritesBackChangedParameters() throws {
        let graph = Self.mixedGraph()
        let net = try GraphNetwork(graph: graph, imageShape: [4, 6, 5])
        let w = net.parameter(named: "conv.weight")!
        w.value.scalars = w.value.scalars.map { $0 * -1.5 + 0.25 }
        net.parameter(named: "proj")!.value.scalars[3] = 42
        let exported = net.exportGraph()
        guard case let .float(t)? = exported.initializers["conv.weight"] else { return XCTFail("conv.weight missing") }
        XCTAssertEqual(t.shape, [6, 4, 3, 3])
        XCTAssertEqual(t.scalars, w.value.scalars)
        guard case let .float(p)? = exported.initializers["proj"] else { return XCTFail("proj missing") }
        XCTAssertEqual(p.scalars[3], 42)
        XCTAssertEqual(exported.nodes, graph.nodes)
        // Constants that are not parameters are untouched; a network of the export computes what the changed one does.
        XCTAssertEqual(exported.initializers["cbias"], graph.initializers["cbias"])
        let x = randomTensor([2, 6, 5, 4], seed: 30)
        net.eval()
        let again = try GraphNetwork(graph: exported, imageShape: [4, 6, 5])
        XCTAssertEqual(again.forward(x), net.forward(x))
        assertClose(try InferenceEngine(graph: exported).runNHWC(x), net.forward(x), tolerance: 1e-5, "runtime on export")
    }

    func testTrainedZooModelExportsToTheRuntime() throws {
        WeightInitialization.seed(3)
        let model = try ModelZoo.build("mobilenet_v3_small", options: ModelOptions(classCount: 4))
        let net = try GraphNetwork(graph: try exportGraph(model, inputChannels: 3, height: 32, width: 32), imageShape: [3, 32, 32])
        let x = randomTensor([4, 32, 32, 3], seed: 2)
        net.train()
        let y = net.forward(x)
        _ = net.backward(randomTensor(y.shape, seed: 1))
        for p in net.trainableParameters { p.value.scalars = zip(p.value.scalars, p.gradient.scalars).map { $0 - 0.01 * $1 } }
        net.eval()
        let engine = try InferenceEngine(graph: net.exportGraph())
        assertClose(try engine.runNHWC(x), net.forward(x), tolerance: 1e-4, "runtime after a training step")
    }

    // MARK: ONNX file exported by PyTorch

    /// The PyTorch-exported ShuffleNet V2 fixture (opset 21: Shape/Gather/Div/Cast/Unsqueeze feeding Reshape, Slice
    /// for the channel split) and MobileNet V2 (Constant nodes for the Clip bounds, a non-square input). Its external weights are not committed: they load from a zero-filled file and are then
    /// replaced by random values (running variances positive); GraphNetwork must match the runtime on that graph.
    func testPyTorchONNXFixtureMatchesInferenceEngine() throws {
        for (file, h, w) in [("shufflenet_v2_x0_5", 64, 64), ("mobilenet_v2", 80, 48)] {
            let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("LiteCNNONNXTests/Fixtures")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("graphnet-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            let url = dir.appendingPathComponent("\(file).onnx")
            try FileManager.default.copyItem(at: fixtures.appendingPathComponent("\(file).onnx"), to: url)
            let weights = dir.appendingPathComponent("\(file).weights")
            XCTAssertTrue(FileManager.default.createFile(atPath: weights.path, contents: nil))
            let handle = try FileHandle(forWritingTo: weights)
            try handle.truncate(atOffset: 64 << 20)
            try handle.close()
            var graph = try ONNXFile.load(contentsOf: url)
            var seed: UInt64 = 100
            for (name, c) in graph.initializers.sorted(by: { $0.key < $1.key }) {
                guard case let .float(t) = c, t.count > 1, t.scalars.allSatisfy({ $0 == 0 }) else { continue }
                seed += 1
                let range: ClosedRange<Float> = name.hasSuffix("running_var") ? 0.5...1.5 : -0.3...0.3
                graph.initializers[name] = .float(Tensor(shape: t.shape, scalars: randomTensor(t.shape, seed: seed, range: range).scalars,
                                                         layout: t.layout))
            }
            let net = try GraphNetwork(graph: graph, imageShape: [3, h, w])
            XCTAssertGreaterThan(net.graph.nodes.count, 10)
            XCTAssertFalse(net.graph.nodes.contains { ["Shape", "Gather", "Unsqueeze", "Constant", "Cast"].contains($0.opType) },
                           "\(file): shape arithmetic folded")
            let x = randomTensor([2, h, w, 3], seed: 77)
            net.eval()
            let y = net.forward(x)
            assertClose(y, try InferenceEngine(graph: graph).runNHWC(x), tolerance: 1e-4, "\(file) vs runtime")
            // It trains: a backward pass reaches every weight.
            net.train()
            let yt = net.forward(x)
            net.zeroGradients()
            _ = net.backward(randomTensor(yt.shape, seed: 5))
            for (name, p) in net.namedParameters() where p.isTrainable {
                XCTAssertTrue(p.gradient.scalars.contains { $0 != 0 }, "\(file): no gradient reached \(name)")
            }
        }
    }

    // MARK: Errors

    func testUnsupportedOperatorNamesNodeOperatorAndOpset() throws {
        for op in ["Tanh", "LSTM"] {
            var b = GraphBuilder(name: "bad", opset: 15)
            b.addInput("x", shape: [.fixed(1), .fixed(2), .fixed(3), .fixed(3)])
            let r = b.add("Relu", name: "ok", inputs: ["x"])
            let t = b.add(op, name: "the_node", inputs: [r])
            b.addOutput(t, shape: nil)
            XCTAssertThrowsError(try GraphNetwork(graph: b.build(), imageShape: [2, 3, 3])) { error in
                guard let e = error as? GraphError else { return XCTFail("not a GraphError: \(error)") }
                XCTAssertEqual(e.node, "the_node")
                XCTAssertEqual(e.opType, op)
                XCTAssertEqual(e.opset, 15)
                XCTAssertTrue(e.description.contains("the_node") && e.description.contains(op) && e.description.contains("15"))
            }
        }
        // Shapes that do not fit: an error, not a trap.
        XCTAssertThrowsError(try GraphNetwork(graph: Self.mixedGraph(), imageShape: [3, 6, 5]))
    }

    func testFoldingResolvesShapeArithmetic() throws {
        let folded = try GraphFolding.fold(Self.mixedGraph(), inputShape: [7, 4, 6, 5])
        XCTAssertFalse(folded.graph.nodes.contains { ["Shape", "Gather", "Unsqueeze"].contains($0.opType) })
        guard let reshape = folded.graph.nodes.first(where: { $0.name == "r1" }),
              case let .int(target, _)? = folded.graph.initializers[reshape.inputs[1]] else { return XCTFail("no folded target") }
        XCTAssertEqual(target, [7, 2, 2, 6, 5])
        XCTAssertEqual(folded.shapes["y"], [7, 4])
        XCTAssertEqual(folded.shapes[reshape.outputs[0]], [7, 2, 2, 6, 5])
    }
}
