// Structured (filter/channel) pruning — Li et al. 2017, "Pruning Filters for Efficient ConvNets" (arXiv:1608.08710):
// the filters with the smallest L1 norm are removed together with the channels they produce, so the convolutions
// themselves get smaller and inference gets faster. Coupled channels (residual additions, concatenations, depthwise
// convolutions, squeeze-and-excitation gates) are found by propagation through the graph (`ChannelDependencies`).
import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// What structured pruning did: per channel group the channels before and after, and the network's multiply-adds and
/// parameters before and after.
public struct StructuredPruningReport: Sendable, Codable, Equatable {
    public struct Group: Sendable, Codable, Equatable {
        /// The group's first layer (weight initializer name of its first Conv/Gemm in graph order).
        public var name: String
        /// The Conv/Gemm weights whose output channels the group holds.
        public var layers: [String]
        /// Channel classes (sets of channels kept or removed together) before and after.
        public var channelsBefore: Int
        public var channelsAfter: Int
        /// Classes that may not be removed, and why (the first reason met), `nil` when all are prunable.
        public var pinnedChannels: Int
        public var pinnedReason: String?
    }

    public var groups: [Group]
    public var multiplyAddsBefore: Int
    public var multiplyAddsAfter: Int
    public var parametersBefore: Int
    public var parametersAfter: Int
    /// The asked reduction of multiply-adds (0.5 = half), `nil` for the explicit `keepChannels` form.
    public var targetReduction: Double?
    /// The fraction of each group's prunable channels that was removed (uniform over groups).
    public var ratio: Double?
    /// For every Conv/Gemm weight whose output channels were cut: the output channels kept (ascending). Feeding it to
    /// `StructuredPruning.prune(_:imageShape:keepChannels:)` reproduces the same graph.
    public var keepChannels: [String: [Int]]
    /// Why the target was not reached, if it was not (the prunable part of the network is too small).
    public var note: String?

    /// 1 − after / before.
    public var achievedReduction: Double {
        multiplyAddsBefore == 0 ? 0 : 1 - Double(multiplyAddsAfter) / Double(multiplyAddsBefore)
    }

    /// A Markdown table of the groups and the totals.
    public var markdown: String {
        var lines = ["| group | layers | channels before | channels after | pinned |", "|---|---:|---:|---:|---|"]
        for g in groups {
            lines.append("| \(g.name) | \(g.layers.count) | \(g.channelsBefore) | \(g.channelsAfter) | "
                         + (g.pinnedReason.map { "\(g.pinnedChannels): \($0)" } ?? "") + " |")
        }
        lines.append("")
        lines.append("Multiply-adds \(multiplyAddsBefore) → \(multiplyAddsAfter) (−\(String(format: "%.1f", achievedReduction * 100)) %), "
                     + "parameters \(parametersBefore) → \(parametersAfter).")
        if let note { lines.append(contentsOf: ["", note]) }
        return lines.joined(separator: "\n")
    }
}

/// A user's structured-pruning request that cannot be carried out (unknown layer, bad indices, removing channels that
/// are tied to something that must stay): names the layer and the reason.
public struct StructuredPruningError: Error, CustomStringConvertible, Equatable {
    public var layer: String?
    public var message: String
    public init(layer: String? = nil, _ message: String) {
        self.layer = layer
        self.message = message
    }
    public var description: String { layer.map { "structured pruning of '\($0)': \(message)" } ?? "structured pruning: \(message)" }
}

