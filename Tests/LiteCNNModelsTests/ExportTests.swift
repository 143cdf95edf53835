import Foundation
import LiteCNNGraph
import LiteCNNIO
import LiteCNNLayers
import LiteCNNModels
import LiteCNNONNX
import LiteCNNRuntime
import LiteCNNTensor
import XCTest
import _TestSupport

/// Export of every zoo family to a graph with ONNX semantics: graph structure (every value defined, initializers =
/// the state_dict, allowed operators) and numbers (a reference evaluator of the ONNX operators, written here from the
/// ONNX definitions in NCHW, must reproduce `model.forward` on the NHWC input).
///
/// With `LITECNN_EXPORT_DIR` set, each case also writes `<name>.onnx`, `<name>.input.npy` (NCHW) and
/// `<name>.output.npy` there for scripts/check_export_onnxruntime.py.
final class ExportTests: XCTestCase {
    static let allowedOps: Set<String> = [
        "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Mul", "Add", "MaxPool",
        "AveragePool", "GlobalAveragePool", "Flatten", "Gemm", "Concat", "Split", "Reshape", "Transpose", "Softmax",
        "Identity", "Slice", "ReduceMean",
    ]

    // MARK: One variant of every family

    func testSqueezeNet() throws { try check("squeezenet1_0", resolution: 64) }
    func testSqueezeNetBypasses() throws {
        try check("squeezenet1_0_bypass", resolution: 64)
        try check("squeezenet1_0_complex_bypass", resolution: 64)
    }
    func testSqueezeNetBatchNorm() throws { try check("squeezenet1_1_bn", resolution: 64) }
    func testMobileNetV1() throws { try check("mobilenet_v1", resolution: 64, width: 0.5) }
    func testMobileNetV2() throws { try check("mobilenet_v2", resolution: 64) }
    func testMobileNetV3Small() throws { try check("mobilenet_v3_small", resolution: 64) }
    func testMobileNetV3LargeOpset13() throws {
        // Before opset 14 HardSwish becomes x · HardSigmoid(x).
        let graph = try check("mobilenet_v3_large", resolution: 64, opset: 13)
        XCTAssertFalse(graph.nodes.contains { $0.opType == "HardSwish" })
    }
    func testShuffleNetV1() throws { try check("shufflenet_v1", resolution: 64) }
    func testShuffleNetV2() throws { try check("shufflenet_v2_x0_5", resolution: 64) }
    func testEfficientNet() throws { try check("efficientnet_b0", resolution: 64) }
    func testResNetBasicAndBottleneck() throws {
        try check("resnet18", resolution: 64)
        try check("resnet50", resolution: 64)
    }
    // AlexNet and VGG pool adaptively to 6×6 and 7×7: exportable where the features divide evenly (224).
    func testAlexNet() throws { try check("alexnet", resolution: 224, batch: 1) }
    // VGG at 224 is 7.6 G multiply-adds: checked against the runtime only, not the (slower) reference evaluator.
    func testVGG() throws { try check("vgg11_bn", resolution: 224, batch: 1, reference: false) }

    // MARK: Errors and options

    // At low resolution AlexNet and VGG pool a 1×1 or 2×2 map adaptively to 6×6 / 7×7 (repeated and overlapping
    // bins): exported as Slice/ReduceMean/Concat, checked against the layer tree.
    func testAdaptivePoolingWithUnevenBinsIsExact() throws {
        try check("alexnet", resolution: 64, batch: 2)
        try check("vgg11", resolution: 64, batch: 2)
        try check("vgg11", resolution: 96, batch: 1)
        let model = try ModelZoo.build("vgg11", options: ModelOptions(classCount: 10))
        let graph = try exportGraph(model, inputChannels: 3, height: 64, width: 64, opset: 18)
        XCTAssertTrue(graph.nodes.contains { $0.opType == "ReduceMean" && $0.inputs.count == 2 }, "opset 18 passes axes as an input")
    }

