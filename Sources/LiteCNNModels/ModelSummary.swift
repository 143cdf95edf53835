import LiteCNNLayers

/// A per-layer table of a model for one input shape: output shapes, parameters and multiply-adds, built with
/// `Layer.trace` (shapes only, nothing is computed).
///
/// Shapes in the table are shown in PyTorch's order — `[N, C, H, W]` for 4-D tensors — so they read like
/// `torchinfo`; LiteCNN itself stores activations NHWC. The input shape given to `init` is NHWC.
public struct ModelSummary: Codable, Sendable, Equatable {
    /// One leaf layer.
    public struct Row: Codable, Sendable, Equatable {
        /// Dotted path, the prefix of the layer's parameter names (`features.3.block.0.0`).
        public var path: String
        /// Layer type (`Conv2D`, `BatchNorm2D`, …).
        public var type: String
        /// Output shape in PyTorch's order (`[N, C, H, W]` for 4-D).
        public var outputShape: [Int]
        /// Trainable parameters of this layer alone.
        public var parameters: Int
        /// Multiply-adds of this layer for one forward pass of the whole batch.
        public var multiplyAdds: Int

        public init(path: String, type: String, outputShape: [Int], parameters: Int, multiplyAdds: Int) {
            self.path = path
            self.type = type
            self.outputShape = outputShape
            self.parameters = parameters
            self.multiplyAdds = multiplyAdds
        }

        enum CodingKeys: String, CodingKey {
            case path, type, outputShape = "output_shape", parameters = "params", multiplyAdds = "macs"
        }
    }

    /// Model name, when known (zoo name).
    public var model: String?
    /// Input shape in PyTorch's order (`[N, C, H, W]`).
    public var inputShape: [Int]
    /// Output shape in PyTorch's order.
    public var outputShape: [Int]
    /// Trainable scalars (torchvision's `num_params`).
    public var parameters: Int
    /// Saved but untrained scalars (BatchNorm running statistics).
    public var buffers: Int
    /// Multiply-adds of one forward pass of the whole batch.
    public var multiplyAdds: Int
    /// Size of all parameters and buffers as float32 — the data of the model's safetensors file.
    public var fp32Bytes: Int
    /// Leaf layers in execution order.
    public var rows: [Row]

    enum CodingKeys: String, CodingKey {
        case model, inputShape = "input_shape", outputShape = "output_shape", parameters = "params", buffers,
             multiplyAdds = "macs", fp32Bytes = "fp32_bytes", rows = "layers"
    }

    /// Traces `model` on an NHWC `inputShape`.
    ///
    /// Tracing checks shapes with `precondition`, so an input the model cannot take traps; check user-supplied
    /// resolutions first with `ModelSummary.checkResolution(of:inputChannels:resolution:probeResolution:)`.
    public init(model: any Layer, inputShape: [Int], name: String? = nil) {
        var rows: [Row] = []
        let output = model.trace(inputShape, path: "") { trace in
            rows.append(Row(path: trace.path, type: trace.type, outputShape: Self.pytorchOrder(trace.outputShape),
                            parameters: trace.parameters, multiplyAdds: trace.multiplyAdds))
        }
        let all = model.namedParameters()
        self.model = name
        self.inputShape = Self.pytorchOrder(inputShape)
        self.outputShape = Self.pytorchOrder(output)
        self.rows = rows
        self.parameters = all.filter { $0.parameter.isTrainable }.reduce(0) { $0 + $1.parameter.count }
        self.buffers = all.filter { !$0.parameter.isTrainable }.reduce(0) { $0 + $1.parameter.count }
        self.multiplyAdds = rows.reduce(0) { $0 + $1.multiplyAdds }
        self.fp32Bytes = (parameters + buffers) * 4
    }

    /// `[N, H, W, C]` → `[N, C, H, W]`; other ranks unchanged.
    public static func pytorchOrder(_ nhwc: [Int]) -> [Int] {
        nhwc.count == 4 ? [nhwc[0], nhwc[3], nhwc[1], nhwc[2]] : nhwc
    }