/// Structured (filter/channel) pruning of a `Graph` (ONNX semantics, NCHW, Conv weights OIHW): removes whole output
/// channels of convolutions (and output features of fully connected layers) together with every weight, BatchNorm
/// entry and shape constant that follows them, so the result is a smaller graph that `InferenceEngine` runs faster.
///
/// Coupling (see `ChannelDependencies`): channels tied by a residual `Add` (all operands share one channel set), by a
/// squeeze-and-excitation `Mul` (the SE branch's last conv follows the gated tensor), by depthwise convolutions
/// (group = channels: the filters go with their input channel), by `Concat` (each input keeps its own offset range,
/// e.g. SqueezeNet's Fire expand1x1‖expand3x3) and by `Flatten`/`GlobalAveragePool` → `Gemm` (the input columns of
/// the classifier follow the channels, `H·W` columns per channel after a Flatten) are removed together.
/// Never removed: the graph input's channels, the channels of a graph output (the classifier's classes), and channels
/// whose layout pruning cannot follow (mapping them through would be possible but is not worth the risk):
/// - a channel shuffle (`Reshape`→`Transpose`→`Reshape`) pins its input and output, so every ShuffleNet unit's output
///   (and the `Split`/`Concat` around it) is pinned; ShuffleNet V2's branch-internal channels stay prunable (it
///   reaches half its multiply-adds), while ShuffleNet V1, whose units are grouped 1×1 → shuffle → depthwise →
///   grouped 1×1, has nothing prunable: the report's `note` says so;
/// - grouped convolutions other than depthwise (group 1 < g < C) pin their input and output (ShuffleNet V1, ResNeXt);
/// - `Softmax` over channels, `Slice`/`Pad`/`Reduce*` along channels, `Reshape`/`Transpose` that move the channel
///   axis, weights shared between nodes, and operators this analysis does not know.
/// Shape constants that spell channel counts are rewritten (a `Reshape` flattening to an explicit `[N, C·H·W]`, `Split`
/// sizes; new initializers, since the exporter shares such constants between nodes); targets computed at run time
/// from `Shape` (PyTorch's `x.view(x.size(0), -1)`) need nothing. The graph is not folded: a dynamic batch survives.
///
/// Importance: the L1 norm of a channel class's filters summed over its coupled convolutions (plus depthwise filters
/// that follow it), ties broken by the BatchNorm |γ| it passes through. Each channel group loses the same fraction of
/// its prunable classes (at least one channel stays in every layer); the fraction is found by bisection so that the
/// network's multiply-adds shrink by `macReduction`.
public enum StructuredPruning {
    /// The largest fraction of a group's prunable channels that the `macReduction` form removes.
    public static let maximumRatio = 0.9

    /// Removes the least important channels so that the network's multiply-adds shrink by `macReduction` (0.5 =
    /// half) for `imageShape` `[C, H, W]`. When the prunable part of the network cannot give that much even at
    /// `maximumRatio`, prunes at `maximumRatio` and says so in the report's `note`.
    /// Throws `GraphError` for graphs whose shapes cannot be inferred, `StructuredPruningError` for a bad target.
    ///
    /// `channelMultiple` rounds every group's kept channel count up to a multiple of it (8 suits the runtime's AVX2
    /// kernels, which process 8 channels at a time); 1 keeps exactly the uniform ratio.
    public static func prune(_ graph: Graph, imageShape: [Int], macReduction: Double,
                             channelMultiple: Int = 1) throws -> (Graph, StructuredPruningReport) {
        guard macReduction.isFinite, macReduction >= 0, macReduction < 1 else {
            throw StructuredPruningError("the multiply-add reduction must be in [0, 1), got \(macReduction)")
        }
        guard (1...1024).contains(channelMultiple) else {
            throw StructuredPruningError("the channel multiple must be in 1…1024, got \(channelMultiple)")
        }
        let analysis = try ChannelDependencies(graph, imageShape: imageShape)
        var selector = Selector(analysis)
        selector.multiple = channelMultiple
        let before = selector.baseMultiplyAdds
        let target = Double(before) * (1 - macReduction)
        var chosenRatio = 0.0
        var kept = selector.keptRoots(ratio: 0)
        var note: String?
        let capped = selector.keptRoots(ratio: maximumRatio)
        if Double(selector.multiplyAdds(kept: capped)) > target {
            chosenRatio = maximumRatio
            kept = capped
            let reachable = 1 - Double(selector.multiplyAdds(kept: capped)) / Double(max(before, 1))
            note = String(format: "the target reduction %.1f %% was not reached: removing %.0f %% of every prunable group gives %.1f %%; "
                          + "the rest of the network's multiply-adds are in pinned channels (%@)",
                          macReduction * 100, maximumRatio * 100, reachable * 100, selector.mainPinReasons())
        } else if macReduction > 0 {
            var lo = 0.0, hi = maximumRatio
            for _ in 0..<40 {
                let mid = (lo + hi) / 2
                if Double(selector.multiplyAdds(kept: selector.keptRoots(ratio: mid))) > target { lo = mid } else { hi = mid }
            }
            let low = selector.keptRoots(ratio: lo), high = selector.keptRoots(ratio: hi)
            let lowError = abs(Double(selector.multiplyAdds(kept: low)) - target)
            let highError = abs(Double(selector.multiplyAdds(kept: high)) - target)
            (chosenRatio, kept) = lowError < highError ? (lo, low) : (hi, high)
        }
        let pruned = try rewrite(graph, analysis: analysis, keptRoots: kept)
        var report = try makeReport(graph: graph, pruned: pruned, analysis: analysis, keptRoots: kept, imageShape: imageShape)
        report.targetReduction = macReduction
        report.ratio = chosenRatio
        report.note = note
        return (pruned, report)
    }

