import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// A convolution after BatchNorm folding and activation fusion, with its weights packed once per padding.
final class ConvParams: @unchecked Sendable {
    let weight: [Float]          // OIHW, BatchNorm folded in
    let bias: [Float]?
    let outputChannels, inputChannelsPerGroup, kernelH, kernelW, groups: Int
    let strides: [Int], dilations: [Int]
    /// Explicit pads `[top, left, bottom, right]` (NOTSET) — ignored for SAME_* / VALID.
    let pads: [Int]
    let autoPad: String
    var epilogue: FusedActivation = .none
    var post: UnaryKind?
    /// The node's second input is added to the output before `epilogue` (a fused residual connection).
    var hasResidual = false
    private var packed: [[Int]: PackedConvolution] = [:]
    private var winograd: [[Int]: WinogradConvolution] = [:]
    private var broadcastFolds: [[Int]: ConvParams] = [:]
    private let lock = NSLock()

    init(weight: [Float], bias: [Float]?, outputChannels: Int, inputChannelsPerGroup: Int, kernelH: Int, kernelW: Int,
         groups: Int, strides: [Int], dilations: [Int], pads: [Int], autoPad: String) {
        self.weight = weight; self.bias = bias
        self.outputChannels = outputChannels; self.inputChannelsPerGroup = inputChannelsPerGroup
        self.kernelH = kernelH; self.kernelW = kernelW; self.groups = groups
        self.strides = strides; self.dilations = dilations; self.pads = pads; self.autoPad = autoPad
    }

    /// Pads `[top, left, bottom, right]` for an input of `h × w`.
    func resolvedPads(h: Int, w: Int) -> [Int] {
        samePads(autoPad: autoPad, explicit: pads, input: [h, w], kernel: [kernelH, kernelW], strides: strides, dilations: dilations)
    }

    func geometry(batch: Int, h: Int, w: Int) -> ConvGeometry {
        let p = resolvedPads(h: h, w: w)
        return ConvGeometry(batch: batch, inputHeight: h, inputWidth: w, inputChannels: inputChannelsPerGroup * groups,
                            outputChannels: outputChannels, kernelHeight: kernelH, kernelWidth: kernelW,
                            strideH: strides[0], strideW: strides[1], dilationH: dilations[0], dilationW: dilations[1],
                            padTop: p[0], padLeft: p[1], padBottom: p[2], padRight: p[3], groups: groups)
    }

    /// The packed weights for `g`'s padding (packed on first use, then shared by every plan).
    func packed(for g: ConvGeometry) -> PackedConvolution {
        let key = [g.padTop, g.padLeft, g.padBottom, g.padRight]
        lock.lock(); defer { lock.unlock() }
        if let p = packed[key] { return p }
        let p = weight.withUnsafeBufferPointer { w in
            if let bias {
                return bias.withUnsafeBufferPointer { PackedConvolution(weight: w.baseAddress!, bias: $0.baseAddress!, geometry: g, hugePages: packedWeightsUseHugePages) }
            }
            return PackedConvolution(weight: w.baseAddress!, bias: nil, geometry: g, hugePages: packedWeightsUseHugePages)
        }
        packed[key] = p
        return p
    }

    /// The layer `make` builds for `key` (see `foldedOverBroadcast`), built on first use and then shared by every plan.
    func cachedFold(_ key: [Int], _ make: () -> ConvParams) -> ConvParams {
        lock.lock(); defer { lock.unlock() }
        if let p = broadcastFolds[key] { return p }
        let p = make()
        broadcastFolds[key] = p
        return p
    }

    /// Winograd F(4×4, 3×3) weights for `g`'s padding with the fused epilogue (transformed on first use, then shared).
    func winograd(for g: ConvGeometry) -> WinogradConvolution {
        let key = [g.padTop, g.padLeft, g.padBottom, g.padRight]
        lock.lock(); defer { lock.unlock() }
        if let p = winograd[key] { return p }
        let p = weight.withUnsafeBufferPointer { w in
            let make = { (b: UnsafePointer<Float>?) in
                WinogradConvolution(weights: w.baseAddress!, bias: b, inputChannels: g.inputChannels,
                                    outputChannels: g.outputChannels, padTop: g.padTop, padLeft: g.padLeft,
                                    padBottom: g.padBottom, padRight: g.padRight,
                                    activation: self.hasResidual ? .none : self.epilogue,
                                    hugePages: packedWeightsUseHugePages)
            }
            if let bias { return bias.withUnsafeBufferPointer { make($0.baseAddress!) } }
            return make(nil)
        }
        winograd[key] = p
        return p
    }
}