    // MARK: Text

    /// The summary as a fixed-width text table followed by totals.
    public func renderTable() -> String {
        let header = ["Layer", "Type", "Output shape", "Params", "MACs"]
        let body = rows.map { row in
            [row.path, row.type, Self.shapeText(row.outputShape), Self.grouped(row.parameters), Self.grouped(row.multiplyAdds)]
        }
        var widths = header.map(\.count)
        for line in body { for (i, cell) in line.enumerated() { widths[i] = max(widths[i], cell.count) } }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { i, cell in
                let pad = String(repeating: " ", count: widths[i] - cell.count)
                return i >= 3 ? pad + cell : cell + pad   // numbers right-aligned
            }.joined(separator: "  ")
        }
        let rule = String(repeating: "─", count: widths.reduce(0, +) + 2 * (widths.count - 1))
        var lines: [String] = []
        if let model { lines.append("Model: \(model)") }
        lines.append("Input shape: \(Self.shapeText(inputShape))   Output shape: \(Self.shapeText(outputShape))")
        lines.append(rule)
        lines.append(format(header))
        lines.append(rule)
        lines += body.map(format)
        lines.append(rule)
        lines.append("Total params:   \(Self.grouped(parameters))  (\(Self.scaled(parameters)))")
        lines.append("Buffers:        \(Self.grouped(buffers))")
        lines.append("Total MACs:     \(Self.grouped(multiplyAdds))  (\(Self.scaled(multiplyAdds)))")
        lines.append("fp32 size:      \(Self.megabytes(fp32Bytes)) MB")
        return lines.joined(separator: "\n")
    }

    /// `[1, 3, 224, 224]`.
    public static func shapeText(_ shape: [Int]) -> String { "[" + shape.map(String.init).joined(separator: ", ") + "]" }

    /// `2542856` → `2,542,856`.
    public static func grouped(_ value: Int) -> String {
        let digits = String(value.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return (value < 0 ? "-" : "") + out
    }

    /// `2542856` → `2.54 M`; `56_900_000_000` → `56.90 G`.
    public static func scaled(_ value: Int) -> String {
        let v = Double(value)
        for (limit, suffix) in [(1e9, "G"), (1e6, "M"), (1e3, "K")] where v.magnitude >= limit {
            return formatFixed(v / limit, decimals: 2) + " " + suffix
        }
        return String(value)
    }

    /// Bytes as megabytes (10⁶ bytes is not used: 1 MB = 2²⁰ bytes, as torchvision's `file_size`), two decimals.
    public static func megabytes(_ bytes: Int) -> String { formatFixed(Double(bytes) / 1_048_576, decimals: 2) }

    /// Fixed-point formatting without Foundation.
    public static func formatFixed(_ value: Double, decimals: Int) -> String {
        guard value.isFinite else { return String(value) }
        var scale = 1.0
        for _ in 0..<decimals { scale *= 10 }
        let rounded = (value.magnitude * scale).rounded()
        let whole = Int(rounded / scale)
        var fraction = String(Int(rounded - Double(whole) * scale))
        fraction = String(repeating: "0", count: max(0, decimals - fraction.count)) + fraction
        return (value < 0 && rounded != 0 ? "-" : "") + String(whole) + (decimals > 0 ? "." + fraction : "")
    }
}

// MARK: Checking a resolution before tracing

/// A square input resolution a model cannot take, found without tracing it (tracing would trap).
public struct ResolutionError: Error, CustomStringConvertible, Equatable {
    public var resolution: Int
    public var reason: String
    /// The smallest resolution that passes the same checks, when one exists up to the probe resolution.
    public var smallestWorking: Int?

    public var description: String {
        var text = "resolution \(resolution) does not work for this model: \(reason)"
        if let smallestWorking { text += ". The smallest resolution that works is \(smallestWorking)" }
        return text
    }
}