    func testStaticBatchAndMetadata() throws {
        let model = try ModelZoo.build("mobilenet_v3_small", options: ModelOptions(classCount: 10))
        let graph = try exportGraph(model, inputChannels: 3, height: 32, width: 32, dynamicBatch: false)
        XCTAssertEqual(graph.inputs.first?.shape, [.fixed(1), .fixed(3), .fixed(32), .fixed(32)])
        XCTAssertEqual(graph.outputs.first?.shape, [.fixed(1), .fixed(10)])
        XCTAssertEqual(graph.metadata["litecnn.model"], "mobilenet_v3_small")
        XCTAssertEqual(graph.metadata["litecnn.classes"], "10")
        XCTAssertThrowsError(try exportGraph(model, inputChannels: 3, height: 32, width: 32, opset: 9))
    }

    func testUnsupportedLayerIsNamed() throws {
        final class Opaque: ShapePreservingLayer {
            var isTraining = false
            func forward(_ input: Tensor) -> Tensor { input }
            func backward(_ gradOutput: Tensor) -> Tensor { gradOutput }
        }
        let model = Sequential(Conv2D(3, 4, kernelSize: 3), Opaque())
        XCTAssertThrowsError(try exportGraph(model, inputChannels: 3, height: 8, width: 8)) { error in
            XCTAssertTrue(String(describing: error).contains("'1'"), String(describing: error))
            XCTAssertTrue(String(describing: error).contains("Opaque"), String(describing: error))
        }
    }

    func testLayerLevelExportsMatchForward() throws {
        // Layers the zoo does not use at the top level: Residual with and without a shortcut, Concat, Softmax on
        // images and vectors, ReLU6 as Clip, AvgPool with ceil mode and without counting padding, channel shuffle.
        let aligned = Sequential([
            Conv2D(3, 8, kernelSize: 3, padding: 1),
            Residual(Sequential(Conv2D(8, 8, kernelSize: 3, padding: 1), ReLU6())),
            Residual(Conv2D(8, 8, kernelSize: 1), shortcut: Conv2D(8, 8, kernelSize: 3, padding: 1), bodyName: "a", shortcutName: "b"),
            Concat([("x", Conv2D(8, 4, kernelSize: 3, stride: 2, padding: 1) as any Layer),
                    ("y", AvgPool2D(kernelSize: 3, stride: 2, padding: 1, ceilMode: false, countIncludePad: false))]),
            ChannelShuffle(groups: 3),
            AvgPool2D(kernelSize: 3, stride: 2, ceilMode: true),
            Softmax(),
            MaxPool2D(kernelSize: 2, stride: 2, ceilMode: true),
            AdaptiveAvgPool2D(outputSize: (1, 1)),
            Flatten(),
            Linear(12, 5),
            SiLU(),
            Softmax(),
        ] as [any Layer])
        try checkModel(aligned, name: "layers", channels: 3, resolution: 13, batch: 2, opset: 17)
    }

    // MARK: The check

    @discardableResult
    func check(_ name: String, resolution: Int, batch: Int = 2, width: Double? = nil, opset: Int = 17,
               reference: Bool = true) throws -> Graph {
        let model = try ModelZoo.build(name, options: ModelOptions(classCount: 10, width: width))
        let graph = try checkModel(model, name: name, channels: 3, resolution: resolution, batch: batch, opset: opset,
                                   reference: reference)
        if width == nil { XCTAssertEqual(graph.metadata["litecnn.model"], name.hasPrefix("shufflenet_v1") ? "shufflenet_v1_g3" : name) }
        return graph
    }