    /// The explicit form: `keepChannels[layer]` lists the output channels of `layer` to keep (`layer` = a Conv or Gemm
    /// weight initializer name such as `features.0.weight`, or the node's name). Channels tied to the listed ones
    /// (residual partners, depthwise convolutions, BatchNorms, concatenation slots, classifier columns) follow; layers
    /// not listed keep everything unless tied to a listed one.
    ///
    /// Throws `StructuredPruningError` naming the layer for: an unknown layer, a depthwise layer (its channels follow
    /// its input: list the layer that produces them), indices out of range, repeated or none at all, removing a
    /// channel that is pinned (graph input or output, channel shuffle, …), and tied layers whose lists disagree.
    public static func prune(_ graph: Graph, imageShape: [Int], keepChannels: [String: [Int]]) throws -> Graph {
        try pruneWithReport(graph, imageShape: imageShape, keepChannels: keepChannels).0
    }

    /// The explicit form with its report.
    public static func pruneWithReport(_ graph: Graph, imageShape: [Int], keepChannels: [String: [Int]]) throws
        -> (Graph, StructuredPruningReport) {
        let analysis = try ChannelDependencies(graph, imageShape: imageShape)
        var byName: [String: Int] = [:]
        for (i, source) in analysis.sources.enumerated() where source.kind == .conv || source.kind == .gemm {
            byName[source.name] = i
            if let node = source.node { byName[graph.nodes[node].name] = i }
        }
        var decision: [Int: (keep: Bool, layer: String, channel: Int)] = [:]  // root → decision
        for layer in keepChannels.keys.sorted() {
            let indices = keepChannels[layer]!
            guard let sourceIndex = byName[layer] else {
                if let dw = analysis.depthwiseNodes.first(where: { $0.value == layer || graph.nodes[$0.key].name == layer }) {
                    throw StructuredPruningError(layer: layer, "depthwise convolution '\(graph.nodes[dw.key].name)' has its channels "
                                                 + "tied to its input; list the layer that produces that input instead")
                }
                let known = analysis.sources.filter { $0.kind == .conv || $0.kind == .gemm }.map(\.name)
                throw StructuredPruningError(layer: layer, "no Conv or Gemm with this weight or node name; prunable layers are "
                                             + known.prefix(12).joined(separator: ", ") + (known.count > 12 ? ", …" : ""))
            }
            let source = analysis.sources[sourceIndex]
            guard !indices.isEmpty else { throw StructuredPruningError(layer: layer, "keeps no channel (a layer needs at least one)") }
            guard Set(indices).count == indices.count else { throw StructuredPruningError(layer: layer, "lists a channel twice") }
            if let bad = indices.first(where: { !(0..<source.count).contains($0) }) {
                throw StructuredPruningError(layer: layer, "channel \(bad) is out of range: the layer has \(source.count) output channels")
            }
            let keep = Set(indices)
            for c in 0..<source.count {
                let element = source.first + c, root = analysis.root(element)
                let wanted = keep.contains(c)
                if !wanted, let reason = analysis.pinReason(ofRoot: root) {
                    throw StructuredPruningError(layer: layer, "channel \(c) cannot be removed: it is tied to \(reason)")
                }
                if let earlier = decision[root], earlier.keep != wanted {
                    throw StructuredPruningError(layer: layer, "channel \(c) is tied to channel \(earlier.channel) of '\(earlier.layer)' "
                                                 + "(they are added, multiplied or concatenated together), but one is kept and the other removed")
                }
                decision[root] = (wanted, layer, c)
            }
        }
        var kept = Set(analysis.allRoots)
        for (root, d) in decision where !d.keep { kept.remove(root) }
        for constraint in analysis.nonEmpty where !constraint.elements.contains(where: { kept.contains(analysis.root($0)) }) {
            throw StructuredPruningError(layer: constraint.label, "would lose all its channels through the channels tied to it")
        }
        let pruned = try rewrite(graph, analysis: analysis, keptRoots: kept)
        let report = try makeReport(graph: graph, pruned: pruned, analysis: analysis, keptRoots: kept, imageShape: imageShape)
        return (pruned, report)
    }

