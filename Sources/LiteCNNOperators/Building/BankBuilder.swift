// The cloud side: prepares every operator for every slot of a trained network and measures each one.
import Foundation
import LiteCNNCompression
import LiteCNNGraph
import LiteCNNLayers
import LiteCNNRuntime
import LiteCNNTensor
import LiteCNNTraining

/// Images (NHWC `[N, H, W, C]`, already normalized as the model expects) with their labels.
public struct LabeledBatch: Sendable {
    public var images: Tensor
    public var labels: [Int]
    public init(images: Tensor, labels: [Int]) { self.images = images; self.labels = labels }
}

/// What `BankBuilder` prepares and how.
public struct BankBuildOptions: Sendable, Equatable {
    /// The operators to prepare for every slot (those that cannot replace a slot exactly in shape are skipped there).
    public var operators: [OperatorKind] = OperatorKind.allCases
    /// Inner widths β for the operators that have one; nil = each operator's `defaultBeta`.
    public var betas: [Double]? = nil
    /// Also make slots of the fully connected layers (`OperatorSlots.find(…, fullyConnected: true)`), where only low
    /// rank applies. Off by default: the bank then holds exactly the convolution slots.
    public var fullyConnected = false
    /// Ranks of the low-rank operators on fully connected slots, as fractions β of the largest rank
    /// (`R = max(1, round(β·min(C_i, C)))`). Much smaller than the convolutions' β: a fully connected layer's
    /// multiply-adds are `C_i·C`, the operator's `R·(C_i + C)`, so β = 0.5 on a square layer saves nothing; 0.125 and
    /// 0.25 keep 25 % and 50 % of it.
    public var fullyConnectedBetas: [Double] = [0.125, 0.25]
    /// Layer-wise distillation steps per operator (0 = keep the data-free initialization).
    public var distillationSteps = 300
    /// Adam's learning rate for distillation, decayed to 0 by a cosine. (On ResNet-18 / shapes, 300 steps: mean
    /// relative error of Fire β=0.25 0.32 at 1e-3, 0.19 at 3e-3, 0.14 at 1e-2; low rank 0.081, 0.067, 0.064.)
    public var learningRate: Float = 1e-2
    /// Calibration batches held out of distillation to measure each operator's error.
    public var heldOutBatches = 1
    /// Timed runs per latency measurement (after 5 warm-up runs); the median is kept.
    public var latencyRuns = 30
    /// How the bank stores the operators' tensors. With `.float16` every tensor is rounded to binary16 right after
    /// distillation, so every measurement is made with exactly the values the file holds (half the file size).
    /// BatchNorm variances above 2¹⁴ are first scaled into range by powers of two
    /// (`PluggableOperator.withBatchNormVariancesBelowHalfRange`); if a value still does not fit, the bank is stored
    /// as float32 (`build` reports it through `onStatus`).
    public var precision: BankPrecision = .float16
    /// End-to-end fine-tuning of all operators after distillation (`OperatorFineTuning`); `steps` 0 skips it.
    public var fineTuning: OperatorFineTuningOptions = {
        var o = OperatorFineTuningOptions()
        o.steps = 0
        return o
    }()
    public var seed: UInt64 = 0

    public init() {}

    /// The (kind, β) settings to prepare for convolution slots, in order.
    public var settings: [(kind: OperatorKind, beta: Double)] {
        operators.flatMap { kind in kind.usesBeta ? (betas ?? [kind.defaultBeta]).map { (kind, $0) } : [(kind, 1.0)] }
    }

    /// The (kind, β) settings to prepare for `slot`: `settings` filtered to what applies for a convolution; low rank
    /// at every `fullyConnectedBetas` (when `operators` includes it) for a fully connected slot.
    public func settings(for slot: OperatorSlot) -> [(kind: OperatorKind, beta: Double)] {
        guard slot.isFullyConnected else { return settings.filter { $0.kind.isApplicable(to: slot) } }
        return operators.contains(.lowRank) ? fullyConnectedBetas.map { (.lowRank, $0) } : []
    }
}