    @discardableResult
    func checkModel(_ model: any Layer, name: String, channels: Int, resolution: Int, batch: Int, opset: Int,
                    reference: Bool = true) throws -> Graph {
        model.eval()
        randomizeBatchNorm(model)
        let graph = try exportGraph(model, inputChannels: channels, height: resolution, width: resolution, opset: opset)
        checkStructure(graph, model: model, name: name)

        let input = randomTensor([batch, resolution, resolution, channels], seed: 0xE4_0517)
        let expected = model.forward(input)
        let inputNCHW = input.nhwcToNCHW()
        let expectedLogical = expected.rank == 4 ? expected.nhwcToNCHW() : expected
        let scale = expectedLogical.scalars.reduce(0) { max($0, abs($1)) }
        let actual = reference ? try ReferenceEvaluator(graph: graph).run(inputNCHW) : expectedLogical
        XCTAssertEqual(actual.shape, expectedLogical.shape, name)
        let worst = zip(actual.scalars, expectedLogical.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
        XCTAssertLessThanOrEqual(worst, 1e-4 * max(scale, 1e-3), "\(name): max |Δ| \(worst), max |y| \(scale)")

        // The inference runtime runs the exported graph (NCHW in), also at another batch size (dynamic batch).
        let engine = try InferenceEngine(graph: graph)
        let fromEngine = try engine.run(inputNCHW)
        XCTAssertEqual(fromEngine.shape, expectedLogical.shape, "\(name): runtime")
        let engineWorst = zip(fromEngine.scalars, expectedLogical.scalars).reduce(0) { max($0, abs($1.0 - $1.1)) }
        XCTAssertLessThanOrEqual(engineWorst, 1e-4 * max(scale, 1e-3), "\(name): runtime max |Δ| \(engineWorst), max |y| \(scale)")
        if batch > 1 {
            let one = try engine.run(inputNCHW.slice(outer: 0..<1))
            let firstRow = Array(expectedLogical.scalars[0..<(expectedLogical.count / batch)])
            let oneWorst = zip(one.scalars, firstRow).reduce(0) { max($0, abs($1.0 - $1.1)) }
            XCTAssertEqual(one.count, firstRow.count, "\(name): runtime batch 1")
            XCTAssertLessThanOrEqual(oneWorst, 1e-4 * max(scale, 1e-3), "\(name): runtime batch 1 max |Δ| \(oneWorst)")
        }

        if let folder = ProcessInfo.processInfo.environment["LITECNN_EXPORT_DIR"], !folder.isEmpty {
            let directory = URL(fileURLWithPath: folder, isDirectory: true)
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            try ONNXFile.write(graph, to: directory.appendingPathComponent("\(name).onnx"))
            try NPY.write(inputNCHW, to: directory.appendingPathComponent("\(name).input.npy"))
            try NPY.write(expectedLogical, to: directory.appendingPathComponent("\(name).output.npy"))
        }
        return graph
    }

    /// Running statistics and affine parameters away from their identity initialization, so that a swapped or
    /// missing BatchNormalization input shows in the numbers.
    func randomizeBatchNorm(_ model: any Layer) {
        var seed: UInt64 = 0xB47C
        for (_, layer) in model.namedLayers() {
            guard let bn = layer as? BatchNorm2D else { continue }
            seed &+= 4
            let c = bn.channels
            bn.weight.value = randomTensor([c], seed: seed, range: 0.5...1.5)
            bn.bias.value = randomTensor([c], seed: seed + 1, range: -0.2...0.2)
            bn.runningMean.value = randomTensor([c], seed: seed + 2, range: -0.2...0.2)
            bn.runningVariance.value = randomTensor([c], seed: seed + 3, range: 0.5...2)
        }
    }

    func checkStructure(_ graph: Graph, model: any Layer, name: String) {
        XCTAssertEqual(graph.inputs.map(\.name), ["input"], name)
        XCTAssertEqual(graph.inputs.first?.shape?.first, .symbolic("batch"), name)
        XCTAssertEqual(graph.outputs.map(\.name), ["logits"], name)
        var defined = Set(graph.inputs.map(\.name)).union(graph.initializers.keys)
        var nodeNames = Set<String>()
        for node in graph.nodes {
            XCTAssertTrue(Self.allowedOps.contains(node.opType), "\(name): operator \(node.opType) of \(node.name)")
            XCTAssertTrue(nodeNames.insert(node.name).inserted, "\(name): node name \(node.name) twice")
            for value in node.inputs where !value.isEmpty {
                XCTAssertTrue(defined.contains(value), "\(name): \(node.name) reads undefined \(value)")
            }
            for value in node.outputs {
                XCTAssertTrue(defined.insert(value).inserted, "\(name): \(value) produced twice")
            }
        }
        XCTAssertTrue(defined.contains("logits"), name)
        let parameters = model.namedParameters()
        let parameterNames = Set(parameters.map(\.name))
        for (parameterName, parameter) in parameters {
            guard case let .float(tensor)? = graph.initializers[parameterName] else {
                XCTFail("\(name): no float initializer \(parameterName)")
                continue
            }
            XCTAssertEqual(tensor.shape, parameter.shape, "\(name): \(parameterName)")
            XCTAssertEqual(tensor.scalars, parameter.value.scalars, "\(name): \(parameterName)")
        }
        for key in graph.initializers.keys where !parameterNames.contains(key) {
            XCTAssertTrue(key.hasPrefix("const."), "\(name): initializer \(key) is neither a parameter nor a constant")
        }
        // Every initializer is used.
        let used = Set(graph.nodes.flatMap(\.inputs))
        for key in graph.initializers.keys { XCTAssertTrue(used.contains(key), "\(name): initializer \(key) unused") }
    }
}

// MARK: - A reference evaluator of the exported operators (ONNX definitions, NCHW, plain loops)

/// Evaluates a graph with the ONNX operators export emits, written from the operator definitions: NCHW tensors,
/// convolution through the library's convolution kernel on a layout copy (the kernel is tested elsewhere; what is
/// checked here is how the attributes map), everything else in plain loops.
struct ReferenceEvaluator {
    let graph: Graph

