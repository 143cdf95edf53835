import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn operators build|select|sweep`: pluggable compression operators — a bank prepared in the cloud, chosen and
/// switched on the device.
struct OperatorsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "operators",
        abstract: "Prepare lighter operators for a trained network's convolutions, then choose them by budget.",
        discussion: """
        Every Conv with group 1 and a kernel of 3 or more is a slot (with the BatchNorm and ReLU after it). For each slot \
        `build` prepares up to five drop-in operators, keeps their parameters in a bank file apart from the base \
        weights, and measures each one: parameters, multiply-adds, latency on this machine and the network's top-1 \
        with only that slot swapped.
          bottleneck   1×1 to β·C → k×k → 1×1 back to C, BatchNorm (ReLU)      Tucker-2 initialization
          lowrank      1×k to β·C → k×1 to C, BatchNorm (ReLU)                   SVD initialization
          multibranch  1×k ‖ k×1, each to C/2, concatenated, BatchNorm (ReLU)    kernel rows and columns
          fire         squeeze 1×1 to β·C → expand 1×1 ‖ 3×3, each to C/2        from scratch
          depthwise    depthwise k×k → pointwise 1×1 to C, BatchNorm (ReLU)      rank-1 slices
        Each is then distilled layer by layer to reproduce its unit on calibration images (the base stays frozen) \
        and, with --finetune-steps, all of them are fine-tuned end to end inside the frozen base, in the \
        configurations the selection picks for a grid of budgets (`finetune` does this for an existing bank).

        With `build --fully-connected` every fully connected layer (a Gemm, with the ReLU after it) is a slot too, \
        served by a low-rank operator only: two Gemms through R = max(1, round(β·min(C_in, C_out))) features, \
        truncated-SVD initialization, with its own ranks (--fc-beta, default 0.125,0.25). At low resolution a \
        classifier can hold a large share of the multiply-adds (VGG-16 at 32×32: 28 %).

        `select` loads base + bank, picks per slot the operator that minimizes the predicted damage under a budget \
        (a multiple-choice knapsack over the output divergences the bank measured one slot at a time), switches to \
        it without recompiling, and measures it. `sweep` does this for a range of budgets and compares with every operator \
        applied uniformly and with width scaling of the base (docs/OPERATORS.md).

        Examples:
          litecnn train --model resnet18 --data shapes --resolution 32 --epochs 8 --out runs/r18
          litecnn operators build runs/r18 --beta 0.25,0.5 --out r18.lcb
          litecnn operators finetune runs/r18 --bank r18.lcb --steps 600 --out r18-tuned.lcb
          litecnn operators select runs/r18 --bank r18.lcb --budget-macs 50% --json
          litecnn operators select runs/r18 --bank r18.lcb --budget-ms 1.5 --export r18-fast.onnx
          litecnn operators sweep runs/r18 --bank r18.lcb --report r18-sweep
        """,
        subcommands: [Build.self, FineTune.self, Select.self, Sweep.self]
    )
}

/// Loading shared by the subcommands: the base, its data, and batches of it.
struct OperatorsContext {
    var source: CompressionSource
    var configuration: TrainingConfiguration
    var data: DatasetSplits?

    static func load(_ model: String, dataArguments: DataArguments, needData: Bool, progress: TrainingProgressBar) throws -> OperatorsContext {
        progress.status("loading \(model)")
        let (source, configuration) = try CompressionSource.load(model, dataArguments: dataArguments)
        var data: DatasetSplits?
        if source.isRun || dataArguments.data != nil {
            progress.status("opening \(configuration.data)")
            do { data = try Trainer.openData(configuration) } catch { throw CommandError("--data \(configuration.data): \(error)") }
            guard data!.train.channels == source.imageShape[0] else {
                throw CommandError("\(model) takes \(source.imageShape[0]) channels but \(data!.description) has \(data!.train.channels)")
            }
        } else if needData {
            throw ValidationError("--data is required unless the model is a run directory (shapes or a path)")
        }
        return OperatorsContext(source: source, configuration: configuration, data: data)
    }

    /// Up to `limit` images of `dataset` in batches, normalized as for evaluation (shuffled with the run's seed when
    /// `shuffle`).
    func batches(_ dataset: any Dataset, limit: Int?, batchSize: Int, shuffle: Bool) throws -> [LabeledBatch] {
        let normalization = try configuration.normalization(channels: source.imageShape[0])
        let transforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: source.imageShape[0],
                                                       mean: normalization.mean, std: normalization.std)
        let loader = DataLoader(dataset: dataset, batchSize: batchSize, shuffle: shuffle, dropLast: false,
                                transforms: transforms, seed: configuration.seed)
        var out: [LabeledBatch] = []
        var taken = 0
        let iterator = loader.epoch(0)
        while taken < (limit ?? Int.max), let b = try iterator.next() {
            var images = b.images, labels = b.labels
            if let limit, taken + labels.count > limit {
                let keep = limit - taken, per = images.count / labels.count
                images = Tensor(shape: [keep] + Array(images.shape.dropFirst()), scalars: Array(images.scalars[0..<(keep * per)]),
                                layout: images.layout)
                labels = Array(labels[0..<keep])
            }
            out.append(LabeledBatch(images: images, labels: labels))
            taken += labels.count
        }
        return out
    }

    func evaluationBatches(limit: Int?) throws -> [LabeledBatch] {
        guard let data else { return [] }
        return try batches(data.test, limit: limit, batchSize: 50, shuffle: false)
    }

    static func readBank(_ path: String) throws -> OperatorBank {
        do { return try OperatorBankFile.read(from: URL(fileURLWithPath: path)) } catch { throw CommandError("--bank \(path): \(error)") }
    }
}

/// Parses `300M`, `1.2G`, `450000000` or `50%` (of `whole`).
func parseCount(_ text: String, flag: String, whole: Int? = nil) throws -> Int {
    let t = text.trimmingCharacters(in: .whitespaces)
    if t.hasSuffix("%"), let whole, let v = Double(t.dropLast()), v > 0, v <= 100 {
        return Int((Double(whole) * v / 100).rounded(.down))
    }
    let scales: [Character: Double] = ["K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9]
    if let last = t.last, let s = scales[last], let v = Double(t.dropLast()), v > 0 { return Int(v * s) }
    if let v = Int(t), v > 0 { return v }
    throw ValidationError("\(flag) must be a positive count such as 300M, 1.2G\(whole == nil ? "" : " or 50%"), got '\(text)'")
}

func parseKinds(_ text: String?) throws -> [OperatorKind]? {
    guard let text else { return nil }
    return try text.split(separator: ",").map { part in
        let name = part.trimmingCharacters(in: .whitespaces).lowercased()
        guard let kind = OperatorKind(rawValue: name) else {
            throw ValidationError("--operators: unknown operator '\(name)'; known: \(OperatorKind.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return kind
    }
}


extension OperatorsCommand {
    struct Build: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prepare and measure the operators of every slot of a trained network; write the bank file.",
            discussion: """
            Writes a bank (.lcb, docs/OPERATOR_BANK_FORMAT.md) holding only the operators' parameters and measurements; \
            the base weights stay where they are. Distillation uses --calibration-images training images (inputs and \
            outputs of every unit, computed once); top-1 is measured on the test split. With --fully-connected the fully connected \
            layers are slots too (lowrank only, ranks from --fc-beta), and the bank records it so that select, sweep \
            and finetune find the same slots in the base.
            """)

        @Argument(help: ArgumentHelp("The trained base: a run directory, a .safetensors weights file or an .onnx file.", valueName: "base"))
        var base: String
        @OptionGroup(title: "Data (default: the run's)") var dataArguments: DataArguments
        @Option(help: ArgumentHelp("Operators to prepare, comma-separated (default: all five).", valueName: "list"))
        var operators: String?
        @Option(help: ArgumentHelp("Inner widths β for bottleneck, lowrank and fire, comma-separated (default: 0.5, 0.5, 0.25).", valueName: "list"))
        var beta: String?
        @Flag(name: .customLong("fully-connected"), help: "Also make slots of the fully connected layers (Gemm with transA 0, alpha and beta 1, a constant weight; with the ReLU that alone reads it); only lowrank applies to them. Recorded in the bank.")
        var fullyConnected = false
        @Option(name: .customLong("fc-beta"), help: ArgumentHelp("Ranks of the lowrank operators on fully connected slots, comma-separated, as fractions of the largest rank: R = max(1, round(β·min(C_in, C_out))) (default: 0.125,0.25; needs --fully-connected).", valueName: "list"))
        var fcBeta: String?
        @Option(help: ArgumentHelp("Layer-wise distillation steps per operator (0: data-free initialization only).", valueName: "n"))
        var steps = 300
        @Option(name: .customLong("learning-rate"), help: ArgumentHelp("Adam's learning rate for distillation.", valueName: "lr"))
        var learningRate: Float = 1e-2
        @Option(name: .customLong("calibration-images"), help: ArgumentHelp("Training images for distillation and fine-tuning.", valueName: "n"))
        var calibrationImages = 512
        @Option(name: .customLong("finetune-steps"), help: ArgumentHelp("End-to-end fine-tuning steps after distillation, one batch of 32 each (`operators finetune`; default: none).", valueName: "n"))
        var finetuneSteps = 0
        @Option(name: .customLong("finetune-images"), help: ArgumentHelp("Training images to fine-tune on (up to the training split's size).", valueName: "n"))
        var finetuneImages = 4000
        @OptionGroup(title: "End-to-end fine-tuning of the operators") var fineTuning: FineTuningArguments
        @Option(name: .customLong("eval-images"), help: ArgumentHelp("Test images for the top-1 measurements (default: the whole test split).", valueName: "n"))
        var evalImages: Int?
        @Option(name: .customLong("latency-runs"), help: ArgumentHelp("Timed runs per latency measurement (median kept).", valueName: "n"))
        var latencyRuns = 30
        @Option(help: ArgumentHelp("Storage of the operators' tensors: float16 (half the file; every measurement is made with the rounded values) or float32.", valueName: "p"))
        var precision: String = "float16"
        @Option(help: ArgumentHelp("Threads to compute and time with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
        var threads: Int?
        @Option(name: .shortAndLong, help: ArgumentHelp("The bank file to write (.lcb).", valueName: "file"))
        var out: String
        @Flag(help: "Print the bank's measurements as JSON.")
        var json = false

        func validate() throws {
            guard steps >= 0 else { throw ValidationError("--steps must be ≥ 0") }
            guard finetuneSteps >= 0 else { throw ValidationError("--finetune-steps must be ≥ 0") }
            guard finetuneImages >= 2 else { throw ValidationError("--finetune-images must be at least 2") }
            guard calibrationImages >= 2 else { throw ValidationError("--calibration-images must be at least 2") }
            guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--learning-rate must be positive") }
            guard latencyRuns >= 1 else { throw ValidationError("--latency-runs must be at least 1") }
            try fineTuning.validate()
            if let b = beta {
                let values = b.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }) else {
                    throw ValidationError("--beta must be comma-separated numbers in (0, 1], got '\(b)'")
                }
            }
            if let b = fcBeta {
                guard fullyConnected else { throw ValidationError("--fc-beta needs --fully-connected") }
                let values = b.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
                guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }) else {
                    throw ValidationError("--fc-beta must be comma-separated numbers in (0, 1], got '\(b)'")
                }
            }
            _ = try parseKinds(operators)
            guard BankPrecision(rawValue: precision) != nil else {
                throw ValidationError("--precision must be float16 or float32, got '\(precision)'")
            }
        }

        func run() throws {
            if let threads { WorkerPool.shared.threadCount = threads }
            let progress = TrainingProgressBar()
            defer { progress.clear() }
            let context = try OperatorsContext.load(base, dataArguments: dataArguments, needData: true, progress: progress)
            var options = BankBuildOptions()
            options.precision = BankPrecision(rawValue: precision)!
            if let kinds = try parseKinds(operators) { options.operators = kinds }
            options.betas = beta.map { $0.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! } }
            options.fullyConnected = fullyConnected
            if let fcBeta {
                options.fullyConnectedBetas = fcBeta.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces))! }
            }
            options.distillationSteps = steps
            options.learningRate = learningRate
            options.latencyRuns = latencyRuns
            options.fineTuning = fineTuning.options(steps: finetuneSteps)
            options.seed = context.configuration.seed
            progress.status("reading \(calibrationImages) calibration images")
            let calibration = try context.batches(context.data!.train, limit: calibrationImages, batchSize: 32, shuffle: true)
            let evaluation = try context.evaluationBatches(limit: evalImages)
            let builder: BankBuilder
            do { builder = try BankBuilder(base: context.source.graph, imageShape: context.source.imageShape, options: options) }
            catch { throw CommandError("\(base): \(error)") }
            var counter = (0, 0)
            builder.onProgress = { counter = ($0, $1) }
            builder.onStatus = { progress.status("[\(counter.0)/\(max(counter.1, 1))] \($0)") }
            let start = Date()
            var bank: OperatorBank
            var fineTuningImages: [LabeledBatch]?
            if finetuneSteps > 0 {
                progress.status("reading \(finetuneImages) fine-tuning images")
                fineTuningImages = try context.batches(context.data!.train, limit: finetuneImages, batchSize: 32, shuffle: true)
            }
            do { bank = try builder.build(calibration: calibration, evaluation: evaluation, fineTuningImages: fineTuningImages) }
            catch { throw CommandError("\(error)") }
            bank.metadata["model"] = context.source.label
            bank.metadata["data"] = context.data!.description
            bank.metadata["built"] = ISO8601DateFormatter().string(from: Date())
            try BankSummary.write(bank, to: out, started: start, json: json, progress: progress)
        }
    }

    struct FineTune: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "finetune",
            abstract: "Fine-tune a bank's operators end to end inside the frozen base, in the configurations it serves.",
            discussion: """
            Layer-wise distillation trains each operator on the base's own inputs to its slot; once many slots are \
            swapped, each operator sees what the operators before it produce and the errors add up. This stage trains \
            all operators at once in the configurations they will serve: those the selection picks from the bank's \
            measurements for the budgets of --budgets (and, with --random-share, random ones: every slot swapped with \
            probability q, q uniform in --swap-share). Each step runs a batch of training images through one of them \
            and minimizes the distillation loss between its logits and the base's (temperature --temperature, soft \
            weight --alpha, the rest cross-entropy on the labels). Only the operators' parameters change; the base's \
            weights and every BatchNorm's statistics stay as they are. The bank's one-slot figures stay those of \
            distillation, so that the selection keeps choosing the trained configurations (--remeasure measures them \
            again; docs/OPERATORS.md).
            """)

        @Argument(help: ArgumentHelp("The trained base the bank was built for: a run directory, a .safetensors weights file or an .onnx file.", valueName: "base"))
        var base: String
        @Option(help: ArgumentHelp("The bank file to fine-tune (.lcb).", valueName: "file"))
        var bank: String
        @OptionGroup(title: "Data (default: the run's)") var dataArguments: DataArguments
        @Option(name: .customLong("calibration-images"), help: ArgumentHelp("Training images to fine-tune on (up to the training split's size).", valueName: "n"))
        var calibrationImages = 4000
        @Option(help: ArgumentHelp("Optimizer steps (one batch of 32 each).", valueName: "n"))
        var steps = OperatorFineTuningOptions().steps
        @OptionGroup(title: "Fine-tuning") var fineTuning: FineTuningArguments
        @Option(name: .customLong("eval-images"), help: ArgumentHelp("Test images for the top-1 measurements (default: the whole test split).", valueName: "n"))
        var evalImages: Int?
        @Option(help: ArgumentHelp("Threads (default: all cores, or LITECNN_THREADS).", valueName: "n"))
        var threads: Int?
        @Flag(help: "Measure the one-slot top-1 and divergence figures again afterwards (by default they stay those of distillation, so that the selection picks the configurations that were trained).")
        var remeasure = false
        @Option(name: .shortAndLong, help: ArgumentHelp("The bank file to write (.lcb); may be --bank itself.", valueName: "file"))
        var out: String
        @Flag(help: "Print the bank's measurements as JSON.")
        var json = false

        func validate() throws {
            guard steps >= 1 else { throw ValidationError("--steps must be at least 1") }
            guard calibrationImages >= 2 else { throw ValidationError("--calibration-images must be at least 2") }
            try fineTuning.validate()
        }

        func run() throws {
            if let threads { WorkerPool.shared.threadCount = threads }
            let progress = TrainingProgressBar()
            defer { progress.clear() }
            let context = try OperatorsContext.load(base, dataArguments: dataArguments, needData: true, progress: progress)
            var bank = try OperatorsContext.readBank(self.bank)
            do { try bank.validate(against: context.source.graph) } catch { throw CommandError("--bank \(self.bank): \(error)") }
            progress.status("reading \(calibrationImages) calibration images")
            let calibration = try context.batches(context.data!.train, limit: calibrationImages, batchSize: 32, shuffle: true)
            let evaluation = try context.evaluationBatches(limit: evalImages)
            let start = Date()
            var options = fineTuning.options(steps: steps)
            options.seed = context.configuration.seed
            do {
                let report = try OperatorFineTuning.fineTune(&bank, base: context.source.graph, batches: calibration, options: options) {
                    step, total, loss in progress.progress(done: step, total: total, String(format: "fine-tuning  loss %.4f", loss))
                }
                progress.status(String(format: "loss %.4f → %.4f in %.0f s; measuring", report.initialLoss, report.finalLoss, report.seconds))
                var slotOptions = BankBuildOptions()
                slotOptions.fullyConnected = bank.fullyConnectedSlots
                let builder = try BankBuilder(base: context.source.graph, imageShape: bank.imageShape, options: slotOptions)
                var counter = (0, 0)
                builder.onProgress = { counter = ($0, $1) }
                builder.onStatus = { progress.status("[\(counter.0)/\(max(counter.1, 1))] \($0)") }
                if !evaluation.isEmpty && remeasure { try builder.measureAccuracy(&bank, on: evaluation) }
            } catch let error as CommandError { throw error } catch { throw CommandError("\(error)") }
            bank.metadata["finetuned"] = ISO8601DateFormatter().string(from: Date())
            try BankSummary.write(bank, to: out, started: start, json: json, progress: progress)
        }
    }

    struct Select: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Choose the operator of every slot to fit a budget, switch to it, and measure it.",
            discussion: """
            The choice minimizes the predicted damage — the sum of the output divergences (KL from the base's class \
            probabilities) the bank measured one slot at a time — under the budget, exactly, as a multiple-choice \
            knapsack. The configuration is then measured: latency on this machine, and top-1 on the test split when \
            data is available (a run directory, or --data). --budget-mb counts fp32 weights (4 bytes per parameter). \
            The predicted top-1 printed beside the measured one is the base's minus the sum of the one-slot top-1 losses. \
            Latencies are measured again on this machine before choosing, in the running network (a per-step profile \
            of every operator), because a layer timed alone finds its weights in cache.
            """)

        @Argument(help: ArgumentHelp("The base the bank was built for (run directory, .safetensors or .onnx).", valueName: "base"))
        var base: String
        @Option(help: ArgumentHelp("The bank file (.lcb).", valueName: "file"))
        var bank: String
        @Option(name: .customLong("budget-macs"), help: ArgumentHelp("Multiply-adds per image: 300M, 1.2G, or a share of the base such as 50%.", valueName: "n"))
        var budgetMACs: String?
        @Option(name: .customLong("budget-ms"), help: ArgumentHelp("Latency at batch 1 in milliseconds, as the bank measured it.", valueName: "ms"))
        var budgetMs: Double?
        @Option(name: .customLong("budget-mb"), help: ArgumentHelp("Weight memory in megabytes (10^6 bytes, fp32).", valueName: "mb"))
        var budgetMB: Double?
        @Option(help: ArgumentHelp("Operators the choice may use, comma-separated (default: all in the bank).", valueName: "list"))
        var operators: String?
        @OptionGroup(title: "Data for the measured top-1 (default: the run's)") var dataArguments: DataArguments
        @Option(name: .customLong("eval-images"), help: ArgumentHelp("Test images to measure top-1 on (default: all).", valueName: "n"))
        var evalImages: Int?
        @Option(help: ArgumentHelp("Also write the chosen configuration as an ordinary ONNX file.", valueName: "file"))
        var export: String?
        @Option(help: ArgumentHelp("Threads (default: all cores, or LITECNN_THREADS).", valueName: "n"))
        var threads: Int?
        @Option(name: .customLong("latency-runs"), help: ArgumentHelp("Timed runs per latency measurement.", valueName: "n"))
        var latencyRuns = 50
        @Flag(help: "Print the result as JSON.")
        var json = false

        func validate() throws {
            let given = [budgetMACs != nil, budgetMs != nil, budgetMB != nil].filter { $0 }.count
            guard given == 1 else { throw ValidationError("give exactly one of --budget-macs, --budget-ms, --budget-mb") }
            if let v = budgetMs { guard v > 0, v.isFinite else { throw ValidationError("--budget-ms must be positive") } }
            if let v = budgetMB { guard v > 0, v.isFinite else { throw ValidationError("--budget-mb must be positive") } }
            _ = try parseKinds(operators)
        }

        func run() throws {
            if let threads { WorkerPool.shared.threadCount = threads }
            let progress = TrainingProgressBar()
            defer { progress.clear() }
            let context = try OperatorsContext.load(base, dataArguments: dataArguments, needData: false, progress: progress)
            let bankFile = try OperatorsContext.readBank(bank)
            progress.status("compiling base + \(bankFile.entries.count) operators")
            let model: SwitchableModel
            do { model = try SwitchableModel(base: context.source.graph, bank: bankFile, threads: threads) }
            catch { throw CommandError("\(base) with --bank \(bank): \(error)") }
            let budget: Budget
            if let m = budgetMACs { budget = .multiplyAdds(try parseCount(m, flag: "--budget-macs", whole: bankFile.base.multiplyAdds)) }
            else if let ms = budgetMs { budget = .latencyMs(ms) }
            else { budget = .weightBytes(Int(budgetMB! * 1e6)) }
            let kinds = try parseKinds(operators).map(Set.init)
            progress.status("timing every operator in the running network")
            try model.calibrateLatency()
            let chosen: (configuration: OperatorConfiguration, prediction: ConfigurationPrediction, switchSeconds: Double)
            do { chosen = try model.configure(budget: budget, kinds: kinds) } catch { throw CommandError("\(error)") }
            progress.status("timing the configuration")
            let latency = try OperatorSweep.latency(model.engine, imageShape: bankFile.imageShape, runs: latencyRuns)
            let configured = try model.configuredGraph()
            let plainLatency = try OperatorSweep.latency(try InferenceEngine(graph: configured), imageShape: bankFile.imageShape, runs: latencyRuns)
            let baseLatency = try OperatorSweep.latency(try InferenceEngine(graph: context.source.graph), imageShape: bankFile.imageShape, runs: latencyRuns)
            var measured: Double?, baseMeasured: Double?
            let evaluation = try context.evaluationBatches(limit: evalImages)
            if !evaluation.isEmpty {
                progress.status("measuring top-1 on \(evaluation.reduce(0) { $0 + $1.labels.count }) images")
                measured = try BankBuilder.accuracy(model, on: evaluation).top1
                // The base on the same images (the bank's figure may come from other ones).
                try model.apply(.base(slotCount: bankFile.slots.count))
                baseMeasured = try BankBuilder.accuracy(model, on: evaluation).top1
                try model.apply(chosen.configuration)
            }
            if let export {
                try ONNXFile.write(configured, to: URL(fileURLWithPath: export))
            }
            progress.clear()
            var result = SelectionSummary(bank: bankFile, configuration: chosen.configuration, prediction: chosen.prediction,
                                          switchMs: chosen.switchSeconds * 1000, latencyMs: latency, plainLatencyMs: plainLatency,
                                          baseLatencyMs: baseLatency, top1Measured: measured, budget: budget)
            result.top1BaseMeasured = baseMeasured
            if json { say(try encodeJSON(result)); return }
            say(result.table)
        }
    }

    struct Sweep: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Select and measure configurations over a range of budgets, against uniform operators and width scaling.",
            discussion: """
            For each budget (a share of the base's multiply-adds) the selected configuration and the base pruned to \
            the same multiply-adds by uniform channel pruning (width scaling, no retraining) are measured; every \
            operator applied to all slots is measured once. --report DIR writes sweep.md, sweep_macs.svg, \
            sweep_latency.svg and sweep.json.
            """)

        @Argument(help: ArgumentHelp("The base the bank was built for.", valueName: "base"))
        var base: String
        @Option(help: ArgumentHelp("The bank file (.lcb).", valueName: "file"))
        var bank: String
        @Option(help: ArgumentHelp("Budgets as shares of the base's multiply-adds, comma-separated.", valueName: "list"))
        var budgets = "0.9,0.75,0.6,0.5,0.4,0.3,0.25"
        @OptionGroup(title: "Data (default: the run's)") var dataArguments: DataArguments
        @Option(name: .customLong("eval-images"), help: ArgumentHelp("Test images per measurement (default: all).", valueName: "n"))
        var evalImages: Int?
        @Option(help: ArgumentHelp("Write sweep.md, sweep_macs.svg, sweep_latency.svg and sweep.json here.", valueName: "dir"))
        var report: String?
        @Option(help: ArgumentHelp("Threads (default: all cores, or LITECNN_THREADS).", valueName: "n"))
        var threads: Int?
        @Option(name: .customLong("latency-runs"), help: ArgumentHelp("Timed runs per latency measurement.", valueName: "n"))
        var latencyRuns = 20
        @Flag(help: "Print the result as JSON.")
        var json = false

        func fractions() throws -> [Double] {
            let values = budgets.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard !values.isEmpty, values.allSatisfy({ $0 != nil && $0! > 0 && $0! <= 1 }) else {
                throw ValidationError("--budgets must be comma-separated shares in (0, 1], got '\(budgets)'")
            }
            return values.map { $0! }
        }

        func validate() throws { _ = try fractions() }

        func run() throws {
            if let threads { WorkerPool.shared.threadCount = threads }
            let progress = TrainingProgressBar()
            defer { progress.clear() }
            let context = try OperatorsContext.load(base, dataArguments: dataArguments, needData: true, progress: progress)
            let bankFile = try OperatorsContext.readBank(bank)
            progress.status("compiling base + \(bankFile.entries.count) operators")
            let model: SwitchableModel
            do { model = try SwitchableModel(base: context.source.graph, bank: bankFile, threads: threads) }
            catch { throw CommandError("\(base) with --bank \(bank): \(error)") }
            let evaluation = try context.evaluationBatches(limit: evalImages)
            let result = try OperatorSweep.run(model: model, name: context.source.label, evaluation: evaluation,
                                               fractions: try fractions(), latencyRuns: latencyRuns) { progress.status($0) }
            if let report {
                let dir = URL(fileURLWithPath: report)
                try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                try writeFileAtomically(Array(OperatorSweep.markdown(result).utf8), to: dir.appendingPathComponent("sweep.md"))
                try writeFileAtomically(Array(OperatorSweep.svg(result, axis: .multiplyAdds).utf8), to: dir.appendingPathComponent("sweep_macs.svg"))
                try writeFileAtomically(Array(OperatorSweep.svg(result, axis: .latency).utf8), to: dir.appendingPathComponent("sweep_latency.svg"))
                try writeFileAtomically(Array(try encodeJSON(result).utf8), to: dir.appendingPathComponent("sweep.json"))
            }
            progress.clear()
            if json { say(try encodeJSON(result)); return }
            say(OperatorSweep.markdown(result))
        }
    }
}

/// The fine-tuning options of `operators build` and `operators finetune`.
struct FineTuningArguments: ParsableArguments {
    @Option(name: .customLong("finetune-lr"), help: ArgumentHelp("Adam's learning rate for fine-tuning, cosine-decayed.", valueName: "lr"))
    var learningRate: Float = OperatorFineTuningOptions().learningRate
    @Option(help: ArgumentHelp("Distillation temperature T of the fine-tuning loss.", valueName: "T"))
    var temperature: Float = OperatorFineTuningOptions().temperature
    @Option(help: ArgumentHelp("Weight of the distillation term (1 − alpha weights the labels' cross-entropy).", valueName: "a"))
    var alpha: Float = OperatorFineTuningOptions().alpha
    @Option(help: ArgumentHelp("Budgets, in % of the base's multiply-adds, whose selected configurations are trained (comma-separated; 'none': random configurations only).", valueName: "list"))
    var budgets = OperatorFineTuningOptions().budgetShares.map { String(format: "%g", $0 * 100) }.joined(separator: ",")
    @Option(name: .customLong("random-share"), help: ArgumentHelp("Share of the steps that train a random configuration instead.", valueName: "p"))
    var randomShare = OperatorFineTuningOptions().randomShare
    @Option(name: .customLong("swap-share"), help: ArgumentHelp("Random configurations: range of the share of slots swapped, as LOW-HIGH.", valueName: "range"))
    var swapShare = "0.25-1"
    @Flag(name: .customLong("finetune-fully-connected"), help: "Train the operators of fully connected slots too (by default they keep their distillation: trained end to end on the shapes set's 4,000 images, VGG-16's classifier operators lost half their test accuracy).")
    var trainsFullyConnected = false

    func validate() throws {
        guard learningRate > 0, learningRate.isFinite else { throw ValidationError("--finetune-lr must be positive") }
        guard temperature > 0, temperature.isFinite else { throw ValidationError("--temperature must be positive") }
        guard alpha >= 0, alpha <= 1 else { throw ValidationError("--alpha must be within 0…1") }
        _ = try share()
        _ = try budgetShares()
        guard randomShare >= 0, randomShare <= 1 else { throw ValidationError("--random-share must be within 0…1") }
    }

    func budgetShares() throws -> [Double] {
        if budgets.lowercased() == "none" { return [] }
        return try budgets.split(separator: ",").map {
            guard let v = Double($0.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "%", with: "")), v > 0, v <= 100 else {
                throw ValidationError("--budgets must be percentages in (0, 100] or 'none', got '\(budgets)'")
            }
            return v / 100
        }
    }

    func share() throws -> ClosedRange<Double> {
        let parts = swapShare.split(separator: "-").map { Double($0.trimmingCharacters(in: .whitespaces)) }
        guard parts.count == 2, let lo = parts[0], let hi = parts[1], lo >= 0, lo <= hi, hi <= 1 else {
            throw ValidationError("--swap-share must be LOW-HIGH with 0 ≤ LOW ≤ HIGH ≤ 1, got '\(swapShare)'")
        }
        return lo...hi
    }

    func options(steps: Int) -> OperatorFineTuningOptions {
        var o = OperatorFineTuningOptions()
        o.steps = steps
        o.learningRate = learningRate
        o.temperature = temperature
        o.alpha = alpha
        o.swapShare = (try? share()) ?? o.swapShare
        o.budgetShares = (try? budgetShares()) ?? o.budgetShares
        o.randomShare = randomShare
        o.trainsFullyConnected = trainsFullyConnected
        return o
    }
}

/// `operators build` output.
struct BankSummary: Encodable {
    struct Row: Encodable {
        var slot: Int
        var node: String
        var op: String
        var beta: Double
        var params: Int
        var macs: Int
        var latencyMs: Double?
        var unitLatencyMs: Double?
        var top1: Double?
        var distillationError: Double?
        var outputDivergence: Double?
        enum CodingKeys: String, CodingKey {
            case slot, node, beta, params, macs, top1
            case op = "operator", latencyMs = "latency_ms", unitLatencyMs = "unit_latency_ms", distillationError = "distillation_error"
            case outputDivergence = "output_divergence"
        }
    }
    var file: String
    var bytes: Int
    var seconds: Double
    var slots: Int
    /// How many of the slots are fully connected (0 unless built with --fully-connected).
    var fullyConnectedSlots: Int
    var top1Base: Double?
    var macsBase: Int
    var paramsBase: Int
    var latencyMsBase: Double?
    var entries: [Row]
    enum CodingKeys: String, CodingKey {
        case file, bytes, seconds, slots, entries
        case fullyConnectedSlots = "fully_connected_slots"
        case top1Base = "top1_base", macsBase = "macs_base", paramsBase = "params_base", latencyMsBase = "latency_ms_base"
    }

    /// Writes `bank` to `path` and prints its summary (a table, or JSON).
    static func write(_ bank: OperatorBank, to path: String, started: Date, json: Bool, progress: TrainingProgressBar) throws {
        try OperatorBankFile.write(bank, to: URL(fileURLWithPath: path))
        progress.clear()
        let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
        let summary = BankSummary(bank, file: path, bytes: size, seconds: Date().timeIntervalSince(started))
        say(json ? try encodeJSON(summary) : summary.table)
    }

    init(_ bank: OperatorBank, file: String, bytes: Int, seconds: Double) {
        self.file = file
        self.bytes = bytes
        self.seconds = seconds
        slots = bank.slots.count
        fullyConnectedSlots = bank.slots.filter(\.isFullyConnected).count
        top1Base = bank.base.top1
        macsBase = bank.base.multiplyAdds
        paramsBase = bank.base.parameters
        latencyMsBase = bank.base.latencyMs
        entries = bank.entries.map { e in
            let s = e.op.slot
            return Row(slot: s.index, node: s.name, op: e.op.kind.rawValue, beta: e.op.beta, params: e.measurement.parameters,
                       macs: e.measurement.multiplyAdds, latencyMs: e.measurement.latencyMs,
                       unitLatencyMs: bank.base.slotLatencyMs?[s.index], top1: e.measurement.top1,
                       distillationError: e.measurement.distillationError, outputDivergence: e.measurement.outputDivergence)
        }
    }

    var table: String {
        func opt(_ v: Double?, _ f: String) -> String { v.map { String(format: f, $0) } ?? "–" }
        var lines = ["slot  node                                operator          params      MACs   ms (unit)        top-1  rel. error  KL"]
        for r in entries {
            let name = r.node.count > 34 ? "…" + r.node.suffix(33) : r.node
            let op = OperatorKind(rawValue: r.op)?.label(beta: r.beta) ?? r.op
            lines.append(String(format: "%4d  %-34@  %-16@ %7d %9d  %@ (%@)  %@  %@  %@", r.slot, name as NSString, op as NSString,
                                r.params, r.macs, opt(r.latencyMs, "%.3f") as NSString, opt(r.unitLatencyMs, "%.3f") as NSString,
                                opt(r.top1, "%6.2f%%") as NSString, opt(r.distillationError, "%.4f") as NSString,
                                opt(r.outputDivergence, "%.4f") as NSString))
        }
        lines.append(String(format: "base: %d slots, %.1f M MACs, %.2f M params, top-1 %@, %@ ms", slots, Double(macsBase) / 1e6,
                            Double(paramsBase) / 1e6, opt(top1Base, "%.2f%%") as NSString, opt(latencyMsBase, "%.3f") as NSString))
        lines.append(String(format: "wrote %@: %d operators, %.2f MB, in %.0f s", file as NSString, entries.count, Double(bytes) / 1e6, seconds))
        return lines.joined(separator: "\n")
    }
}

/// `operators select` output.
struct SelectionSummary: Encodable {
    struct Choice: Encodable {
        var slot: Int
        var node: String
        var op: String
        enum CodingKeys: String, CodingKey { case slot, node, op = "operator" }
    }
    var budget: String
    var macs: Int
    var params: Int
    var weightBytes: Int
    var latencyMsPredicted: Double?
    var latencyMs: Double
    var latencyMsConfiguredGraph: Double
    var latencyMsBase: Double
    var switchMs: Double
    var top1Base: Double?
    var top1Predicted: Double?
    var top1Measured: Double?
    /// The base's top-1 on the images `top1Measured` was measured on.
    var top1BaseMeasured: Double?
    var operators: [Choice]
    enum CodingKeys: String, CodingKey {
        case budget, macs, params, operators
        case weightBytes = "weight_bytes", latencyMsPredicted = "latency_ms_predicted", latencyMs = "latency_ms"
        case latencyMsConfiguredGraph = "latency_ms_configured_graph", latencyMsBase = "latency_ms_base"
        case switchMs = "switch_ms", top1Base = "top1_base", top1Predicted = "top1_predicted", top1Measured = "top1_measured", top1BaseMeasured = "top1_base_measured"
    }

    init(bank: OperatorBank, configuration: OperatorConfiguration, prediction: ConfigurationPrediction, switchMs: Double,
         latencyMs: Double, plainLatencyMs: Double, baseLatencyMs: Double, top1Measured: Double?, budget: Budget) {
        switch budget {
        case let .multiplyAdds(n): self.budget = "\(n) MACs"
        case let .latencyMs(ms): self.budget = "\(ms) ms"
        case let .weightBytes(b): self.budget = "\(b) bytes"
        }
        macs = prediction.multiplyAdds
        params = prediction.parameters
        weightBytes = prediction.weightBytes
        latencyMsPredicted = prediction.latencyMs
        self.latencyMs = latencyMs
        latencyMsConfiguredGraph = plainLatencyMs
        latencyMsBase = baseLatencyMs
        self.switchMs = switchMs
        top1Base = bank.base.top1
        top1Predicted = prediction.top1
        self.top1Measured = top1Measured
        operators = bank.slots.map { s in
            Choice(slot: s.index, node: s.name, op: configuration.choices[s.index].map { bank.entries[$0].op.label } ?? "base")
        }
    }

    var table: String {
        func opt(_ v: Double?, _ f: String) -> String { v.map { String(format: f, $0) } ?? "–" }
        var lines = ["slot  node                                operator"]
        for c in operators {
            let name = c.node.count > 34 ? "…" + c.node.suffix(33) : c.node
            lines.append(String(format: "%4d  %-34@  %@", c.slot, name as NSString, c.op as NSString))
        }
        lines.append("budget \(budget): \(String(format: "%.1f", Double(macs) / 1e6)) M MACs, \(String(format: "%.2f", Double(params) / 1e6)) M params")
        lines.append("latency \(String(format: "%.3f", latencyMs)) ms switchable (configured graph \(String(format: "%.3f", latencyMsConfiguredGraph)) ms, base \(String(format: "%.3f", latencyMsBase)) ms, predicted \(opt(latencyMsPredicted, "%.3f")) ms)")
        lines.append("top-1 base \(opt(top1Base, "%.2f%%")), predicted \(opt(top1Predicted, "%.2f%%")), measured \(opt(top1Measured, "%.2f%%"))"
                     + (top1BaseMeasured.map { String(format: " (base on the same images %.2f%%)", $0) } ?? ""))
        lines.append("switched in \(String(format: "%.3f", switchMs)) ms")
        return lines.joined(separator: "\n")
    }
}
