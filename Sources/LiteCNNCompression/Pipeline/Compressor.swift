// The compression pipeline: low rank → structured pruning → magnitude pruning → weight sharing or linear
// quantization → Huffman coding, each stage fine-tuned and measured from the file it really produces
// (Han, Mao & Dally, 2016, "Deep Compression", arXiv:1510.00149; Iandola et al., 2016, "SqueezeNet", Table 2).
import Foundation
import LiteCNNData
import LiteCNNGraph
import LiteCNNLayers
import LiteCNNRuntime
import LiteCNNTensor
import LiteCNNTraining

/// One row of the report: the model after a stage, measured from its serialized compressed file.
public struct StageResult: Codable, Sendable, Equatable {
    /// `fp32`, `low rank`, `structured pruning`, `pruning`, `weight sharing`, `linear quantization`, `huffman`,
    /// `int8 activations`.
    public var stage: String
    /// What the stage did, for people (`33% of weights kept`, `6-bit k-means (fc 5-bit)`).
    public var detail: String
    /// Size of the compressed file this stage produces, in bytes.
    public var bytes: Int
    /// fp32 bytes / bytes.
    public var ratio: Double
    /// Accuracy in percent on the test split, computed from the decoded file (after fine-tuning when there was any).
    public var top1: Double
    public var top5: Double
    /// Top-1 right after the stage, before its fine-tuning (`nil` without fine-tuning).
    public var top1BeforeFinetune: Double?
    /// Trainable scalars of the graph, and the weights of Conv/Gemm layers that are not zero.
    public var parameters: Int
    public var nonZeroWeights: Int
    /// Multiply-adds of one image.
    public var multiplyAdds: Int

    public init(stage: String, detail: String, bytes: Int, ratio: Double, top1: Double, top5: Double,
                top1BeforeFinetune: Double?, parameters: Int, nonZeroWeights: Int, multiplyAdds: Int) {
        self.stage = stage
        self.detail = detail
        self.bytes = bytes
        self.ratio = ratio
        self.top1 = top1
        self.top5 = top5
        self.top1BeforeFinetune = top1BeforeFinetune
        self.parameters = parameters
        self.nonZeroWeights = nonZeroWeights
        self.multiplyAdds = multiplyAdds
    }

    enum CodingKeys: String, CodingKey {
        case stage, detail, bytes, ratio, top1, top5, parameters
        case top1BeforeFinetune = "top1_before_finetune", nonZeroWeights = "nonzero_weights", multiplyAdds = "macs"
    }
}

/// What a compression run produced.
public struct CompressionResult: Sendable {
    public var stages: [StageResult]
    /// The final compressed model (what `CompressedModelFile.write` stores).
    public var model: CompressedModel
    /// Its serialized bytes (the file).
    public var bytes: [UInt8]
    public var plan: CompressionPlan

    public init(stages: [StageResult], model: CompressedModel, bytes: [UInt8], plan: CompressionPlan) {
        precondition(!stages.isEmpty, "CompressionResult: at least the fp32 stage")
        self.stages = stages
        self.model = model
        self.bytes = bytes
        self.plan = plan
    }

    public var baseline: StageResult { stages[0] }
    public var final: StageResult { stages[stages.count - 1] }
}

/// Runs a `CompressionPlan` on a graph with a data set for fine-tuning and evaluation.
///
/// The graph has ONNX semantics (NCHW input `[N, C, H, W]`, classifier output `[N, classes]`). Fine-tuning trains a
/// `GraphNetwork` of the current graph with the `Trainer` (the base configuration's data, resolution, normalization,
/// batch size, optimizer and augmentation; `plan.finetuneEpochs` epochs at `plan.finetuneLearningRate`, cosine to 0),
/// distilling from `teacher` when one is given. Every stage is measured on the file it produces: the compressed model
/// is serialized, parsed back, decoded and run by the `InferenceEngine` on the test split.
public final class Compressor {
    public let plan: CompressionPlan
    public let imageShape: [Int]
    public let data: DatasetSplits
    public let configuration: TrainingConfiguration
    public let teacher: (any Layer)?
    public let workDirectory: URL
    public let evaluationBatch: Int
    /// A short status line ("fine-tuning after pruning", "evaluating").
    public var onStatus: ((String) -> Void)?
    /// Every fine-tuning step (progress bars).
    public var onStep: ((StepReport) -> Void)?
    /// Evaluation progress: (done, total) images.
    public var onEvaluation: ((Int, Int) -> Void)?