    struct Failure: Error, CustomStringConvertible { var description: String }

    func run(_ input: Tensor) throws -> Tensor {
        var values: [String: Tensor] = [:]
        var ints: [String: [Int]] = [:]
        for (name, constant) in graph.initializers {
            switch constant {
            case let .float(t): values[name] = t
            case let .int(v, _): ints[name] = v
            }
        }
        values[graph.inputs[0].name] = input
        for node in graph.nodes {
            func x(_ i: Int) throws -> Tensor {
                guard let t = values[node.inputs[i]] else { throw Failure(description: "\(node.name): missing \(node.inputs[i])") }
                return t
            }
            let outputs: [Tensor]
            switch node.opType {
            case "Conv": outputs = [conv(try x(0), try x(1), node.inputs.count > 2 ? try x(2) : nil, node)]
            case "BatchNormalization":
                let (t, s, b, m, v) = (try x(0), try x(1), try x(2), try x(3), try x(4))
                let eps = node.float("epsilon") ?? 1e-5
                outputs = [perChannel(t) { c, value in (value - m.scalars[c]) / (v.scalars[c] + eps).squareRoot() * s.scalars[c] + b.scalars[c] }]
            case "Relu": outputs = [map(try x(0)) { max($0, 0) }]
            case "Clip":
                let low = node.inputs.count > 1 ? try x(1).scalars[0] : (node.float("min") ?? -.infinity)
                let high = node.inputs.count > 2 ? try x(2).scalars[0] : (node.float("max") ?? .infinity)
                outputs = [map(try x(0)) { min(max($0, low), high) }]
            case "Sigmoid": outputs = [map(try x(0)) { 1 / (1 + exp(-$0)) }]
            case "HardSigmoid":
                let (a, b) = (node.float("alpha") ?? 0.2, node.float("beta") ?? 0.5)
                outputs = [map(try x(0)) { max(0, min(1, a * $0 + b)) }]
            case "HardSwish": outputs = [map(try x(0)) { $0 * max(0, min(1, $0 / 6 + 0.5)) }]
            case "Mul": outputs = [try broadcast(try x(0), try x(1), *)]
            case "Add": outputs = [try broadcast(try x(0), try x(1), +)]
            case "MaxPool", "AveragePool": outputs = [pool(try x(0), node)]
            case "GlobalAveragePool":
                let t = try x(0)
                let (n, c, hw) = (t.shape[0], t.shape[1], t.shape[2] * t.shape[3])
                outputs = [Tensor(shape: [n, c, 1, 1], scalars: (0..<(n * c)).map { i in
                    t.scalars[(i * hw)..<((i + 1) * hw)].reduce(0, +) / Float(hw) }, layout: .nchw)]
            case "Flatten":
                let t = try x(0)
                outputs = [Tensor(shape: [t.shape[0], t.count / max(1, t.shape[0])], scalars: t.scalars)]
            case "Gemm":
                let (a, w) = (try x(0), try x(1))
                let (m, k, n) = (a.shape[0], a.shape[1], w.shape[0])
                precondition(node.int("transB") == 1)
                var out = [Float](repeating: 0, count: m * n)
                for i in 0..<m { for j in 0..<n {
                    var s: Float = node.inputs.count > 2 ? try x(2).scalars[j] : 0
                    for p in 0..<k { s += a.scalars[i * k + p] * w.scalars[j * k + p] }
                    out[i * n + j] = s
                } }
                outputs = [Tensor(shape: [m, n], scalars: out)]
            case "Concat": outputs = [concat(try node.inputs.indices.map(x), axis: node.int("axis") ?? 1)]
            case "Split":
                let t = try x(0)
                let sizes = node.inputs.count > 1 ? ints[node.inputs[1]]! : node.ints("split")!
                outputs = split(t, axis: node.int("axis") ?? 0, sizes: sizes)
            case "Reshape":
                let t = try x(0)
                var shape = ints[node.inputs[1]]!
                for i in shape.indices where shape[i] == 0 { shape[i] = t.shape[i] }
                if let free = shape.firstIndex(of: -1) { shape[free] = t.count / shape.filter { $0 != -1 }.reduce(1, *) }
                outputs = [Tensor(shape: shape, scalars: t.scalars, layout: .plain)]
            case "Transpose": outputs = [transpose(try x(0), perm: node.ints("perm")!)]
            case "Softmax": outputs = [softmax(try x(0), axis: node.int("axis") ?? -1)]
            case "Identity": outputs = [try x(0)]
            case "Slice":
                // Rank-4 slices along one axis with step 1 (what adaptive pooling exports).
                let t = try x(0)
                let (start, end, axis) = (ints[node.inputs[1]]![0], ints[node.inputs[2]]![0], ints[node.inputs[3]]![0])
                var shape = t.shape
                shape[axis] = end - start
                let inner = t.shape[(axis + 1)...].reduce(1, *), outer = t.shape[..<axis].reduce(1, *)
                var out: [Float] = []
                for o in 0..<outer {
                    let base = o * t.shape[axis] * inner
                    out += t.scalars[(base + start * inner)..<(base + end * inner)]
                }
                outputs = [Tensor(shape: shape, scalars: out)]
            case "ReduceMean":
                let t = try x(0)
                let axis = node.inputs.count > 1 ? ints[node.inputs[1]]![0] : node.ints("axes")![0]
                var shape = t.shape
                shape[axis] = 1
                let inner = t.shape[(axis + 1)...].reduce(1, *), outer = t.shape[..<axis].reduce(1, *), n = t.shape[axis]
                var out = [Float](repeating: 0, count: outer * inner)
                for o in 0..<outer { for i in 0..<inner {
                    var sum: Float = 0
                    for k in 0..<n { sum += t.scalars[(o * n + k) * inner + i] }
                    out[o * inner + i] = sum / Float(n)
                } }
                outputs = [Tensor(shape: shape, scalars: out)]
            default: throw Failure(description: "\(node.name): no reference for \(node.opType)")
            }
            for (name, value) in zip(node.outputs, outputs) { values[name] = value }
        }
        guard let result = values[graph.outputs[0].name] else { throw Failure(description: "no output") }
        return result
    }