    /// Every Conv/Gemm whose output channels structured pruning can address, in graph order: weight name, output
    /// channels, and how many of them are pinned (cannot be removed).
    public static func prunableLayers(_ graph: Graph, imageShape: [Int]) throws -> [(layer: String, channels: Int, pinned: Int)] {
        let analysis = try ChannelDependencies(graph, imageShape: imageShape)
        return analysis.sources.filter { $0.kind == .conv || $0.kind == .gemm }.map { source in
            let pinned = (source.first..<(source.first + source.count)).filter { analysis.pinReason(ofRoot: analysis.root($0)) != nil }.count
            return (source.name, source.count, pinned)
        }
    }

    /// The graph with the channels that `keepChannels` removes set to zero instead of removed: their filters and biases
    /// (Conv, Gemm, depthwise) and the BatchNorm scale and shift of those channels are 0, so each removed channel
    /// carries exactly 0 after its BatchNorm. Same shapes as `graph`; structured masks for fine-tuning before the
    /// real cut, and the reference the tests compare the pruned graph with.
    public static func zeroingRemovedChannels(_ graph: Graph, imageShape: [Int], keepChannels: [String: [Int]]) throws -> Graph {
        let (_, report) = try pruneWithReport(graph, imageShape: imageShape, keepChannels: keepChannels)
        let analysis = try ChannelDependencies(graph, imageShape: imageShape)
        var removedElements = Set<Int>()
        for source in analysis.sources {
            guard let kept = report.keepChannels[source.name] else { continue }
            let keep = Set(kept)
            for c in 0..<source.count where !keep.contains(c) { removedElements.insert(analysis.root(source.first + c)) }
        }
        var result = graph
        for edit in analysis.edits {
            guard case let .slice(name, axis, entries, role) = edit,
                  [.sourceWeight, .sourceBias, .depthwiseWeight, .depthwiseBias, .normScale, .normBias].contains(role),
                  case var .float(t)? = result.initializers[name] else { continue }
            let outer = t.shape.prefix(axis).reduce(1, *), dim = t.shape[axis], inner = t.shape.dropFirst(axis + 1).reduce(1, *)
            var offset = 0
            for entry in entries {
                if removedElements.contains(analysis.root(entry.element)) {
                    for o in 0..<outer {
                        for f in offset..<(offset + entry.width) {
                            for k in 0..<inner { t.scalars[(o * dim + f) * inner + k] = 0 }
                        }
                    }
                }
                offset += entry.width
            }
            result.initializers[name] = .float(t)
        }
        return result
    }