    private var graph: Graph
    /// The Conv/Gemm weights of the *current* graph: low rank and structured pruning rename and replace them, so the
    /// later stages must not use the input graph's list.
    private var weightNames: [String] { MagnitudePruning.prunableWeights(graph) }

    /// `plan.layerSparsity` keyed by prunable weight: a key names a weight (`classifier.6.weight`) or its layer
    /// (`classifier.6`). A key that matches no prunable weight is an error that lists them.
    private func resolvedLayerSparsity() throws -> [String: Double] {
        guard let requested = plan.layerSparsity, !requested.isEmpty else { return [:] }
        let names = weightNames
        var resolved: [String: Double] = [:]
        for (key, value) in requested {
            guard let name = names.first(where: { $0 == key }) ?? names.first(where: { $0 == key + ".weight" }) else {
                throw CompressionError("--layer-prune: '\(key)' is not a prunable weight; the model has "
                                       + names.joined(separator: ", "))
            }
            resolved[name] = value
        }
        return resolved
    }
    private var fullyConnected: Set<String> { Self.fullyConnectedWeights(graph) }
    private var masks: PruningMasks?
    private var encodings: [String: WeightEncoding] = [:]
    private var stages: [StageResult] = []
    private var fp32Bytes = 0
    private var stageIndex = 0

    /// - Parameters:
    ///   - imageShape: `[C, H, W]` of one image (must match the data and `configuration.resolution`).
    ///   - configuration: the fine-tuning base; `epochs`, `learningRate`, `schedule` and `teacher` are replaced.
    ///   - workDirectory: where fine-tuning runs write their run directories (created; removed by the caller).
    public init(graph: Graph, imageShape: [Int], plan: CompressionPlan, data: DatasetSplits,
                configuration: TrainingConfiguration, teacher: (any Layer)? = nil, workDirectory: URL,
                evaluationBatch: Int = 64) throws {
        try plan.validate()
        guard imageShape.count == 3, imageShape[1] == configuration.resolution, imageShape[2] == configuration.resolution else {
            throw CompressionError("the model takes \(imageShape) images but the data settings say \(configuration.resolution)×\(configuration.resolution); pass --resolution \(imageShape.count == 3 ? imageShape[1] : 0)")
        }
        guard data.train.channels == imageShape[0] else {
            throw CompressionError("the model takes \(imageShape[0]) channels but \(data.description) has \(data.train.channels)")
        }
        self.graph = graph
        self.imageShape = imageShape
        self.plan = plan
        self.data = data
        self.configuration = configuration
        self.teacher = teacher
        self.workDirectory = workDirectory
        self.evaluationBatch = evaluationBatch
        guard !MagnitudePruning.prunableWeights(graph).isEmpty else { throw CompressionError("the graph has no Conv or Gemm weights to compress") }
    }

    /// Names of the weights of Gemm/MatMul nodes (the "fc" layers).
    static func fullyConnectedWeights(_ graph: Graph) -> Set<String> {
        var names = Set<String>()
        for node in graph.nodes where node.opType == "Gemm" || node.opType == "MatMul" {
            for input in node.inputs.dropFirst() where graph.initializers[input] != nil { names.insert(input) }
        }
        return names
    }

    // MARK: The run

    public func run() throws -> CompressionResult {
        try FileManager.default.createDirectory(at: workDirectory, withIntermediateDirectories: true)
        try record("fp32", detail: "dense 32-bit floats", before: nil)
        fp32Bytes = stages[0].bytes
        stages[0].ratio = 1

        if plan.svdEnergy != nil || plan.tuckerEnergy != nil || plan.spatialEnergy != nil { try lowRankStage() }
        if let reduction = plan.structuredReduction { try structuredStage(reduction) }
        if plan.prunes { try pruningStage() }
        if plan.quantizes { try quantizationStage() }
        if plan.huffman {
            try record("huffman", detail: "Huffman-coded indices and gaps", before: nil)
        }
        var ranges: [String: ClosedRange<Float>] = [:]
        if let method = plan.calibration { ranges = try calibrationStage(method) }

        var model = storedModel(huffman: plan.huffman)
        model.activationRanges = ranges
        model.metadata["litecnn.compression.plan"] = String(decoding: try JSONEncoder.sorted.encode(plan), as: UTF8.self)
        model.metadata["litecnn.compression.top1_before"] = String(format: "%.2f", stages[0].top1)
        model.metadata["litecnn.compression.top1_after"] = String(format: "%.2f", stages.last!.top1)
        let bytes = try CompressedModelFile.serialize(model)
        // The last row is the file itself (with its metadata).
        stages[stages.count - 1].bytes = bytes.count
        stages[stages.count - 1].ratio = Double(fp32Bytes) / Double(bytes.count)
        return CompressionResult(stages: stages, model: model, bytes: bytes, plan: plan)
    }