    func map(_ t: Tensor, _ f: (Float) -> Float) -> Tensor { Tensor(shape: t.shape, scalars: t.scalars.map(f), layout: t.layout) }

    /// `f(channel, value)` over axis 1.
    func perChannel(_ t: Tensor, _ f: (Int, Float) -> Float) -> Tensor {
        let c = t.shape[1], inner = t.shape.dropFirst(2).reduce(1, *)
        var out = t.scalars
        for i in out.indices { out[i] = f((i / inner) % c, out[i]) }
        return Tensor(shape: t.shape, scalars: out, layout: t.layout)
    }

    /// Numpy broadcasting of two tensors (right-aligned shapes).
    func broadcast(_ a: Tensor, _ b: Tensor, _ f: (Float, Float) -> Float) throws -> Tensor {
        let rank = max(a.rank, b.rank)
        let sa = Array(repeating: 1, count: rank - a.rank) + a.shape, sb = Array(repeating: 1, count: rank - b.rank) + b.shape
        var shape = [Int](repeating: 0, count: rank)
        for i in 0..<rank {
            guard sa[i] == sb[i] || sa[i] == 1 || sb[i] == 1 else { throw Failure(description: "broadcast \(a.shape) \(b.shape)") }
            shape[i] = max(sa[i], sb[i])
        }
        func strides(_ s: [Int]) -> [Int] {
            var r = [Int](repeating: 0, count: rank), acc = 1
            for i in (0..<rank).reversed() { r[i] = s[i] == 1 ? 0 : acc; acc *= s[i] }
            return r
        }
        let (ta, tb) = (strides(sa), strides(sb))
        let count = shape.reduce(1, *)
        var out = [Float](repeating: 0, count: count)
        var index = [Int](repeating: 0, count: rank)
        for i in 0..<count {
            var ia = 0, ib = 0
            for d in 0..<rank { ia += index[d] * ta[d]; ib += index[d] * tb[d] }
            out[i] = f(a.scalars[ia], b.scalars[ib])
            var d = rank - 1
            while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
        }
        return Tensor(shape: shape, scalars: out, layout: rank == 4 ? .nchw : .plain)
    }