    // MARK: Rewriting

    /// Applies every edit of `analysis` for the kept classes.
    static func rewrite(_ graph: Graph, analysis: ChannelDependencies, keptRoots: Set<Int>) throws -> Graph {
        var result = graph
        func isKept(_ entry: ChannelEntry) -> Bool { keptRoots.contains(analysis.root(entry.element)) }
        func keptFeatures(_ entries: [ChannelEntry]) -> Int { entries.reduce(0) { $0 + (isKept($1) ? $1.width : 0) } }
        var usedNames = Set(graph.initializers.keys)
        for node in graph.nodes { usedNames.formUnion(node.outputs) }
        func freshName(_ base: String) -> String {
            var candidate = base, i = 1
            while usedNames.contains(candidate) { candidate = "\(base)_\(i)"; i += 1 }
            usedNames.insert(candidate)
            return candidate
        }
        var done = Set<String>()
        for edit in analysis.edits {
            switch edit {
            case let .slice(name, axis, entries, _):
                let key = "\(name)#\(axis)"
                guard !done.contains(key), case let .float(t)? = result.initializers[name] else { continue }
                done.insert(key)
                guard entries.contains(where: { !isKept($0) }) else { continue }
                guard ChannelDependencies.features(entries) == t.shape[axis] else {
                    throw GraphError("initializer '\(name)' has \(t.shape[axis]) entries along axis \(axis), the channels give "
                                     + "\(ChannelDependencies.features(entries))", opset: graph.opsetVersion)
                }
                var indices: [Int] = []
                var offset = 0
                for entry in entries {
                    if isKept(entry) { indices.append(contentsOf: offset..<(offset + entry.width)) }
                    offset += entry.width
                }
                result.initializers[name] = .float(slice(t, axis: axis, indices: indices))
            case let .depthwiseGroup(node, entries):
                result.nodes[node].attributes["group"] = .int(keptFeatures(entries))
            case let .split(node, parts):
                let sizes = parts.map(keptFeatures)
                if graph.opsetVersion >= 13 {
                    let name = freshName(graph.nodes[node].name + ".split_sizes")
                    result.initializers[name] = .int(sizes, shape: [sizes.count])
                    if result.nodes[node].inputs.count > 1 { result.nodes[node].inputs[1] = name } else { result.nodes[node].inputs.append(name) }
                    result.nodes[node].attributes["num_outputs"] = nil
                } else {
                    result.nodes[node].attributes["split"] = .ints(sizes)
                }
            case let .reshapeTarget(node, position, entries):
                let targetName = graph.nodes[node].inputs[1]
                guard case let .int(values, shape)? = graph.initializers[targetName], position < values.count else { continue }
                var updated = values
                updated[position] = keptFeatures(entries)
                if updated != values {
                    let name = freshName(targetName + ".pruned")
                    result.initializers[name] = .int(updated, shape: shape)
                    result.nodes[node].inputs[1] = name
                }
            }
        }
        // Drop initializers nothing uses any more (replaced shape constants).
        var used = Set<String>()
        for node in result.nodes { used.formUnion(node.inputs) }
        for input in result.inputs { used.insert(input.name) }
        for name in result.initializers.keys where !used.contains(name) && graph.initializers[name] != nil {
            if case .int = graph.initializers[name]! { result.initializers[name] = nil }
        }
        if result.metadata["litecnn.parameters"] != nil { result.metadata["litecnn.parameters"] = String(parameterCount(result)) }
        return result
    }