extension ModelSummary {
    /// Checks that a square `resolution × resolution` image with `inputChannels` channels can pass through `model`,
    /// without tracing at that resolution (layers `precondition` on shapes, so a bad one would trap).
    ///
    /// How: the model is traced at `probeResolution` (which must work, e.g. the zoo's default) and at twice it
    /// (a larger input only makes feature maps larger, and doubling keeps stride-aligned sizes aligned). From the two traces every leaf's input is matched to the leaf (or the image) that produced
    /// it, and the spatial size is then re-computed at `resolution` with each convolution's and pooling's own
    /// formula: every kernel must fit its padded input, and feature maps that had equal sizes in both probes must
    /// stay equal (they meet in a residual sum or a concatenation). Leaves the analysis cannot model make it
    /// conservative: only resolutions at least `probeResolution` are accepted. A model that flattens a spatial
    /// map into a fixed-size `Linear` accepts only `probeResolution`.
    public static func checkResolution(of model: any Layer, inputChannels: Int, resolution: Int,
                                       probeResolution: Int) throws(ResolutionError) {
        let plan = SpatialPlan(model: model, inputChannels: inputChannels, probe: probeResolution)
        if let reason = plan.failure(at: resolution) {
            throw ResolutionError(resolution: resolution, reason: reason, smallestWorking: plan.smallestWorking())
        }
    }

    /// The smallest square resolution `checkResolution` accepts (at most `probeResolution`).
    public static func smallestResolution(of model: any Layer, inputChannels: Int, probeResolution: Int) -> Int? {
        SpatialPlan(model: model, inputChannels: inputChannels, probe: probeResolution).smallestWorking()
    }
}

/// Spatial sizes of every leaf as a function of the input resolution (see `ModelSummary.checkResolution`).
struct SpatialPlan {
    typealias Size = (h: Int, w: Int)

    enum Source { case image, leaf(Int), constant(Int, Int) }

    enum Rule {
        case conv(Conv2D)
        case pool(kernel: Int, stride: Int, padding: Int, ceilMode: Bool)
        case constant(Int, Int)
        case identity
        case toVector
    }

    struct Step {
        var path: String
        var type: String
        /// nil when the input is not a 4-D feature map.
        var source: Source?
        var rule: Rule
    }

    enum Mode { case exact, atLeastProbe(String), onlyProbe(String) }

    let probe: Int
    var steps: [Step] = []
    var mode: Mode = .exact
    /// Tensors (leaf index, `false` = input / `true` = output; index -1 = image) whose sizes matched in both probes.
    var equalSizeGroups: [[(index: Int, output: Bool)]] = []