/// Builds an `OperatorBank` for a trained base network (`litecnn operators build`).
///
/// For every slot (`OperatorSlots.find`) and every operator setting:
/// 1. **Initialization** without data where the mathematics gives one (`PluggableOperator.initialized`: SVD for low
///    rank, Tucker-2 for the bottleneck, rank-1 slices for depthwise-separable, kernel rows and columns for the
///    multi-branch operator, He initialization for Fire). A fully connected slot's low rank also tries the
///    output-subspace factorization on the calibration inputs (`fullyConnectedLowRank(weight:inputs:dataFree:)`)
///    and keeps whichever reproduces the unit better on the held-out calibration batches.
/// 2. **Layer-wise distillation**: the base runs once over the calibration images and each unit's input and output are
///    kept; the operator alone (`GraphNetwork` of its standalone graph, BatchNorm in training mode) is trained with
///    Adam to reproduce the unit's output, mean squared error, the rest of the network frozen. Its relative error
///    `Σ‖ŷ − y‖² / Σ‖y‖²` is measured on held-out calibration batches before and after; the better of the two wins,
///    so distillation never makes an exact initialization worse.
/// 3. **Measurements**: parameters and multiply-adds (closed forms), latency of the operator alone and of the unit
///    alone (runtime, batch 1, median), and the network's top-1 and output divergence (mean KL of the class
///    probabilities from the base's) on the evaluation images with only this slot swapped (all alternatives are
///    compiled once into a switchable graph; each measurement is a selection).
/// 4. **End-to-end fine-tuning** (optional, `options.fineTuning.steps` > 0): all operators at once inside the frozen
///    base, in the configurations the measurements select for a grid of budgets, distilled from the base's logits
///    (`OperatorFineTuning`). The measurements stay those of step 3, so the selection keeps choosing the
///    configurations that were trained.
public final class BankBuilder {
    public let base: Graph
    public let imageShape: [Int]
    public let options: BankBuildOptions
    public let slots: [OperatorSlot]
    /// Status lines ("distilling slot 3/16 …") and progress over all (slot, operator) pairs.
    public var onStatus: ((String) -> Void)?
    public var onProgress: ((_ done: Int, _ total: Int) -> Void)?
    /// The fine-tuning stage's report, once `build` ran it.
    public private(set) var fineTuningReport: OperatorFineTuningReport?

    public init(base: Graph, imageShape: [Int], options: BankBuildOptions = BankBuildOptions()) throws {
        self.base = base
        self.imageShape = imageShape
        self.options = options
        self.slots = try OperatorSlots.find(in: base, imageShape: imageShape, fullyConnected: options.fullyConnected)
        guard !slots.isEmpty else {
            throw OperatorConfigurationError("the base has no slot: no Conv with group 1 and a kernel of 3 or more"
                                             + (options.fullyConnected ? " and no fully connected Gemm" : ""))
        }
    }