    /// The elements of `t` whose index along `axis` is in `indices` (in that order).
    static func slice(_ t: Tensor, axis: Int, indices: [Int]) -> Tensor {
        let outer = t.shape.prefix(axis).reduce(1, *), dim = t.shape[axis], inner = t.shape.dropFirst(axis + 1).reduce(1, *)
        var shape = t.shape
        shape[axis] = indices.count
        var out = [Float]()
        out.reserveCapacity(outer * indices.count * inner)
        t.scalars.withUnsafeBufferPointer { p in
            for o in 0..<outer {
                for i in indices {
                    let base = (o * dim + i) * inner
                    out.append(contentsOf: p[base..<(base + inner)])
                }
            }
        }
        return Tensor(shape: shape, scalars: out)
    }

    static func makeReport(graph: Graph, pruned: Graph, analysis: ChannelDependencies, keptRoots: Set<Int>,
                           imageShape: [Int]) throws -> StructuredPruningReport {
        var keep: [String: [Int]] = [:]
        for source in analysis.sources where source.kind == .conv || source.kind == .gemm {
            let kept = (0..<source.count).filter { keptRoots.contains(analysis.root(source.first + $0)) }
            if kept.count < source.count { keep[source.name] = kept }
        }
        var groups: [StructuredPruningReport.Group] = []
        for group in analysis.groups() {
            let names = group.sources.map { analysis.sources[$0].name }
            let pinned = group.roots.filter { analysis.pinReason(ofRoot: $0) != nil }
            groups.append(.init(name: names.first ?? "?", layers: names, channelsBefore: group.roots.count,
                                channelsAfter: group.roots.filter { keptRoots.contains($0) }.count,
                                pinnedChannels: pinned.count, pinnedReason: pinned.first.flatMap { analysis.pinReason(ofRoot: $0) }))
        }
        return StructuredPruningReport(groups: groups,
                                       multiplyAddsBefore: try multiplyAdds(graph, imageShape: imageShape),
                                       multiplyAddsAfter: try multiplyAdds(pruned, imageShape: imageShape),
                                       parametersBefore: parameterCount(graph), parametersAfter: parameterCount(pruned),
                                       targetReduction: nil, ratio: nil, keepChannels: keep, note: nil)
    }
}

// MARK: Choosing the channels

extension ChannelDependencies {
    /// Every class root of the graph's channel elements.
    var allRoots: [Int] { Array(Set((0..<elementSource.count).map(root))).sorted() }

    /// The pin reason of a class (any member's), or nil when it may be removed.
    func pinReason(ofRoot root: Int) -> String? { classPins[root] }

    /// Groups: sources connected by tied channels, each with its class roots (graph order).
    func groups() -> [(sources: [Int], roots: [Int])] {
        var sourceParent = Array(0..<sources.count)
        func find(_ s: Int) -> Int { var r = s; while sourceParent[r] != r { r = sourceParent[r] }; return r }
        for e in 0..<elementSource.count {
            let a = find(elementSource[e]), b = find(elementSource[root(e)])
            if a != b { sourceParent[max(a, b)] = min(a, b) }
        }
        var members: [Int: [Int]] = [:]
        for s in sources.indices where sources[s].kind == .conv || sources[s].kind == .gemm { members[find(s), default: []].append(s) }
        var result: [(sources: [Int], roots: [Int])] = []
        for key in members.keys.sorted() {
            let group = members[key]!
            var roots = Set<Int>()
            for s in group { for e in sources[s].first..<(sources[s].first + sources[s].count) { roots.insert(root(e)) } }
            result.append((group, roots.sorted()))
        }
        return result
    }
}