    init(model: any Layer, inputChannels: Int, probe: Int) {
        self.probe = probe
        let trace0 = Self.traces(model, [1, probe, probe, inputChannels])
        // A Flatten of a spatial map not produced by an adaptive pooling fixes the input size (a Linear follows).
        for (i, leaf) in trace0.enumerated() where leaf.type == "Flatten" && leaf.inputShape.count == 4
            && leaf.inputShape[1] * leaf.inputShape[2] > 1 {
            let producer = trace0[..<i].last { $0.outputShape == leaf.inputShape }
            if producer?.type != "AdaptiveAvgPool2D" {
                mode = .onlyProbe("\(leaf.path) flattens a \(leaf.inputShape[1])×\(leaf.inputShape[2]) feature map into a fixed-size classifier")
                return
            }
        }
        let second = 2 * probe
        let trace1 = Self.traces(model, [1, second, second, inputChannels])
        guard trace0.count == trace1.count, zip(trace0, trace1).allSatisfy({ $0.path == $1.path }) else {
            mode = .atLeastProbe("its layers trace differently at different resolutions")
            return
        }
        let layers = Dictionary(model.namedLayers().map { ($0.name, $0.layer) }, uniquingKeysWith: { first, _ in first })
        func spatial(_ shape: [Int]) -> Size? { shape.count == 4 ? (shape[1], shape[2]) : nil }
        func same(_ a: Size?, _ b: Size?) -> Bool { a?.h == b?.h && a?.w == b?.w && a != nil }

        for i in trace0.indices {
            let (a, b) = (trace0[i], trace1[i])
            var source: Source?
            if let in0 = spatial(a.inputShape), let in1 = spatial(b.inputShape) {
                let imageMatches = same(in0, (probe, probe)) && same(in1, (second, second))
                let exact = (0..<i).last { trace0[$0].outputShape == a.inputShape && trace1[$0].outputShape == b.inputShape }
                let spatialOnly = (0..<i).last { same(spatial(trace0[$0].outputShape), in0) && same(spatial(trace1[$0].outputShape), in1) }
                if let j = exact {
                    source = .leaf(j)
                } else if imageMatches && a.inputShape.last == inputChannels {
                    source = .image
                } else if let j = spatialOnly {
                    source = .leaf(j)
                } else if imageMatches {
                    source = .image
                } else if same(in0, in1) {
                    source = .constant(in0.h, in0.w)
                } else {
                    mode = .atLeastProbe("could not tell where the input of \(a.path) (\(a.type)) comes from")
                    return
                }
            }
            let out0 = spatial(a.outputShape), out1 = spatial(b.outputShape)
            let layer = layers[a.path]
            let rule: Rule
            if let conv = layer as? Conv2D, source != nil {
                rule = .conv(conv)
            } else if let pool = layer as? MaxPool2D, source != nil {
                rule = .pool(kernel: pool.kernelSize, stride: pool.stride, padding: pool.padding, ceilMode: pool.ceilMode)
            } else if let pool = layer as? AvgPool2D, source != nil {
                rule = .pool(kernel: pool.kernelSize, stride: pool.stride, padding: pool.padding, ceilMode: pool.ceilMode)
            } else if let out0, let out1 {
                if source == nil {
                    mode = .atLeastProbe("\(a.path) (\(a.type)) turns a vector into a feature map")
                    return
                }
                let in0 = spatial(a.inputShape)!, in1 = spatial(b.inputShape)!
                if same(out0, in0) && same(out1, in1) {
                    rule = .identity
                } else if same(out0, out1) {
                    rule = .constant(out0.h, out0.w)
                } else {
                    mode = .atLeastProbe("\(a.path) (\(a.type)) changes the feature map size in a way LiteCNN cannot model")
                    return
                }
            } else {
                rule = .toVector
            }
            steps.append(Step(path: a.path, type: a.type, source: source, rule: rule))
        }

        // The rules must reproduce both probes, or the analysis is wrong for this model.
        for (resolution, trace) in [(probe, trace0), (second, trace1)] {
            guard case let .sizes(inputs, outputs) = simulate(resolution),
                  trace.indices.allSatisfy({ same(inputs[$0], spatial(trace[$0].inputShape)) || (inputs[$0] == nil && spatial(trace[$0].inputShape) == nil) }),
                  trace.indices.allSatisfy({ same(outputs[$0], spatial(trace[$0].outputShape)) || (outputs[$0] == nil && spatial(trace[$0].outputShape) == nil) })
            else {
                mode = .atLeastProbe("its feature map sizes could not be reproduced")
                return
            }
        }

        // Group every feature map by its sizes in the two probes.
        var groups: [String: [(index: Int, output: Bool)]] = [:]
        func add(_ index: Int, _ output: Bool, _ s0: Size?, _ s1: Size?) {
            guard let s0, let s1 else { return }
            groups["\(s0.h)x\(s0.w)/\(s1.h)x\(s1.w)", default: []].append((index, output))
        }
        add(-1, true, (probe, probe), (second, second))
        for i in trace0.indices {
            add(i, false, spatial(trace0[i].inputShape), spatial(trace1[i].inputShape))
            add(i, true, spatial(trace0[i].outputShape), spatial(trace1[i].outputShape))
        }
        equalSizeGroups = groups.values.filter { $0.count > 1 }.sorted { $0[0].index < $1[0].index }
    }

    static func traces(_ model: any Layer, _ shape: [Int]) -> [LayerTrace] {
        var all: [LayerTrace] = []
        _ = model.trace(shape, path: "") { all.append($0) }
        return all
    }