/// ONNX `auto_pad` resolution for 2-D windows: `[top, left, bottom, right]`.
func samePads(autoPad: String, explicit: [Int], input: [Int], kernel: [Int], strides: [Int], dilations: [Int]) -> [Int] {
    switch autoPad {
    case "SAME_UPPER", "SAME_LOWER":
        var begin = [0, 0], end = [0, 0]
        for i in 0..<2 {
            let out = (input[i] + strides[i] - 1) / strides[i]
            let total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - input[i])
            let small = total / 2, large = total - small
            if autoPad == "SAME_UPPER" { begin[i] = small; end[i] = large } else { begin[i] = large; end[i] = small }
        }
        return [begin[0], begin[1], end[0], end[1]]
    case "VALID": return [0, 0, 0, 0]
    default: return explicit
    }
}

/// A node after compilation: the ONNX node (inputs/outputs rewired by fusion) plus what the passes derived.
struct CompiledNode {
    var node: Node
    var conv: ConvParams?
    /// Standalone BatchNormalization as `x·scale + shift` per channel.
    var affine: (scale: [Float], shift: [Float])?
    /// Gemm with constant weights as a packed 1×1 convolution over `[M, K]` rows.
    var dense: ConvParams?
}

/// Gemm's bias `beta·C` when C is absent (an empty array means none) or a constant vector; nil when C is computed at run
/// time or has a 2-D shape other than `[1, N]` (the general path handles those).
func gemmBias(_ node: Node, constants: [String: ConstValue]) -> [Float]?? {
    let beta = node.float("beta") ?? 1
    guard node.inputs.count > 2, !node.inputs[2].isEmpty, beta != 0 else { return .some(nil) }
    guard let c = constants[node.inputs[2]], c.shape.count <= 1 || (c.shape.count == 2 && c.shape[0] == 1) else { return nil }
    return .some(c.floats.map { $0 * beta })
}

/// The domain of LiteCNN's own operators in graphs: `Select` picks one of several alternatives at run time.
public let alternativesDomain = "ai.litecnn"
/// The node attribute `[group, alternative]` that makes a node run only when its group selects that alternative.
public let alternativeAttribute = "litecnn_alternative"

/// `[group, alternative]` of a node that belongs to one alternative of a switchable graph.
func alternativeTag(_ node: Node) -> (group: Int, alternative: Int)? {
    guard let t = node.ints(alternativeAttribute), t.count == 2 else { return nil }
    return (t[0], t[1])
}

/// The graph after validation, constant folding, BatchNorm folding and activation fusion.
struct CompiledGraph {
    /// Alternatives per group of a switchable graph (empty for an ordinary graph).
    var alternativeCounts: [Int] = []
    var opset: Int
    var inputName: String
    var inputDims: [ValueInfo.Dimension]?
    var outputNames: [String]
    var nodes: [CompiledNode]
    var constants: [String: ConstValue]
    /// How many nodes (plus graph outputs) read each value.
    var consumers: [String: Int]
    var consumerNodes: [String: [Int]]
}

let supportedOperators: Set<String> = [
    "Conv", "BatchNormalization", "Relu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Add", "Sub", "Mul", "Div",
    "Concat", "Split", "Slice", "Reshape", "Transpose", "Flatten", "MaxPool", "AveragePool", "GlobalAveragePool",
    "ReduceMean", "Gemm", "MatMul", "Dropout", "Identity", "Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Pad",
    "Softmax", "Cast", "Size", "ConstantOfShape",
]