    /// `calibration` serves distillation (every unit's input and output on it are held in memory) and, unless
    /// `fineTuningImages` is given, fine-tuning; `evaluation` the one-slot top-1 and divergence measurements.
    public func build(calibration: [LabeledBatch], evaluation: [LabeledBatch], fineTuningImages: [LabeledBatch]? = nil) throws
        -> OperatorBank {
        guard !calibration.isEmpty else { throw OperatorConfigurationError("no calibration images") }
        // The same held-out batches whatever the number of steps, so errors of different builds compare.
        let held = min(options.heldOutBatches, calibration.count - 1)
        onStatus?("running the base over \(calibration.reduce(0) { $0 + $1.labels.count }) calibration images")
        let captured = try capture(calibration.map(\.images))

        var entries: [BankEntry] = []
        var needsSinglePrecision = false
        let work = slots.flatMap { slot in options.settings(for: slot).map { (slot, $0) } }
        for (done, (slot, setting)) in work.enumerated() {
            onStatus?("slot \(slot.index + 1)/\(slots.count) \(slot.name): \(setting.kind.label(beta: setting.beta))")
            onProgress?(done, work.count)
            let (weight, bias, bn) = try unitTensors(slot)
            var op = try PluggableOperator.initialized(kind: setting.kind, beta: setting.beta, slot: slot, weight: weight,
                                                       bias: bias, batchNorm: bn, seed: options.seed &+ UInt64(entries.count))
            let pairs = captured[slot.index]
            let train = Array(pairs.dropLast(held)), heldOut = Array(pairs.suffix(held))
            if slot.isFullyConnected,
               let fromData = PluggableOperator.fullyConnectedLowRank(weight: weight, inputs: train.map(\.x), dataFree: op),
               try relativeError(fromData, on: heldOut.isEmpty ? train : heldOut)
                   < relativeError(op, on: heldOut.isEmpty ? train : heldOut) {
                op = fromData
            }
            var error = try distill(&op, train: train, measureOn: heldOut.isEmpty ? train : heldOut)
            if options.precision == .float16 {
                op = op.withBatchNormVariancesBelowHalfRange()
                if op.fitsHalfPrecision {
                    op = op.roundedToHalfPrecision()
                } else {
                    // A value float16 cannot hold: the whole bank is stored as float32 (this operator unrounded).
                    onStatus?("slot \(slot.index) \(setting.kind.label(beta: setting.beta)) holds a value beyond float16: the bank will be float32")
                    needsSinglePrecision = true
                }
                error = try relativeError(op, on: heldOut.isEmpty ? train : heldOut)
            }
            let latency = try Self.latency(of: op.standaloneGraph(), inputShape: [1] + slot.unitInputShape,
                                           runs: options.latencyRuns)
            entries.append(BankEntry(op: op, measurement: OperatorMeasurement(
                parameters: op.parameterCount, multiplyAdds: op.multiplyAdds, latencyMs: latency, top1: nil,
                distillationError: error)))
        }
        onProgress?(work.count, work.count)

        onStatus?("timing the base")
        let slotLatency = try slots.map {
            try Self.latency(of: unitGraph($0), inputShape: [1] + $0.unitInputShape, runs: options.latencyRuns)
        }
        let baseLatency = try Self.latency(of: base, inputShape: [1] + imageShape, runs: options.latencyRuns)
        var bank = OperatorBank(
            baseFingerprint: BaseFingerprint.of(base), imageShape: imageShape, slots: slots,
            base: BaseMeasurement(multiplyAdds: try StructuredPruning.multiplyAdds(base, imageShape: imageShape),
                                  parameters: StructuredPruning.parameterCount(base), latencyMs: baseLatency,
                                  slotLatencyMs: slotLatency),
            entries: entries,
            metadata: ["distillation_steps": String(options.distillationSteps),
                       "calibration_images": String(calibration.reduce(0) { $0 + $1.labels.count }),
                       "threads": String(WorkerPool.shared.threadCount)],
            precision: needsSinglePrecision ? .float32 : options.precision, fullyConnectedSlots: options.fullyConnected)
        if !evaluation.isEmpty { try measureAccuracy(&bank, on: evaluation) }
        if options.fineTuning.steps > 0 {
            onStatus?("fine-tuning all operators end to end (\(options.fineTuning.steps) steps)")
            var fineTuning = options.fineTuning
            fineTuning.seed = options.seed
            fineTuningReport = try OperatorFineTuning.fineTune(&bank, base: base, batches: fineTuningImages ?? calibration,
                                                               options: fineTuning) {
                [onProgress] step, total, _ in onProgress?(step, total)
            }
        }
        return bank
    }

    // MARK: Accuracy

    /// Top-1 and output divergence of the base and of every entry swapped alone, through one switchable engine.
    public func measureAccuracy(_ bank: inout OperatorBank, on evaluation: [LabeledBatch]) throws {
        let images = evaluation.reduce(0) { $0 + $1.labels.count }
        onStatus?("measuring the base on \(images) images")
        let model = try SwitchableModel(base: base, bank: bank)
        let reference = try Self.evaluate({ try model.runNHWC($0) }, on: evaluation)
        bank.base.top1 = reference.top1
        bank.base.top5 = reference.top5
        for e in bank.entries.indices {
            onStatus?("top-1 and divergence with entry \(e + 1)/\(bank.entries.count) swapped alone")
            onProgress?(e, bank.entries.count)
            var configuration = OperatorConfiguration.base(slotCount: bank.slots.count)
            configuration.choices[bank.entries[e].op.slot.index] = e
            try model.apply(configuration)
            let swapped = try Self.evaluate({ try model.runNHWC($0) }, on: evaluation, reference: reference.probabilities)
            bank.entries[e].measurement.top1 = swapped.top1
            bank.entries[e].measurement.outputDivergence = swapped.divergence
        }
        onProgress?(bank.entries.count, bank.entries.count)
    }