/// Picks the classes to keep for a uniform ratio and evaluates multiply-adds quickly.
struct Selector {
    let analysis: ChannelDependencies
    let groups: [(sources: [Int], roots: [Int])]
    /// Each group's prunable classes, least important first.
    let ordered: [[Int]]
    let rootOf: [Int]
    let baseMultiplyAdds: Int
    let fixedMultiplyAdds: Int
    /// Kept channels per group are rounded up to a multiple of this.
    var multiple = 1

    init(_ analysis: ChannelDependencies) {
        self.analysis = analysis
        groups = analysis.groups()
        rootOf = (0..<analysis.elementSource.count).map(analysis.root)
        var classScore: [Int: Double] = [:], classGamma: [Int: Double] = [:]
        for e in 0..<rootOf.count {
            classScore[rootOf[e], default: 0] += analysis.score[e]
            classGamma[rootOf[e], default: 0] += analysis.gamma[e]
        }
        let pins = analysis.classPins
        ordered = groups.map { group in
            group.roots.filter { pins[$0] == nil }.sorted {
                let a = (classScore[$0] ?? 0, classGamma[$0] ?? 0), b = (classScore[$1] ?? 0, classGamma[$1] ?? 0)
                return a != b ? a < b : $0 < $1
            }
        }
        let base = analysis.graph.nodes.reduce(0) { $0 + StructuredPruning.nodeMultiplyAdds($1, shapes: analysis.shapes) }
        baseMultiplyAdds = base
        let all = Set(rootOf)
        var termsAtFull = 0
        for term in analysis.macTerms { termsAtFull += Self.evaluate(term, kept: all, rootOf: rootOf) }
        fixedMultiplyAdds = base - termsAtFull
    }

    static func evaluate(_ term: ChannelDependencies.MacTerm, kept: Set<Int>, rootOf: [Int]) -> Int {
        func count(_ entries: [ChannelEntry]?, _ fixed: Int) -> Int {
            guard let entries else { return fixed }
            return entries.reduce(0) { $0 + (kept.contains(rootOf[$1.element]) ? $1.width : 0) }
        }
        return term.factor * count(term.output, term.fixedOutput) * count(term.input, term.fixedInput)
    }

    func multiplyAdds(kept: Set<Int>) -> Int {
        fixedMultiplyAdds + analysis.macTerms.reduce(0) { $0 + Self.evaluate($1, kept: kept, rootOf: rootOf) }
    }

    /// Removes `round(ratio · prunable)` least important classes of every group, then restores the best class of any
    /// layer (or Split part) left without channels.
    func keptRoots(ratio: Double) -> Set<Int> {
        var kept = Set(rootOf)
        for (group, order) in zip(groups, ordered) {
            var drop = min(order.count, Int((ratio * Double(order.count)).rounded()))
            if multiple > 1 {
                // Round the group's kept classes (pinned ones included) up to the multiple.
                let total = group.roots.count
                let keep = total - drop
                let rounded = min(total, (keep + multiple - 1) / multiple * multiple)
                drop = max(0, total - rounded)
                drop = min(drop, order.count)
            }
            for r in order.prefix(drop) { kept.remove(r) }
        }
        for constraint in analysis.nonEmpty where !constraint.elements.contains(where: { kept.contains(rootOf[$0]) }) {
            // The most important class among the constraint's elements (the last in its group's order).
            let candidates = Set(constraint.elements.map { rootOf[$0] })
            let best = ordered.lazy.flatMap { $0.reversed() }.first { candidates.contains($0) }
            if let best { kept.insert(best) }
        }
        return kept
    }

    /// The most common pin reasons, for the report's note.
    func mainPinReasons() -> String {
        var counts: [String: Int] = [:]
        for (_, reason) in analysis.classPins {
            let kind = reason.replacingOccurrences(of: #"'[^']*'"#, with: "…", options: .regularExpression)
            counts[kind, default: 0] += 1
        }
        return counts.sorted { $0.value > $1.value }.prefix(3).map { "\($0.value) × \($0.key)" }.joined(separator: "; ")
    }
}