enum GraphCompiler {
    static func compile(_ graph: Graph) throws -> CompiledGraph {
        let opset = graph.opsetVersion
        var constants: [String: ConstValue] = [:]
        for (name, c) in graph.initializers { constants[name] = ConstValue(c) }
        let realInputs = graph.inputs.filter { constants[$0.name] == nil }
        guard realInputs.count == 1, let input = realInputs.first else {
            throw GraphError("the runtime needs exactly one non-constant graph input, found \(realInputs.map(\.name))", opset: opset)
        }
        guard !graph.outputs.isEmpty else { throw GraphError("the graph has no outputs", opset: opset) }
        // Validate operators and attributes.
        for node in graph.nodes {
            if node.domain == alternativesDomain && node.opType == "Select" { continue }
            guard node.domain.isEmpty || node.domain == "ai.onnx" else {
                throw GraphError("domain '\(node.domain)' is not supported", at: node, opset: opset)
            }
            guard supportedOperators.contains(node.opType) else {
                throw GraphError("operator is not supported by the LiteCNN runtime", at: node, opset: opset)
            }
            try validate(node, opset: opset)
        }
        // Constant nodes become constants.
        var rest: [Node] = []
        for node in graph.nodes {
            if node.opType == "Constant" {
                guard let out = node.outputs.first else { throw GraphError("no output", at: node, opset: opset) }
                constants[out] = try constantValue(node, opset: opset)
            } else { rest.append(node) }
        }
        // Topological order; every input must be produced.
        var available = Set(constants.keys)
        available.insert(input.name)
        let ordered = try GraphFolding.topologicalOrder(rest, available: available, opset: opset)
        let produced = available.union(rest.flatMap(\.outputs))
        for o in graph.outputs where !produced.contains(o.name) {
            throw GraphError("graph output '\(o.name)' is not produced by any node", opset: opset)
        }
        // Fold nodes whose inputs are all constant.
        var nodes: [Node] = []
        for node in ordered {
            let present = node.inputs.filter { !$0.isEmpty }
            if !present.isEmpty, present.allSatisfy({ constants[$0] != nil }), node.opType != "Shape" {
                let ins = node.inputs.map { $0.isEmpty ? nil : constants[$0] }
                if let outs = try foldConstant(node, inputs: ins, inputShapes: ins.map { $0?.shape }, opset: opset) {
                    for (o, v) in zip(node.outputs, outs) { constants[o] = v }
                    continue
                }
            }
            nodes.append(node)
        }
        var compiled = CompiledGraph(opset: opset, inputName: input.name, inputDims: input.shape,
                                     outputNames: graph.outputs.map(\.name), nodes: [], constants: constants,
                                     consumers: [:], consumerNodes: [:])
        compiled.alternativeCounts = try alternativeCounts(nodes, opset: opset)
        compiled.nodes = try fuse(nodes, graphOutputs: Set(compiled.outputNames), constants: constants, opset: opset)
        // Weights now live (folded) in the convolutions: keep only the constants something still reads.
        let read = Set(compiled.nodes.flatMap(\.node.inputs)).union(compiled.outputNames)
        compiled.constants = constants.filter { read.contains($0.key) }
        for (i, cn) in compiled.nodes.enumerated() {
            for name in cn.node.inputs where !name.isEmpty {
                compiled.consumers[name, default: 0] += 1
                compiled.consumerNodes[name, default: []].append(i)
            }
        }
        for o in compiled.outputNames { compiled.consumers[o, default: 0] += 1 }
        return compiled
    }

    /// Checks the alternatives of a switchable graph and returns how many each group has (see `InferenceEngine.select`):
    /// every `ai.litecnn` `Select` has a distinct `group` in `0..<G` and at least one input; every tagged node's
    /// `[group, alternative]` names an existing group and an input index of its `Select`.
    static func alternativeCounts(_ nodes: [Node], opset: Int) throws -> [Int] {
        var counts: [Int: Int] = [:]
        for node in nodes where node.domain == alternativesDomain {
            guard node.opType == "Select", let g = node.int("group"), g >= 0 else {
                throw GraphError("a Select needs an integer attribute group ≥ 0", at: node, opset: opset)
            }
            guard !node.inputs.isEmpty, !node.inputs.contains(""), node.outputs.count == 1 else {
                throw GraphError("a Select reads one or more values and writes one", at: node, opset: opset)
            }
            guard counts[g] == nil else { throw GraphError("group \(g) has two Select nodes", at: node, opset: opset) }
            counts[g] = node.inputs.count
        }
        let groups = counts.count
        guard counts.keys.allSatisfy({ $0 < groups }) else {
            throw GraphError("Select groups \(counts.keys.sorted()) are not numbered 0..<\(groups)", opset: opset)
        }
        for node in nodes {
            guard let tag = alternativeTag(node) else { continue }
            guard let n = counts[tag.group], tag.alternative >= 0, tag.alternative < n else {
                throw GraphError("\(alternativeAttribute) \([tag.group, tag.alternative]) names no input of a Select", at: node, opset: opset)
            }
        }
        return (0..<groups).map { counts[$0]! }
    }