    /// Top-1 and top-5 (%) of the model's current configuration.
    public static func accuracy(_ model: SwitchableModel, on batches: [LabeledBatch]) throws -> (top1: Double, top5: Double) {
        let r = try evaluate({ try model.runNHWC($0) }, on: batches)
        return (r.top1, r.top5)
    }

    /// Top-1 and top-5 (%) of `run` (NHWC images → `[N, classes]` logits, ranked as `ClassificationMetrics` ranks
    /// them), the class probabilities (softmax, one array per batch) and, given the probabilities `p` of a reference on
    /// the same batches, the mean `KL(p ‖ q) = Σ_c p_c·(ln p_c − ln q_c)` per image.
    static func evaluate(_ run: (Tensor) throws -> Tensor, on batches: [LabeledBatch], reference: [[Double]]? = nil) throws
        -> (top1: Double, top5: Double, divergence: Double?, probabilities: [[Double]]) {
        var metrics: ClassificationMetrics?
        var divergence = 0.0
        var probabilities: [[Double]] = []
        for (b, batch) in batches.enumerated() {
            let logits = try run(batch.images)
            let classes = logits.count / max(1, batch.labels.count)
            if metrics == nil { metrics = ClassificationMetrics(classCount: classes) }
            metrics!.add(logits: logits, labels: batch.labels, meanLoss: 0)
            var q = [Double](repeating: 0, count: logits.count)
            logits.scalars.withUnsafeBufferPointer { p in
                for i in batch.labels.indices {
                    let row = p.baseAddress! + i * classes
                    var top = -Double.infinity
                    for c in 0..<classes { top = max(top, Double(row[c])) }
                    var sum = 0.0
                    for c in 0..<classes { q[i * classes + c] = exp(Double(row[c]) - top); sum += q[i * classes + c] }
                    for c in 0..<classes { q[i * classes + c] /= sum }
                    if let reference {
                        for c in 0..<classes {
                            let pc = reference[b][i * classes + c]
                            if pc > 0 { divergence += pc * (log(pc) - log(max(q[i * classes + c], 1e-300))) }
                        }
                    }
                }
            }
            probabilities.append(q)
        }
        let n = Double(max(1, metrics?.count ?? 0))
        return (metrics?.top1 ?? 0, metrics?.top5 ?? 0, reference == nil ? nil : max(0, divergence / n), probabilities)
    }

    // MARK: Layer-wise distillation

    /// Each slot's (input, output) per calibration batch, NHWC, from the base in inference mode.
    func capture(_ batches: [Tensor]) throws -> [[(x: Tensor, y: Tensor)]] {
        let network = try GraphNetwork(graph: base, imageShape: imageShape)
        network.eval()
        let inputName = network.graph.inputs[0].name
        var wanted: [String: [Int]] = [:]
        for s in slots { wanted[s.input, default: []].append(s.index); wanted[s.output, default: []].append(s.index) }
        var result = [[(x: Tensor, y: Tensor)]](repeating: [], count: slots.count)
        for images in batches {
            var seen: [String: Tensor] = [inputName: images]
            network.valueHook = { name, tensor in if wanted[name] != nil { seen[name] = tensor } }
            _ = network.forward(images)
            network.valueHook = nil
            for s in slots {
                guard let x = seen[s.input], let y = seen[s.output] else {
                    throw OperatorConfigurationError("slot \(s.index) ('\(s.name)'): the base did not produce '\(s.input)' and '\(s.output)'")
                }
                result[s.index].append((x, y))
            }
        }
        return result
    }