    func conv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, _ node: Node) -> Tensor {
        let k = node.ints("kernel_shape") ?? [w.shape[2], w.shape[3]]
        let s = node.ints("strides") ?? [1, 1], d = node.ints("dilations") ?? [1, 1], p = node.ints("pads") ?? [0, 0, 0, 0]
        let g = ConvGeometry(batch: x.shape[0], inputHeight: x.shape[2], inputWidth: x.shape[3], inputChannels: x.shape[1],
                             outputChannels: w.shape[0], kernelHeight: k[0], kernelWidth: k[1], strideH: s[0], strideW: s[1],
                             dilationH: d[0], dilationW: d[1], padTop: p[0], padLeft: p[1], padBottom: p[2], padRight: p[3],
                             groups: node.int("group") ?? 1)
        let nhwc = x.nchwToNHWC()
        let out = Tensor(shape: g.outputShape, layout: .nhwc) { o in
            nhwc.scalars.withUnsafeBufferPointer { xp in
                w.scalars.withUnsafeBufferPointer { wp in
                    if let b {
                        b.scalars.withUnsafeBufferPointer { bp in
                            Kernels.conv2dForward(input: xp.baseAddress!, weight: wp.baseAddress!, bias: bp.baseAddress!,
                                                  output: o.baseAddress!, geometry: g)
                        }
                    } else {
                        Kernels.conv2dForward(input: xp.baseAddress!, weight: wp.baseAddress!, bias: nil, output: o.baseAddress!, geometry: g)
                    }
                }
            }
        }
        return out.nhwcToNCHW()
    }