    static func constantValue(_ node: Node, opset: Int) throws -> ConstValue {
        switch node.attributes["value"] {
        case let .tensor(c)?: return ConstValue(c)
        default: break
        }
        if let v = node.float("value_float") { return ConstValue(data: [Double(v)], shape: [], isInt: false) }
        if case let .floats(v)? = node.attributes["value_floats"] { return ConstValue(data: v.map(Double.init), shape: [v.count], isInt: false) }
        if let v = node.int("value_int") { return ConstValue(data: [Double(v)], shape: [], isInt: true) }
        if let v = node.ints("value_ints") { return ConstValue(data: v.map(Double.init), shape: [v.count], isInt: true) }
        throw GraphError("Constant without a supported value attribute", at: node, opset: opset)
    }

    static func validate(_ node: Node, opset: Int) throws {
        func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
        switch node.opType {
        case "Conv", "MaxPool", "AveragePool":
            let autoPad = node.string("auto_pad") ?? "NOTSET"
            guard ["NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"].contains(autoPad) else { throw err("auto_pad '\(autoPad)' is not supported") }
            if let k = node.ints("kernel_shape"), k.count != 2 { throw err("only 2-D windows are supported, kernel_shape \(k)") }
            if node.opType != "Conv" && node.ints("kernel_shape") == nil { throw err("missing kernel_shape") }
            if let p = node.ints("pads"), p.count != 4 || p.contains(where: { $0 < 0 }) { throw err("pads \(p) are not 4 non-negative values") }
            if let s = node.ints("strides"), s.count != 2 || s.contains(where: { $0 < 1 }) { throw err("strides \(s) are not 2 positive values") }
            if let d = node.ints("dilations"), d.count != 2 || d.contains(where: { $0 < 1 }) { throw err("dilations \(d) are not 2 positive values") }
            if node.opType == "MaxPool", node.outputs.count > 1, !node.outputs[1].isEmpty { throw err("the Indices output is not supported") }
            if node.opType == "AveragePool", node.ints("dilations").map({ $0 != [1, 1] }) ?? false { throw err("dilated AveragePool is not supported") }
        case "BatchNormalization":
            if (node.int("training_mode") ?? 0) != 0 { throw err("training_mode is not supported") }
            if node.outputs.dropFirst().contains(where: { !$0.isEmpty }) { throw err("running statistics outputs are not supported") }
        case "Pad":
            let mode = node.string("mode") ?? "constant"
            if mode != "constant" { throw err("Pad mode '\(mode)' is not supported (only constant)") }
        case "Cast":
            let to = node.int("to") ?? 1
            if ![1, 6, 7, 9, 10, 11, 2, 3].contains(to) { throw err("Cast to element type \(to) is not supported") }
        case "Dropout":
            if node.outputs.count > 1, !node.outputs[1].isEmpty { throw err("the mask output is not supported") }
        default: break
        }
    }

