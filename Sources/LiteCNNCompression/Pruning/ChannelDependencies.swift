// Which channels of a graph must be pruned together: channel-dependency analysis by propagation through the graph
// (the "dependency graph" of Torch-Pruning, Fang et al. 2023, arXiv:2301.12900, restricted to channel dimensions).
import LiteCNNGraph
import LiteCNNTensor

/// One position along a value's channel axis: the channel element it carries and how many consecutive features it
/// spans (1 along the channel axis of an NCHW image; `H·W` once a `[N, C, H, W]` map has been flattened to `[N, C·H·W]`).
struct ChannelEntry: Equatable {
    var element: Int
    var width: Int
}

/// The channel structure of a graph for one input size.
///
/// - Every output channel of a `Conv` (group 1) and every output feature of a `Gemm`/`MatMul` with a constant weight is
///   a *channel element* of a *source*; the graph input and the outputs of layout-changing operators (channel
///   shuffles, `Reshape` to other ranks, `Slice` on channels, grouped convolutions) are pinned sources.
/// - Each value of rank 2 or 4 maps its channel axis (ONNX axis 1) to a list of entries. Channel-preserving operators
///   (BatchNormalization, activations, pooling, depthwise convolutions with group = channels) pass the list on;
///   `Concat` on axis 1 concatenates the lists, `Split` cuts them, `Flatten` widens each entry by `H·W`.
/// - Operators that combine tensors channel by channel (`Add`, `Mul` — residuals, SE gates — `Sub`, `Div`, `Max`, …)
///   tie their operands' entries position by position: tied elements form one *class* (union-find), kept or removed
///   together. Sources connected by ties form one *group*.
/// - A class is pinned (never removed) when it reaches a graph output, the graph input, an operator that mixes
///   channels in a way pruning cannot follow (`Softmax` over channels, channel shuffles, grouped convolutions,
///   `Reshape`/`Transpose` that move the channel axis, unknown operators), or a weight shared between nodes.
/// - `edits` lists every initializer axis, `group` attribute, `Split` size and `Reshape` target that follows a list
///   of entries, so that any choice of kept classes rewrites the graph consistently.
final class ChannelDependencies {
    enum SourceKind: Equatable { case conv, gemm, input, opaque }

    struct Source {
        var name: String
        var node: Int?
        var kind: SourceKind
        var first: Int
        var count: Int
        var entries: [ChannelEntry] { (first..<(first + count)).map { ChannelEntry(element: $0, width: 1) } }
    }

    /// What an initializer edit is for (zeroing a removed channel touches only the output-side roles).
    enum Role { case sourceWeight, sourceBias, consumerWeight, depthwiseWeight, depthwiseBias, normScale, normBias, normStatistics, constant }

    enum Edit {
        /// Keep along `axis` of the float initializer only the features of kept entries.
        case slice(initializer: String, axis: Int, entries: [ChannelEntry], role: Role)
        /// A depthwise convolution's `group` becomes the number of kept channels.
        case depthwiseGroup(node: Int, entries: [ChannelEntry])
        /// A `Split` on the channel axis: its sizes become the kept features of each part.
        case split(node: Int, parts: [[ChannelEntry]])
        /// A flattening `Reshape` whose constant target spells out the feature count at `position`.
        case reshapeTarget(node: Int, position: Int, entries: [ChannelEntry])
    }

    /// Multiply-adds of one node as `factor · out · in`, with `out`/`in` the kept features of entry lists (or fixed).
    struct MacTerm {
        var factor: Int
        var output: [ChannelEntry]?
        var fixedOutput: Int
        var input: [ChannelEntry]?
        var fixedInput: Int
    }

    let graph: Graph
    let shapes: GraphShapes
    private(set) var sources: [Source] = []
    private(set) var elementSource: [Int] = []
    private var parent: [Int] = []
    private(set) var pinReason: [Int: String] = [:]
    /// L1 norm of each element's filters (its source filter plus depthwise filters that follow it).
    private(set) var score: [Double] = []
    /// |γ| of the BatchNormalizations each element passes through (secondary importance).
    private(set) var gamma: [Double] = []
    private(set) var maps: [String: [ChannelEntry]] = [:]
    private(set) var edits: [Edit] = []
    /// Element sets of which at least one must be kept (each source, each Split part), with a label.
    private(set) var nonEmpty: [(label: String, elements: [Int])] = []
    private(set) var macTerms: [MacTerm] = []
    private(set) var depthwiseNodes: [Int: String] = [:]
    private var initializerUses: [String: Int] = [:]