    enum Simulation {
        case sizes(inputs: [Size?], outputs: [Size?])
        case failure(String)
    }

    /// Spatial input and output size of every leaf at `resolution`, or why one cannot be computed.
    func simulate(_ resolution: Int) -> Simulation {
        var inputs: [Size?] = [], outputs: [Size?] = []
        for step in steps {
            var input: Size?
            switch step.source {
            case nil: input = nil
            case .image: input = (resolution, resolution)
            case let .leaf(j): input = outputs[j]
            case let .constant(h, w): input = (h, w)
            }
            if step.source != nil {
                guard let size = input else { return .failure("\(step.path) (\(step.type)) receives no feature map") }
                guard size.h >= 1 && size.w >= 1 else {
                    return .failure("the feature map reaching \(step.path) (\(step.type)) is empty")
                }
            }
            inputs.append(input)
            switch step.rule {
            case let .conv(conv):
                let size = input!
                let extentH = conv.dilation.height * (conv.kernelSize.height - 1) + 1
                let extentW = conv.dilation.width * (conv.kernelSize.width - 1) + 1
                let paddedH = size.h + conv.padding.top + conv.padding.bottom
                let paddedW = size.w + conv.padding.left + conv.padding.right
                guard paddedH >= extentH && paddedW >= extentW else {
                    return .failure("\(step.path) (Conv2D, kernel \(conv.kernelSize.height)×\(conv.kernelSize.width)) receives a \(size.h)×\(size.w) feature map, smaller than its kernel")
                }
                outputs.append(((paddedH - extentH) / conv.stride.height + 1, (paddedW - extentW) / conv.stride.width + 1))
            case let .pool(kernel, stride, padding, ceilMode):
                let size = input!
                guard size.h + 2 * padding >= kernel && size.w + 2 * padding >= kernel else {
                    return .failure("\(step.path) (\(step.type), kernel \(kernel)) receives a \(size.h)×\(size.w) feature map, smaller than its kernel")
                }
                func length(_ n: Int) -> Int {
                    let span = n + 2 * padding - kernel
                    var out = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
                    if ceilMode && (out - 1) * stride >= n + padding { out -= 1 }
                    return out
                }
                outputs.append((length(size.h), length(size.w)))
            case let .constant(h, w): outputs.append((h, w))
            case .identity: outputs.append(input)
            case .toVector: outputs.append(nil)
            }
        }
        return .sizes(inputs: inputs, outputs: outputs)
    }

    /// Why `resolution` fails, or nil when it works.
    func failure(at resolution: Int) -> String? {
        guard resolution >= 1 else { return "it must be positive" }
        switch mode {
        case let .onlyProbe(why):
            return resolution == probe ? nil : "\(why); only \(probe) works"
        case let .atLeastProbe(why):
            return resolution >= probe ? nil : "\(why), so only resolutions of at least \(probe) are accepted"
        case .exact:
            break
        }
        switch simulate(resolution) {
        case let .failure(reason):
            return reason
        case let .sizes(inputs, outputs):
            for group in equalSizeGroups {
                let sizes: [Size] = group.map { $0.index < 0 ? (resolution, resolution) : ($0.output ? outputs[$0.index] : inputs[$0.index])! }
                if let odd = sizes.firstIndex(where: { $0.h != sizes[0].h || $0.w != sizes[0].w }) {
                    let place = group[odd].index < 0 ? "the image" : steps[group[odd].index].path
                    return "feature maps that must match would differ (\(sizes[0].h)×\(sizes[0].w) vs \(sizes[odd].h)×\(sizes[odd].w) at \(place)); try a multiple of 32"
                }
            }
            return nil
        }
    }

    /// The smallest resolution in `1...probe` that works.
    func smallestWorking() -> Int? {
        switch mode {
        case .onlyProbe, .atLeastProbe: return probe
        case .exact: return (1...max(1, probe)).first { failure(at: $0) == nil }
        }
    }
}