    // MARK: Stages

    private func lowRankStage() throws {
        onStatus?("factorizing")
        var details: [String] = []
        var factorized = 0
        for node in graph.nodes {
            let candidate = graph
            var rewritten: Graph?
            if node.opType == "Gemm" || node.opType == "MatMul", let energy = plan.svdEnergy,
               node.inputs.count > 1, graph.initializers[node.inputs[1]] != nil {
                rewritten = try? LowRank.factorizeLinear(candidate, node: node.name, rank: .energy(energy)).0
            } else if node.opType == "Conv", (node.int("group") ?? 1) == 1, let kernel = node.ints("kernel_shape"),
                      kernel.count == 2, kernel.allSatisfy({ $0 >= 3 }), let weight = weightShape(node), weight[1] > 4 {
                if let energy = plan.tuckerEnergy {
                    rewritten = try? LowRank.tucker2(candidate, node: node.name, inputRank: .energy(energy), outputRank: .energy(energy)).0
                } else if let energy = plan.spatialEnergy {
                    rewritten = try? LowRank.factorizeSpatial(candidate, node: node.name, rank: .energy(energy)).0
                }
            }
            // Keep a factorization only when it saves parameters.
            if let rewritten, StructuredPruning.parameterCount(rewritten) < StructuredPruning.parameterCount(graph) {
                graph = rewritten
                factorized += 1
            }
        }
        if let e = plan.svdEnergy { details.append("SVD of fc layers keeping \(percent(e)) energy") }
        if let e = plan.tuckerEnergy { details.append("Tucker-2 of k×k convs keeping \(percent(e)) energy") }
        if let e = plan.spatialEnergy { details.append("k×1·1×k of k×k convs keeping \(percent(e)) energy") }
        details.append("\(factorized) layers factorized")
        let before = try finetuneIfAsked("low rank")
        try record("low rank", detail: details.joined(separator: "; "), before: before)
    }

    private func structuredStage(_ reduction: Double) throws {
        onStatus?("pruning channels")
        let (pruned, report) = try StructuredPruning.prune(graph, imageShape: imageShape, macReduction: reduction,
                                                           channelMultiple: plan.channelMultiple)
        graph = pruned
        let before = try finetuneIfAsked("structured pruning")
        try record("structured pruning",
                   detail: String(format: "%.1f%% of multiply-adds removed", 100 * report.achievedReduction)
                       + " (target \(percent(reduction)), channels in multiples of \(plan.channelMultiple))"
                       + (report.note.map { "; \($0)" } ?? ""),
                   before: before)
    }