    /// Pin reasons by class root (the first pinned member's), computed once the analysis is complete.
    lazy var classPins: [Int: String] = {
        var pins: [Int: String] = [:]
        for (element, reason) in pinReason.sorted(by: { $0.key < $1.key }) {
            let r = root(element)
            if pins[r] == nil { pins[r] = reason }
        }
        return pins
    }()

    init(_ graph: Graph, imageShape: [Int]) throws {
        self.graph = graph
        shapes = try GraphShapes(graph, imageShape: imageShape)
        for node in graph.nodes {
            for input in node.inputs where graph.initializers[input] != nil { initializerUses[input, default: 0] += 1 }
        }
        let input = graph.inputs.first { graph.initializers[$0.name] == nil }!
        maps[input.name] = newSource(name: input.name, node: nil, kind: .input, count: imageShape[0], pinned: "the graph input").entries
        for (index, node) in graph.nodes.enumerated() {
            try visit(node, index: index)
            // A channel-bearing output the rules above gave no channel list (e.g. the rank-5 steps of a channel
            // shuffle end in a rank-4 value) gets pinned channels of its own, so its consumers stay analysable.
            for output in node.outputs where maps[output] == nil {
                opaqueOutput(output, index: index, "the output of '\(node.name)' (\(node.opType)), whose channel order pruning does not follow")
            }
        }
        for output in graph.outputs {
            if let m = maps[output.name] { pin(m, "a graph output ('\(output.name)')") }
        }
    }

    // MARK: Union-find over channel elements

    func root(_ e: Int) -> Int {
        var r = e
        while parent[r] != r { r = parent[r] }
        return r
    }

    private func union(_ a: Int, _ b: Int) {
        var ra = root(a), rb = root(b)
        guard ra != rb else { return }
        if rb < ra { swap(&ra, &rb) }
        parent[rb] = ra
        // Path compression for the members walked.
        var x = b
        while parent[x] != x { let next = parent[x]; parent[x] = ra; x = next }
        x = a
        while parent[x] != x { let next = parent[x]; parent[x] = ra; x = next }
    }

    private func newSource(name: String, node: Int?, kind: SourceKind, count: Int, pinned: String? = nil) -> Source {
        let source = Source(name: name, node: node, kind: kind, first: elementSource.count, count: count)
        for _ in 0..<count {
            parent.append(elementSource.count)
            elementSource.append(sources.count)
            score.append(0)
            gamma.append(0)
        }
        sources.append(source)
        if let pinned { pin(source.entries, pinned) }
        if kind == .conv || kind == .gemm { nonEmpty.append((name, Array(source.first..<(source.first + count)))) }
        return source
    }

    private func pin(_ entries: [ChannelEntry], _ reason: String) {
        for entry in entries where pinReason[entry.element] == nil { pinReason[entry.element] = reason }
    }

    /// Ties two entry lists position by position; false (nothing tied) when their structures differ.
    private func tie(_ a: [ChannelEntry], _ b: [ChannelEntry]) -> Bool {
        guard a.count == b.count, zip(a, b).allSatisfy({ $0.width == $1.width }) else { return false }
        for (x, y) in zip(a, b) { union(x.element, y.element) }
        return true
    }

    /// Features (sum of widths) of an entry list.
    static func features(_ entries: [ChannelEntry]) -> Int { entries.reduce(0) { $0 + $1.width } }

    // MARK: Propagation

    private func isSingleUseFloat(_ name: String) -> Bool {
        guard case .float? = graph.initializers[name] else { return false }
        return initializerUses[name] == 1
    }

    private func floatInitializer(_ name: String) -> Tensor? {
        if case let .float(t)? = graph.initializers[name] { return t }
        return nil
    }