    /// Trains `op` on `train` to reproduce its unit; returns the relative error on `measureOn`.
    func distill(_ op: inout PluggableOperator, train: [(x: Tensor, y: Tensor)], measureOn: [(x: Tensor, y: Tensor)]) throws -> Double {
        let slot = op.slot
        let network = try GraphNetwork(graph: op.standaloneGraph(), imageShape: slot.unitInputShape)
        func relativeError() -> Double {
            network.eval()
            return Self.relativeError(network, on: measureOn)
        }
        let initialError = relativeError()
        guard options.distillationSteps > 0, !train.isEmpty else { return initialError }
        let initial = op
        let optimizer = Adam(parameters: network.namedParameters().filter { $0.parameter.isTrainable },
                             learningRate: options.learningRate)
        network.train()
        let steps = options.distillationSteps
        for step in 0..<steps {
            let (x, y) = train[step % train.count]
            network.zeroGradients()
            let p = network.forward(x)
            let scale = 2 / Float(p.count)
            let grad = Tensor(shape: p.shape, layout: p.layout) { g in
                p.scalars.withUnsafeBufferPointer { a in
                    y.scalars.withUnsafeBufferPointer { b in
                        for i in 0..<g.count { g[i] = scale * (a[i] - b[i]) }
                    }
                }
            }
            _ = network.backward(grad)
            optimizer.learningRate = options.learningRate * Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(steps))))
            optimizer.step()
        }
        let finalError = relativeError()
        if finalError.isFinite && finalError <= initialError {
            try op.adoptTensors(from: network.exportGraph())
            return finalError
        }
        op = initial
        return initialError
    }

    /// The relative error `Σ‖ŷ − y‖² / Σ‖y‖²` of `op` (inference mode) on `pairs`.
    func relativeError(_ op: PluggableOperator, on pairs: [(x: Tensor, y: Tensor)]) throws -> Double {
        let slot = op.slot
        let network = try GraphNetwork(graph: op.standaloneGraph(), imageShape: slot.unitInputShape)
        network.eval()
        return Self.relativeError(network, on: pairs)
    }

    static func relativeError(_ network: GraphNetwork, on pairs: [(x: Tensor, y: Tensor)]) -> Double {
        var num = 0.0, den = 0.0
        for (x, y) in pairs {
            let p = network.forward(x)
            p.scalars.withUnsafeBufferPointer { a in
                y.scalars.withUnsafeBufferPointer { b in
                    for i in 0..<min(a.count, b.count) {
                        let d = Double(a[i] - b[i])
                        num += d * d
                        den += Double(b[i]) * Double(b[i])
                    }
                }
            }
        }
        return num / max(den, .leastNonzeroMagnitude)
    }

    // MARK: Base tensors and units

    /// The unit's weight, bias and BatchNorm constants from the base.
    func unitTensors(_ slot: OperatorSlot) throws -> (Tensor, Tensor?, BatchNormParameters?) {
        func float(_ name: String) throws -> Tensor {
            guard case let .float(t)? = base.initializers[name] else {
                throw OperatorConfigurationError("slot \(slot.index): '\(name)' is not a float initializer of the base")
            }
            return t
        }
        let weight = try float(slot.weight)
        let bias = try slot.bias.map(float)
        var bn: BatchNormParameters?
        if let names = slot.batchNorm {
            let t = try names.map(float)
            bn = BatchNormParameters(scale: t[0].scalars, bias: t[1].scalars, mean: t[2].scalars, variance: t[3].scalars,
                                     epsilon: slot.batchNormEpsilon ?? 1e-5)
        }
        return (weight, bias, bn)
    }

    /// The unit alone as a graph: input `x` `[N, C_in, H, W]` (`[N, C_in]` for a fully connected slot) → the unit's
    /// nodes → `y`.
    func unitGraph(_ slot: OperatorSlot) throws -> Graph {
        let positions = try SwitchableGraph.unitPositions(slot, in: base)
        var nodes = positions.map { base.nodes[$0] }
        var initializers: [String: Constant] = [:]
        for n in nodes { for name in n.inputs.dropFirst() where !name.isEmpty { initializers[name] = base.initializers[name] } }
        nodes[0].inputs[0] = "x"
        nodes[nodes.count - 1].outputs[0] = "y"
        return Graph(name: "unit", opsetVersion: base.opsetVersion,
                     inputs: [ValueInfo(name: "x", shape: [.symbolic("N")] + slot.unitInputShape.map { .fixed($0) })],
                     outputs: [ValueInfo(name: "y", shape: nil)], nodes: nodes, initializers: initializers)
    }

    /// Median latency (ms) of `graph` on an NCHW `inputShape` input, run NHWC to leave layout copies out (a 2-D
    /// `[N, C]` input, a fully connected unit's, runs as it is).
    public static func latency(of graph: Graph, inputShape: [Int], runs: Int) throws -> Double {
        try OperatorSweep.latency(try InferenceEngine(graph: graph), inputShape: inputShape, runs: runs, warmup: 5)
    }

}