    private func pruningStage() throws {
        let network = try GraphNetwork(graph: graph, imageShape: imageShape)
        let parameters = weightParameters(network)
        var detail: String
        var before: Double?
        if let spec = plan.pruneSchedule {
            let schedule: PruningSchedule
            do { schedule = try PruningSchedule(parsing: spec) } catch { throw CompressionError("--prune-schedule: \(error)") }
            detail = "\(plan.globalPruning ? "global" : "per-layer") pruning on the schedule \(schedule)"
            // --fc-prune and --layer-prune give the final sparsity of those layers; the others end at the schedule's.
            var targets: [String: Double] = [:]
            if let fc = plan.fcSparsity {
                let fullyConnected = self.fullyConnected
                for name in weightNames where fullyConnected.contains(name) { targets[name] = fc }
            }
            for (name, value) in try resolvedLayerSparsity() { targets[name] = value }
            let pruner = ScheduledPruner(schedule: schedule, parameters: parameters, global: plan.globalPruning, names: weightNames,
                                         layerTargets: targets)
            if !targets.isEmpty {
                detail += targets.sorted(by: { $0.key < $1.key }).map { "; \($0.key) to \(percent($0.value))" }.joined()
            }
            var totalSteps = 0
            graph = try finetune(network, stage: "pruning") { trainer in
                totalSteps = trainer.totalSteps
                pruner.install(on: trainer)
            }
            // Bring the masks to the schedule's value at the end of fine-tuning.
            pruner.update(step: totalSteps, totalSteps: totalSteps)
            masks = pruner.masks
            graph = network.exportGraph()
        } else {
            var perLayer: [String: Double] = [:]
            let fullyConnected = self.fullyConnected
            for name in weightNames {
                perLayer[name] = fullyConnected.contains(name) ? (plan.fcSparsity ?? plan.sparsity ?? 0) : (plan.sparsity ?? 0)
            }
            let overrides = try resolvedLayerSparsity()
            for (name, value) in overrides { perLayer[name] = value }
            let newMasks = plan.globalPruning ? MagnitudePruning.global(parameters, sparsity: plan.sparsity ?? 0)
                                              : MagnitudePruning.layerwise(parameters, sparsity: perLayer)
            newMasks.apply(to: parameters)
            masks = newMasks
            graph = network.exportGraph()
            detail = plan.globalPruning ? "global magnitude pruning to \(percent(plan.sparsity ?? 0)) zeros"
                                        : "magnitude pruning, \(percent(plan.sparsity ?? 0)) zeros per layer"
                                          + (plan.fcSparsity.map { " (fc \(percent($0)))" } ?? "")
                                          + overrides.sorted(by: { $0.key < $1.key }).map { "; \($0.key) \(percent($0.value))" }.joined()
            if plan.finetuneEpochs > 0 {
                before = try accuracy(of: storedModel(huffman: false)).top1
                graph = try finetune(network, stage: "pruning") { newMasks.install(on: $0, parameters: parameters) }
            }
        }
        if let masks { detail += String(format: "; %.1f%% of weights kept", 100 * (1 - masks.sparsity)) }
        try record("pruning", detail: detail, before: before)
    }

    private func quantizationStage() throws {
        onStatus?("quantizing")
        let network = try GraphNetwork(graph: graph, imageShape: imageShape)
        let parameters = weightParameters(network)
        var codebooks: [String: CodebookTensor] = [:]
        let fullyConnected = self.fullyConnected
        for (name, parameter) in parameters {
            let bits = fullyConnected.contains(name) ? (plan.fcBits ?? plan.bits) : (plan.bits ?? plan.fcBits)
            guard let bits else { continue }
            if plan.linear {
                let q = LinearQuantization.quantize(parameter.value, bits: bits, symmetric: plan.symmetric, perChannel: plan.perChannel)
                encodings[name] = .linear(q)
                parameter.value = q.decoded()
            } else {
                let c = WeightSharing.cluster(parameter.value, bits: bits)
                codebooks[name] = c
                parameter.value = c.decoded()
            }
        }
        for (name, c) in codebooks { encodings[name] = .codebook(c) }
        graph = network.exportGraph()
        let bitsText = [plan.bits.map { "\($0)-bit" }, plan.fcBits.map { "fc \($0)-bit" }].compactMap { $0 }.joined(separator: ", ")
        var before: Double?
        if plan.linear {
            try record("linear quantization",
                       detail: "\(bitsText) \(plan.symmetric ? "symmetric" : "asymmetric") \(plan.perChannel ? "per-channel" : "per-tensor") integers (no fine-tuning)",
                       before: nil)
            return
        }
        if plan.finetuneEpochs > 0 {
            before = try accuracy(of: storedModel(huffman: false)).top1
            let sharing = CodebookFineTuning(parameters: parameters.filter { codebooks[$0.name] != nil }, codebooks: codebooks)
            graph = try finetune(network, stage: "weight sharing") { sharing.install(on: $0) }
            for (name, c) in sharing.codebooks { encodings[name] = .codebook(c) }
            // The weights are exactly the codebook's values (snap ran after the last step).
            for (name, parameter) in parameters { if case let .codebook(c)? = encodings[name] { parameter.value = c.decoded() } }
            graph = network.exportGraph()
        }
        try record("weight sharing", detail: "\(bitsText) k-means codebooks" + (plan.finetuneEpochs > 0 ? ", fine-tuned" : ""),
                   before: before)
    }