    /// Conv (+ BatchNormalization) (+ activation) → one ConvParams; standalone BatchNormalization → channel affine.
    static func fuse(_ nodes: [Node], graphOutputs: Set<String>, constants: [String: ConstValue], opset: Int) throws -> [CompiledNode] {
        var consumers: [String: [Int]] = [:]
        for (i, n) in nodes.enumerated() { for name in n.inputs where !name.isEmpty { consumers[name, default: []].append(i) } }
        func soleConsumer(_ value: String) -> Int? {
            guard !graphOutputs.contains(value), let c = consumers[value], c.count == 1 else { return nil }
            return c[0]
        }
        func bnAffine(_ bn: Node) throws -> (scale: [Float], shift: [Float])? {
            guard bn.inputs.count >= 5 else { throw GraphError("needs 5 inputs", at: bn, opset: opset) }
            guard let s = constants[bn.inputs[1]], let b = constants[bn.inputs[2]], let m = constants[bn.inputs[3]],
                  let v = constants[bn.inputs[4]] else { return nil }
            let c = s.count
            guard b.count == c, m.count == c, v.count == c else {
                throw GraphError("scale/B/mean/var sizes differ: \(s.count), \(b.count), \(m.count), \(v.count)", at: bn, opset: opset)
            }
            let eps = Double(bn.float("epsilon") ?? 1e-5)
            var scale = [Float](repeating: 0, count: c), shift = [Float](repeating: 0, count: c)
            for i in 0..<c {
                let k = s.data[i] / (v.data[i] + eps).squareRoot()
                scale[i] = Float(k)
                shift[i] = Float(b.data[i] - m.data[i] * k)
            }
            return (scale, shift)
        }
        func clipBounds(_ n: Node) -> (Float, Float)? {
            if opset < 11 { return (n.float("min") ?? -.greatestFiniteMagnitude, n.float("max") ?? .greatestFiniteMagnitude) }
            var lo = -Float.greatestFiniteMagnitude, hi = Float.greatestFiniteMagnitude
            if n.inputs.count > 1, !n.inputs[1].isEmpty { guard let c = constants[n.inputs[1]], c.count == 1 else { return nil }; lo = Float(c.data[0]) }
            if n.inputs.count > 2, !n.inputs[2].isEmpty { guard let c = constants[n.inputs[2]], c.count == 1 else { return nil }; hi = Float(c.data[0]) }
            return (lo, hi)
        }
        var removed = Set<Int>()
        /// Fuses the activation that alone reads `output` into `p`'s epilogue (or its post pass), and SiLU written as
        /// `Mul(x, Sigmoid(x))` (EfficientNet's export); advances `output` past what was fused.
        func fuseActivation(into p: ConvParams, output: inout String) {
            if !graphOutputs.contains(output), let readers = consumers[output], readers.count == 2 {
                let sig = nodes[readers[0]].opType == "Sigmoid" ? readers[0] : readers[1]
                let mul = sig == readers[0] ? readers[1] : readers[0]
                let s = nodes[sig], m = nodes[mul]
                if s.opType == "Sigmoid", m.opType == "Mul", s.inputs.first == output, soleConsumer(s.outputs[0]) == mul,
                   m.inputs.count == 2, Set(m.inputs) == [output, s.outputs[0]] {
                    p.epilogue = .silu
                    removed.formUnion([sig, mul])
                    output = m.outputs[0]
                    return
                }
            }
            guard let j = soleConsumer(output), nodes[j].inputs.first == output else { return }
            let a = nodes[j]
            var fused = true
            switch a.opType {
            case "Relu": p.epilogue = .relu
            case "Clip":
                if let (lo, hi) = clipBounds(a) {
                    if lo == 0 && hi == 6 { p.epilogue = .relu6 } else if lo == 0 && hi >= .greatestFiniteMagnitude { p.epilogue = .relu } else { p.post = .clip(lo, hi) }
                } else { fused = false }
            case "Sigmoid": p.epilogue = .sigmoid
            case "HardSigmoid":
                let alpha = a.float("alpha") ?? 0.2, beta = a.float("beta") ?? 0.5
                // The kernels' hard sigmoid is PyTorch's (α = 1/6, β = ½); other slopes run as a second pass.
                if abs(alpha - 1.0 / 6.0) < 1e-6 && beta == 0.5 { p.epilogue = .hardSigmoid }
                else { p.post = .hardSigmoid(alpha: alpha, beta: beta) }
            case "HardSwish": p.epilogue = .hardSwish
            default: fused = false
            }
            if fused { removed.insert(j); output = a.outputs[0] }
        }
        var producer: [String: Int] = [:]
        for (i, n) in nodes.enumerated() { for o in n.outputs where !o.isEmpty { producer[o] = i } }
        /// Convolutions whose residual Add comes later, keyed by the Add's index: they run where the Add was.
        var deferred: [Int: CompiledNode] = [:]
        var out: [CompiledNode] = []
        for (i, node) in nodes.enumerated() {
            if let d = deferred.removeValue(forKey: i) { out.append(d) }
            if removed.contains(i) { continue }
            var cn = CompiledNode(node: node)
            if node.opType == "Conv" {
                guard node.inputs.count >= 2, let w = constants[node.inputs[1]], w.shape.count == 4 else {
                    throw GraphError("the weight must be a constant 4-D (OIHW) tensor", at: node, opset: opset)
                }
                let groups = node.int("group") ?? 1
                let (oc, icg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
                guard groups >= 1, oc % groups == 0, oc > 0, icg > 0 else {
                    throw GraphError("weight shape \(w.shape) does not fit group \(groups)", at: node, opset: opset)
                }
                if let k = node.ints("kernel_shape"), k != [kh, kw] {
                    throw GraphError("kernel_shape \(k) differs from the weight shape \(w.shape)", at: node, opset: opset)
                }
                var weight = w.floats
                var bias: [Float]? = nil
                if node.inputs.count > 2, !node.inputs[2].isEmpty {
                    guard let b = constants[node.inputs[2]], b.count == oc else {
                        throw GraphError("the bias must be a constant of \(oc) values", at: node, opset: opset)
                    }
                    bias = b.floats
                }
                var output = node.outputs[0]
                // BatchNormalization folding.
                if let j = soleConsumer(output), nodes[j].opType == "BatchNormalization", nodes[j].inputs[0] == output,
                   let (scale, shift) = try bnAffine(nodes[j]), scale.count == oc {
                    let per = weight.count / oc
                    for o in 0..<oc { for t in 0..<per { weight[o * per + t] *= scale[o] } }
                    var b = bias ?? [Float](repeating: 0, count: oc)
                    for o in 0..<oc { b[o] = b[o] * scale[o] + shift[o] }
                    bias = b
                    removed.insert(j)
                    output = nodes[j].outputs[0]
                }
                let p = ConvParams(weight: weight, bias: bias, outputChannels: oc, inputChannelsPerGroup: icg, kernelH: kh,
                                   kernelW: kw, groups: groups, strides: node.ints("strides") ?? [1, 1],
                                   dilations: node.ints("dilations") ?? [1, 1], pads: node.ints("pads") ?? [0, 0, 0, 0],
                                   autoPad: node.string("auto_pad") ?? "NOTSET")
                // Residual connection: Conv → Add(conv, skip) with the skip computed at run time; the add (and the
                // activation after it) run in the convolution's epilogue. The fused step runs at the Add's place, where
                // the skip exists (PyTorch exports ResNet's downsample branch after the main branch).
                var residual: String?
                var runAt: Int?
                if let j = soleConsumer(output), !removed.contains(j), nodes[j].opType == "Add", nodes[j].inputs.count == 2 {
                    let skip = nodes[j].inputs[0] == output ? nodes[j].inputs[1] : nodes[j].inputs[0]
                    if skip != output, constants[skip] == nil {
                        residual = skip
                        removed.insert(j)
                        output = nodes[j].outputs[0]
                        if (producer[skip] ?? -1) > i { runAt = j }
                    }
                }
                p.hasResidual = residual != nil
                fuseActivation(into: p, output: &output)
                cn.node.outputs = [output]
                cn.node.inputs = [node.inputs[0]] + (residual.map { [$0] } ?? [])
                cn.conv = p
                if let runAt {
                    deferred[runAt] = cn
                    continue
                }
            } else if node.opType == "Gemm", (node.int("transA") ?? 0) == 0, node.inputs.count >= 2,
                      let b = constants[node.inputs[1]], b.shape.count == 2, let bias = gemmBias(node, constants: constants) {
                // Gemm with constant weights (a classifier): a 1×1 convolution over [M, K, 1, 1], packed once.
                let transB = (node.int("transB") ?? 0) != 0, alpha = node.float("alpha") ?? 1
                let k = transB ? b.shape[1] : b.shape[0], n = transB ? b.shape[0] : b.shape[1]
                guard bias.map({ $0.count == n || $0.count == 1 }) ?? true else {
                    throw GraphError("C has \(bias!.count) values for \(n) outputs", at: node, opset: opset)
                }
                let source = b.floats
                var weight = [Float](repeating: 0, count: n * k)
                for o in 0..<n { for i in 0..<k { weight[o * k + i] = alpha * (transB ? source[o * k + i] : source[i * n + o]) } }
                let p = ConvParams(weight: weight, bias: bias.map { $0.count == n ? $0 : [Float](repeating: $0[0], count: n) },
                                   outputChannels: n, inputChannelsPerGroup: k, kernelH: 1, kernelW: 1, groups: 1,
                                   strides: [1, 1], dilations: [1, 1], pads: [0, 0, 0, 0], autoPad: "NOTSET")
                var output = node.outputs[0]
                fuseActivation(into: p, output: &output)
                cn.node.outputs = [output]
                cn.node.inputs = [node.inputs[0]]
                cn.dense = p
            } else if node.opType == "BatchNormalization" {
                guard let affine = try bnAffine(node) else {
                    throw GraphError("scale, B, mean and var must be constants", at: node, opset: opset)
                }
                cn.affine = affine
                cn.node.inputs = [node.inputs[0]]
                cn.node.outputs = [node.outputs[0]]
            }
            out.append(cn)
        }
        return out
    }
}