    /// ONNX MaxPool/AveragePool: output `floor|ceil((in + pads − k) / s) + 1`, a ceil-mode window that would start in
    /// the end padding dropped; average divisor = window within the padded input (`count_include_pad`) or within the input.
    func pool(_ x: Tensor, _ node: Node) -> Tensor {
        let k = node.ints("kernel_shape")!, s = node.ints("strides") ?? [1, 1], p = node.ints("pads") ?? [0, 0, 0, 0]
        let ceil = node.int("ceil_mode") == 1, includePad = node.int("count_include_pad") == 1, isMax = node.opType == "MaxPool"
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        func length(_ size: Int, _ axis: Int) -> Int {
            let span = size + p[axis] + p[axis + 2] - k[axis]
            var out = (ceil ? (span + s[axis] - 1) / s[axis] : span / s[axis]) + 1
            if ceil && (out - 1) * s[axis] >= size + p[axis] { out -= 1 }
            return out
        }
        let (oh, ow) = (length(h, 0), length(w, 1))
        var out = [Float](repeating: 0, count: n * c * oh * ow)
        for plane in 0..<(n * c) {
            for oy in 0..<oh { for ox in 0..<ow {
                let y0 = oy * s[0] - p[0], x0 = ox * s[1] - p[1]
                var best = -Float.infinity, sum: Float = 0, count = 0
                for y in max(y0, 0)..<min(y0 + k[0], h) { for xx in max(x0, 0)..<min(x0 + k[1], w) {
                    let v = x.scalars[(plane * h + y) * w + xx]
                    best = max(best, v); sum += v; count += 1
                } }
                let padded = (min(y0 + k[0], h + p[2]) - y0) * (min(x0 + k[1], w + p[3]) - x0)
                out[(plane * oh + oy) * ow + ox] = isMax ? best : sum / Float(includePad ? padded : count)
            } }
        }
        return Tensor(shape: [n, c, oh, ow], scalars: out, layout: .nchw)
    }

    func concat(_ parts: [Tensor], axis rawAxis: Int) -> Tensor {
        let rank = parts[0].rank, axis = rawAxis < 0 ? rawAxis + rank : rawAxis
        let outer = parts[0].shape[..<axis].reduce(1, *)
        var shape = parts[0].shape
        shape[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
        var out: [Float] = []
        out.reserveCapacity(shape.reduce(1, *))
        for o in 0..<outer {
            for t in parts {
                let block = t.shape[axis...].reduce(1, *)
                out += t.scalars[(o * block)..<((o + 1) * block)]
            }
        }
        return Tensor(shape: shape, scalars: out, layout: rank == 4 ? .nchw : .plain)
    }

    func split(_ t: Tensor, axis rawAxis: Int, sizes: [Int]) -> [Tensor] {
        let axis = rawAxis < 0 ? rawAxis + t.rank : rawAxis
        let outer = t.shape[..<axis].reduce(1, *), inner = t.shape[(axis + 1)...].reduce(1, *)
        var start = 0
        return sizes.map { size in
            var shape = t.shape
            shape[axis] = size
            var out: [Float] = []
            for o in 0..<outer {
                let base = (o * t.shape[axis] + start) * inner
                out += t.scalars[base..<(base + size * inner)]
            }
            start += size
            return Tensor(shape: shape, scalars: out, layout: t.rank == 4 ? .nchw : .plain)
        }
    }

    func transpose(_ t: Tensor, perm: [Int]) -> Tensor {
        let rank = t.rank
        let shape = perm.map { t.shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for i in stride(from: rank - 2, through: 0, by: -1) { inStrides[i] = inStrides[i + 1] * t.shape[i + 1] }
        var out = [Float](repeating: 0, count: t.count)
        var index = [Int](repeating: 0, count: rank)
        for i in 0..<t.count {
            var source = 0
            for d in 0..<rank { source += index[d] * inStrides[perm[d]] }
            out[i] = t.scalars[source]
            var d = rank - 1
            while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
        }
        return Tensor(shape: shape, scalars: out, layout: .plain)
    }

    func softmax(_ t: Tensor, axis rawAxis: Int) -> Tensor {
        let axis = rawAxis < 0 ? rawAxis + t.rank : rawAxis
        let outer = t.shape[..<axis].reduce(1, *), size = t.shape[axis], inner = t.shape[(axis + 1)...].reduce(1, *)
        var out = t.scalars
        for o in 0..<outer { for i in 0..<inner {
            let index = (0..<size).map { (o * size + $0) * inner + i }
            let largest = index.map { t.scalars[$0] }.max()!
            let e = index.map { exp(t.scalars[$0] - largest) }
            let total = e.reduce(0, +)
            for (j, position) in index.enumerated() { out[position] = e[j] / total }
        } }
        return Tensor(shape: t.shape, scalars: out, layout: t.layout)
    }
}