    private func calibrationStage(_ method: String) throws -> [String: ClosedRange<Float>] {
        onStatus?("calibrating activations")
        let network = try GraphNetwork(graph: graph, imageShape: imageShape)
        network.eval()
        let normalization = try configuration.normalization(channels: imageShape[0])
        let transforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: imageShape[0],
                                                       mean: normalization.mean, std: normalization.std)
        let loader = DataLoader(dataset: data.train, batchSize: min(64, plan.calibrationImages), shuffle: true,
                                dropLast: false, transforms: transforms, seed: configuration.seed)
        var batches: [Tensor] = []
        var taken = 0
        let iterator = loader.epoch(0)
        while taken < plan.calibrationImages, let batch = try iterator.next() {
            batches.append(batch.images)
            taken += batch.labels.count
        }
        let kind: ActivationCalibration.Method
        switch method {
        case "minmax": kind = .minMax
        case "percentile": kind = .percentile(99.99)
        default: kind = .entropy
        }
        let ranges = ActivationCalibration.calibrate(network, batches: batches, method: kind)
        ActivationCalibration.installFakeQuantization(on: network, ranges: ranges, bits: 8)
        onStatus?("evaluating int8")
        let metrics = try Evaluation.evaluate(InputQuantizing(network, ranges: ranges), on: data.test, transforms: transforms,
                                              batchSize: evaluationBatch, progress: onEvaluation)
        var model = storedModel(huffman: plan.huffman)
        model.activationRanges = ranges
        let bytes = try CompressedModelFile.serialize(model).count
        stages.append(StageResult(stage: "int8 activations", detail: "\(method) calibration on \(taken) images, 8-bit activations",
                                  bytes: bytes, ratio: Double(fp32Bytes) / Double(bytes), top1: metrics.top1, top5: metrics.top5,
                                  top1BeforeFinetune: nil, parameters: stages.last!.parameters,
                                  nonZeroWeights: stages.last!.nonZeroWeights, multiplyAdds: stages.last!.multiplyAdds))
        return ranges
    }

    // MARK: Fine-tuning

    /// Fine-tunes the current graph when the plan asks for it; returns the top-1 before fine-tuning.
    private func finetuneIfAsked(_ stage: String) throws -> Double? {
        guard plan.finetuneEpochs > 0 else { return nil }
        let before = try accuracy(of: storedModel(huffman: false)).top1
        let network = try GraphNetwork(graph: graph, imageShape: imageShape)
        graph = try finetune(network, stage: stage, configure: nil)
        return before
    }

    /// Trains `network` for `plan.finetuneEpochs` epochs (`configure` installs hooks around the optimizer step);
    /// returns its graph.
    private func finetune(_ network: GraphNetwork, stage: String, configure: ((Trainer) -> Void)?) throws -> Graph {
        guard plan.finetuneEpochs > 0 else { return network.exportGraph() }
        onStatus?("fine-tuning after \(stage)")
        stageIndex += 1
        var c = configuration
        c.epochs = plan.finetuneEpochs
        c.learningRate = plan.finetuneLearningRate
        c.finalLearningRate = 0
        c.schedule = "cosine"
        c.warmupEpochs = 0
        c.maxSteps = nil
        c.checkpointEvery = nil
        c.teacher = nil
        c.model = "compressed"
        let directory = RunDirectory(workDirectory.appendingPathComponent("finetune-\(stageIndex)-\(stage.replacingOccurrences(of: " ", with: "-"))"))
        try? FileManager.default.removeItem(at: directory.url)
        let trainer = try Trainer(configuration: c, data: data, runDirectory: directory, resume: false,
                                  customModel: network, customTeacher: teacher)
        configure?(trainer)
        trainer.onStep = onStep
        trainer.onEvaluation = onEvaluation
        _ = try trainer.run()
        network.eval()
        return network.exportGraph()
    }

    // MARK: Storage and measurement

    /// The current graph as a compressed model: Conv/Gemm weights with their encoding (sparse when that is smaller),
    /// every other float tensor dense fp32, integer constants left in the graph.
    func storedModel(huffman: Bool) -> CompressedModel {
        var architecture = graph
        var tensors: [String: StoredTensor] = [:]
        let weights = Set(weightNames), fullyConnected = self.fullyConnected
        for (name, constant) in graph.initializers {
            guard case let .float(tensor) = constant else { continue }
            architecture.initializers[name] = nil
            guard weights.contains(name) else {
                tensors[name] = StoredTensor(encoding: .float32(tensor), sparse: false, indexBits: plan.convIndexBits, huffman: false)
                continue
            }
            let encoding = encodings[name].map { e -> WeightEncoding in
                // A stage after quantization (none today) could have changed the weights: keep floats then.
                e.shape == tensor.shape ? e : .float32(tensor)
            } ?? .float32(tensor)
            let indexBits = fullyConnected.contains(name) ? plan.fcIndexBits : plan.convIndexBits
            let valueBits: Int
            switch encoding {
            case .float32: valueBits = 32
            case .float16: valueBits = 16
            case let .codebook(c): valueBits = c.bits
            case let .linear(q): valueBits = q.bits
            }
            let zeros = tensor.scalars.reduce(0) { $1 == 0 ? $0 + 1 : $0 }
            let nonZero = tensor.count - zeros
            // Deep Compression stores non-zeros with gaps; padding entries appear when a gap overflows indexBits.
            let maxGap = (1 << indexBits)
            let padding = tensor.count / maxGap
            let sparseBits = (nonZero + padding) * (valueBits + indexBits)
            let sparse = zeros > 0 && sparseBits < tensor.count * valueBits
            tensors[name] = StoredTensor(encoding: encoding, sparse: sparse, indexBits: indexBits, huffman: huffman)
        }
        return CompressedModel(graph: architecture, tensors: tensors, activationRanges: [:], metadata: graph.metadata)
    }

    /// Accuracy of a compressed model as the runtime computes it from the decoded file.
    private func accuracy(of model: CompressedModel) throws -> ClassificationMetrics {
        let bytes = try CompressedModelFile.serialize(model)
        let decoded = try CompressedModelFile.parse(bytes, source: "<stage>").decodedGraph()
        onStatus?("evaluating")
        let normalization = try configuration.normalization(channels: imageShape[0])
        let transforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: imageShape[0],
                                                       mean: normalization.mean, std: normalization.std)
        return try GraphEvaluation.evaluate(decoded, on: data.test, transforms: transforms, batchSize: evaluationBatch,
                                            progress: onEvaluation)
    }

    private func record(_ stage: String, detail: String, before: Double?) throws {
        let model = storedModel(huffman: stage == "huffman")
        let bytes = try CompressedModelFile.serialize(model).count
        let metrics = try accuracy(of: model)
        var nonZero = 0
        for name in weightNames {
            if case let .float(t)? = graph.initializers[name] { nonZero += t.scalars.reduce(0) { $1 != 0 ? $0 + 1 : $0 } }
        }
        let macs = (try? StructuredPruning.multiplyAdds(graph, imageShape: imageShape)) ?? 0
        stages.append(StageResult(stage: stage, detail: detail, bytes: bytes,
                                  ratio: fp32Bytes > 0 ? Double(fp32Bytes) / Double(bytes) : 1,
                                  top1: metrics.top1, top5: metrics.top5, top1BeforeFinetune: before,
                                  parameters: StructuredPruning.parameterCount(graph), nonZeroWeights: nonZero, multiplyAdds: macs))
    }

    // MARK: Helpers

    private func weightParameters(_ network: GraphNetwork) -> [(name: String, parameter: Parameter)] {
        let names = Set(weightNames)
        return network.namedParameters().filter { names.contains($0.name) }
    }

    private func weightShape(_ node: Node) -> [Int]? {
        guard node.inputs.count > 1, case let .float(t)? = graph.initializers[node.inputs[1]] else { return nil }
        return t.shape
    }

    private func percent(_ x: Double) -> String { String(format: "%g%%", (x * 1000).rounded() / 10) }
}

/// A network whose input is fake-quantized to 8 bits with its calibrated range before the forward pass (the value
/// hook sees node outputs only), for evaluating the int8 model.
private final class InputQuantizing: Layer {
    let network: GraphNetwork
    let ranges: [String: ClosedRange<Float>]
    var isTraining = false

    init(_ network: GraphNetwork, ranges: [String: ClosedRange<Float>]) {
        self.network = network
        self.ranges = ranges
    }

    var children: [(name: String, layer: any Layer)] { [("network", network)] }
    func outputShape(for inputShape: [Int]) -> [Int] { network.outputShape(for: inputShape) }
    func forward(_ input: Tensor) -> Tensor {
        network.forward(ActivationCalibration.fakeQuantizeInput(input, network: network, ranges: ranges))
    }
    func backward(_ gradOutput: Tensor) -> Tensor { network.backward(gradOutput) }
}

extension JSONEncoder {
    /// Sorted keys, for stable metadata.
    static var sorted: JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        return e
    }
}