    /// Pins every input of `node` that carries channels and gives its rank-2/4 outputs pinned sources.
    private func opaque(_ node: Node, index: Int, _ reason: String) {
        for input in node.inputs { if let m = maps[input] { pin(m, reason) } }
        for output in node.outputs { opaqueOutput(output, index: index, reason) }
    }

    private func opaqueOutput(_ output: String, index: Int, _ reason: String) {
        guard let s = shapes.shape(output), s.count == 2 || s.count == 4 else { return }
        maps[output] = newSource(name: output, node: index, kind: .opaque, count: s[1], pinned: reason).entries
    }

    /// L1 norm of slice `i` along `axis` of a tensor.
    private static func sliceL1(_ t: Tensor, axis: Int, index i: Int) -> Double {
        let outer = t.shape.prefix(axis).reduce(1, *), dim = t.shape[axis], inner = t.shape.dropFirst(axis + 1).reduce(1, *)
        var sum: Double = 0
        t.scalars.withUnsafeBufferPointer { p in
            for o in 0..<outer {
                let base = (o * dim + i) * inner
                for k in 0..<inner { sum += Double(abs(p[base + k])) }
            }
        }
        return sum
    }

    // swiftlint:disable:next cyclomatic_complexity function_body_length
    private func visit(_ node: Node, index: Int) throws {
        let out = node.outputs.first ?? ""
        let describe = "'\(node.name)' (\(node.opType))"
        func x() -> [ChannelEntry]? { node.inputs.first.flatMap { maps[$0] } }
        switch node.opType {
        case "Conv":
            guard let input = x(), node.inputs.count >= 2, isSingleUseFloat(node.inputs[1]),
                  node.inputs.count < 3 || node.inputs[2].isEmpty || isSingleUseFloat(node.inputs[2]),
                  let w = floatInitializer(node.inputs[1]), let y = shapes.shape(out) else {
                opaque(node, index: index, "convolution \(describe) with a shared or non-constant weight")
                return
            }
            let group = node.int("group") ?? 1
            let cin = Self.features(input), m = w.shape[0]
            let factor = y[0] * y[2] * y[3] * w.shape[2] * w.shape[3]
            let bias = node.inputs.count > 2 && !node.inputs[2].isEmpty ? node.inputs[2] : nil
            if group == 1 {
                let source = newSource(name: node.inputs[1], node: index, kind: .conv, count: m)
                for o in 0..<m { score[source.first + o] += Self.sliceL1(w, axis: 0, index: o) }
                edits.append(.slice(initializer: node.inputs[1], axis: 0, entries: source.entries, role: .sourceWeight))
                edits.append(.slice(initializer: node.inputs[1], axis: 1, entries: input, role: .consumerWeight))
                if let bias { edits.append(.slice(initializer: bias, axis: 0, entries: source.entries, role: .sourceBias)) }
                macTerms.append(MacTerm(factor: factor, output: source.entries, fixedOutput: 0, input: input, fixedInput: 0))
                maps[out] = source.entries
            } else if group == cin && m == cin && input.allSatisfy({ $0.width == 1 }) {
                // Depthwise: channel c of the output is filter c applied to input channel c — the channels follow the input.
                for (c, entry) in input.enumerated() { score[entry.element] += Self.sliceL1(w, axis: 0, index: c) }
                edits.append(.slice(initializer: node.inputs[1], axis: 0, entries: input, role: .depthwiseWeight))
                if let bias { edits.append(.slice(initializer: bias, axis: 0, entries: input, role: .depthwiseBias)) }
                edits.append(.depthwiseGroup(node: index, entries: input))
                depthwiseNodes[index] = node.inputs[1]
                macTerms.append(MacTerm(factor: factor, output: input, fixedOutput: 0, input: nil, fixedInput: 1))
                maps[out] = input
            } else {
                let reason = "grouped convolution \(describe) (group \(group))"
                pin(input, reason)
                macTerms.append(MacTerm(factor: factor, output: nil, fixedOutput: m, input: nil, fixedInput: w.shape[1]))
                maps[out] = newSource(name: node.inputs[1], node: index, kind: .opaque, count: m, pinned: reason).entries
            }
        case "BatchNormalization":
            guard let input = x() else { opaque(node, index: index, "\(describe) without channel information"); return }
            let parameters = Array(node.inputs.dropFirst().prefix(4))
            guard parameters.count == 4, parameters.allSatisfy(isSingleUseFloat) else {
                pin(input, "\(describe) with shared or non-constant parameters")
                maps[out] = input
                return
            }
            if let scale = floatInitializer(parameters[0]), scale.count == input.count {
                for (c, entry) in input.enumerated() { gamma[entry.element] += Double(abs(scale.scalars[c])) }
            }
            let roles: [Role] = [.normScale, .normBias, .normStatistics, .normStatistics]
            for (name, role) in zip(parameters, roles) {
                edits.append(.slice(initializer: name, axis: 0, entries: input, role: role))
            }
            maps[out] = input
        case "Relu", "LeakyRelu", "Clip", "Sigmoid", "HardSigmoid", "HardSwish", "Tanh", "Elu", "Selu", "Softplus", "Softsign",
             "Gelu", "Erf", "Identity", "Dropout", "Neg", "Abs", "Sqrt", "Exp", "Log", "Reciprocal", "Mish", "Celu",
             "ThresholdedRelu", "Floor", "Ceil", "Round", "Sign", "Cast",
             "MaxPool", "AveragePool", "LpPool", "GlobalAveragePool", "GlobalMaxPool":
            if let input = x() { maps[out] = input }
            if node.opType == "Clip" {
                for extra in node.inputs.dropFirst() { if let m = maps[extra] { pin(m, "a bound of \(describe)") } }
            }
        case "Softmax", "LogSoftmax":
            guard let input = x(), let s = shapes.shape(node.inputs[0]) else { return }
            let axis = GraphShapes.normalize(node.int("axis") ?? (graph.opsetVersion >= 13 ? -1 : 1), rank: s.count)
            if axis == 1 || (graph.opsetVersion < 13 && axis! <= 1) {
                opaque(node, index: index, "\(describe) normalizes over the channels")
            } else {
                maps[out] = input
            }
        case "Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "PRelu":
            guard let y = shapes.shape(out), y.count == 2 || y.count == 4 else {
                opaque(node, index: index, "\(describe) on values that are not images or feature vectors")
                return
            }
            let channels = y[1]
            var channelOperands: [[ChannelEntry]] = []
            var constants: [(name: String, axis: Int)] = []
            var unknown = false
            for input in node.inputs {
                guard let s = shapes.shape(input) else { continue }
                let axis = 1 - (y.count - s.count)
                let dim = axis >= 0 ? s[axis] : 1
                if let m = maps[input], s.count == y.count, Self.features(m) == dim, dim == channels {
                    channelOperands.append(m)
                } else if dim == channels && channels > 1 {
                    if graph.initializers[input] != nil, isSingleUseFloat(input) {
                        constants.append((input, axis))
                    } else {
                        unknown = true
                    }
                }
            }
            let reason = "\(describe) combines channels in a way pruning does not follow"
            if unknown || channelOperands.isEmpty {
                opaque(node, index: index, reason)
                return
            }
            let first = channelOperands[0]
            for other in channelOperands.dropFirst() where !tie(first, other) {
                for m in channelOperands { pin(m, reason) }
            }
            for (name, axis) in constants { edits.append(.slice(initializer: name, axis: axis, entries: first, role: .constant)) }
            maps[out] = first
        case "Concat":
            guard let y = shapes.shape(out), y.count == 2 || y.count == 4 else {
                opaque(node, index: index, "\(describe) on values that are not images or feature vectors")
                return
            }
            let axis = GraphShapes.normalize(node.int("axis") ?? 0, rank: y.count)
            let parts = node.inputs.map { maps[$0] }
            guard parts.allSatisfy({ $0 != nil }) else {
                opaque(node, index: index, "\(describe) joins a constant")
                return
            }
            if axis == 1 {
                maps[out] = parts.flatMap { $0! }
            } else {
                let first = parts[0]!
                for other in parts.dropFirst() where !tie(first, other!) {
                    for m in parts { pin(m!, "\(describe) joins values with different channels") }
                }
                maps[out] = first
            }
        case "Split":
            guard let input = x(), let s = shapes.shape(node.inputs[0]) else {
                opaque(node, index: index, "\(describe) of a value without channel information")
                return
            }
            let axis = GraphShapes.normalize(node.int("axis") ?? 0, rank: s.count)
            guard axis == 1 else {
                for output in node.outputs { maps[output] = input }
                return
            }
            let sizes = try GraphShapes.splitSizes(node, dimension: s[1], ints: shapes.ints, opset: graph.opsetVersion)
            var parts: [[ChannelEntry]] = []
            var cursor = 0, aligned = true
            for size in sizes {
                var part: [ChannelEntry] = [], features = 0
                while features < size && cursor < input.count {
                    part.append(input[cursor])
                    features += input[cursor].width
                    cursor += 1
                }
                if features != size { aligned = false }
                parts.append(part)
            }
            let sizesAreConstant = graph.opsetVersion < 13 || node.inputs.count < 2 || node.inputs[1].isEmpty
                || graph.initializers[node.inputs[1]] != nil
            guard aligned, sizesAreConstant else {
                opaque(node, index: index, "\(describe) cuts through a flattened channel or has computed sizes")
                return
            }
            for (output, part) in zip(node.outputs, parts) {
                maps[output] = part
                nonEmpty.append(("\(node.name) → \(output)", part.map(\.element)))
            }
            edits.append(.split(node: index, parts: parts))
        case "Slice":
            guard let input = x(), let s = shapes.shape(node.inputs[0]) else { return }
            let axes: [Int]
            if graph.opsetVersion >= 10 {
                let starts = shapes.ints[node.inputs[1]] ?? []
                axes = node.inputs.count > 3 && !node.inputs[3].isEmpty ? (shapes.ints[node.inputs[3]] ?? [1]) : Array(0..<starts.count)
            } else {
                axes = node.ints("axes") ?? Array(0..<(node.ints("starts")?.count ?? 0))
            }
            if axes.contains(where: { GraphShapes.normalize($0, rank: s.count) == 1 }) {
                opaque(node, index: index, "\(describe) slices the channels")
            } else {
                maps[out] = input
            }
        case "ReduceMean", "ReduceMax", "ReduceMin", "ReduceSum", "ReduceL2", "ReduceL1":
            guard let input = x(), let s = shapes.shape(node.inputs[0]), let y = shapes.shape(out) else { return }
            let useInput = graph.opsetVersion >= 18 || (node.opType == "ReduceSum" && graph.opsetVersion >= 13)
            let axes = (useInput ? (node.inputs.count > 1 ? shapes.ints[node.inputs[1]] : nil) : node.ints("axes")) ?? Array(0..<s.count)
            let normalized = Set(axes.compactMap { GraphShapes.normalize($0, rank: s.count) })
            if normalized.contains(1) || normalized.contains(0) || !(y.count == 2 || y.count == 4) || s.count != 4 {
                opaque(node, index: index, "\(describe) reduces over the channels")
            } else {
                maps[out] = input
            }
        case "Flatten":
            guard let input = x(), let s = shapes.shape(node.inputs[0]) else { return }
            let axis = GraphShapes.normalize(node.int("axis") ?? 1, rank: s.count + 1)
            if axis == 1 && s.count == 4 {
                let spatial = s[2] * s[3]
                maps[out] = input.map { ChannelEntry(element: $0.element, width: $0.width * spatial) }
            } else if axis == 1 && s.count == 2 {
                maps[out] = input
            } else {
                opaque(node, index: index, "\(describe) flattens the batch and the channels together")
            }
        case "Reshape":
            guard let input = x(), let s = shapes.shape(node.inputs[0]), let y = shapes.shape(out) else {
                if node.inputs.contains(where: { maps[$0] != nil }) { opaque(node, index: index, "\(describe) changes the layout") }
                return
            }
            let target = shapes.ints[node.inputs[1]] ?? []
            let flattening = s.count == 4 && y.count == 2 && y[0] == s[0] && y[1] == s[1] * s[2] * s[3]
            let keepsChannels = s.count == y.count && s.count >= 2 && y[0] == s[0] && y[1] == s[1]
                && (s.count == 2 || Array(s.dropFirst(2)) == Array(y.dropFirst(2)))
            if flattening || keepsChannels {
                let spatial = flattening ? s[2] * s[3] : 1
                let widened = input.map { ChannelEntry(element: $0.element, width: $0.width * spatial) }
                maps[out] = widened
                if target.count > 1 && (target[1] == -1 || (target[1] == 0 && (node.int("allowzero") ?? 0) == 0)) {
                    return
                }
                if graph.initializers[node.inputs[1]] != nil, target.count == 2 || (keepsChannels && target.count == s.count) {
                    edits.append(.reshapeTarget(node: index, position: 1, entries: widened))
                } else {
                    pin(input, "\(describe) spells out the channel count in a computed target")
                }
            } else {
                opaque(node, index: index, "\(describe) moves channels (e.g. a channel shuffle)")
            }
        case "Transpose":
            guard let input = x() else { return }
            let perm = node.ints("perm") ?? []
            if perm.count >= 2 && perm[0] == 0 && perm[1] == 1 {
                maps[out] = input
            } else {
                opaque(node, index: index, "\(describe) moves the channel axis")
            }
        case "Squeeze", "Unsqueeze":
            guard let input = x(), let s = shapes.shape(node.inputs[0]), let y = shapes.shape(out) else { return }
            // [N, C, 1, 1] ↔ [N, C] keeps the channel axis.
            if (s.count == 4 && y.count == 2 && s[2] == 1 && s[3] == 1 && y == [s[0], s[1]])
                || (s.count == 2 && y.count == 4 && y == [s[0], s[1], 1, 1]) {
                maps[out] = input
            } else {
                opaque(node, index: index, "\(describe) changes the rank around the channels")
            }
        case "Pad":
            guard let input = x(), let s = shapes.shape(node.inputs[0]) else { return }
            let pads = graph.opsetVersion >= 11 ? (node.inputs.count > 1 ? shapes.ints[node.inputs[1]] : nil) : node.ints("pads")
            if let pads, pads.count == 2 * s.count, pads[1] == 0, pads[1 + s.count] == 0 {
                maps[out] = input
            } else {
                opaque(node, index: index, "\(describe) pads the channels")
            }
        case "Gemm", "MatMul":
            let isGemm = node.opType == "Gemm"
            let transB = isGemm && (node.int("transB") ?? 0) != 0
            guard let input = x(), let a = shapes.shape(node.inputs[0]), a.count == 2, node.inputs.count >= 2,
                  !isGemm || (node.int("transA") ?? 0) == 0,
                  isSingleUseFloat(node.inputs[1]), let w = floatInitializer(node.inputs[1]), w.shape.count == 2 else {
                opaque(node, index: index, "\(describe) without a constant weight or on a transposed input")
                return
            }
            let inAxis = transB ? 1 : 0, outAxis = transB ? 0 : 1
            let n = w.shape[outAxis]
            var biasEdit: String?
            var pinnedReason: String?
            if isGemm, node.inputs.count > 2, !node.inputs[2].isEmpty {
                let c = node.inputs[2]
                if let t = floatInitializer(c), isSingleUseFloat(c), t.count == n, t.shape.last == n {
                    biasEdit = c
                } else if let t = floatInitializer(c), t.count == 1 {
                    biasEdit = nil
                } else {
                    pinnedReason = "\(describe) with a bias that is not one value per output"
                }
            }
            let source = newSource(name: node.inputs[1], node: index, kind: .gemm, count: n, pinned: pinnedReason)
            for o in 0..<n { score[source.first + o] += Self.sliceL1(w, axis: outAxis, index: o) }
            edits.append(.slice(initializer: node.inputs[1], axis: outAxis, entries: source.entries, role: .sourceWeight))
            edits.append(.slice(initializer: node.inputs[1], axis: inAxis, entries: input, role: .consumerWeight))
            if let biasEdit {
                let t = floatInitializer(biasEdit)!
                edits.append(.slice(initializer: biasEdit, axis: t.shape.count - 1, entries: source.entries, role: .sourceBias))
            }
            macTerms.append(MacTerm(factor: a[0], output: source.entries, fixedOutput: 0, input: input, fixedInput: 0))
            maps[out] = source.entries
        case "Shape":
            break  // Shape arithmetic is evaluated again by the runtime on the pruned graph.
        default:
            opaque(node, index: index, "operator \(describe) is not understood by structured pruning")
        }
    }
}
