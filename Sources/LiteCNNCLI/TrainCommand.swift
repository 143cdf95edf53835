import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn train --model NAME --data shapes|PATH --out RUN_DIR`: trains a zoo model and writes a run directory.
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train a zoo model on a data set; write checkpoints, metrics and curves to a run directory.",
        discussion: """
        Each step takes a batch (shuffled and augmented from (seed, epoch, index) only), computes the loss \
        (cross-entropy with optional label smoothing, or knowledge distillation from --teacher), back-propagates, \
        optionally clips the gradient norm and updates the weights with the learning rate of the schedule (per step, \
        with optional warm-up). After every epoch the model is evaluated on the test split (eval mode: BatchNorm \
        running statistics, no dropout, no augmentation).

        RUN_DIR receives config.json, checkpoint.safetensors (weights, BatchNorm buffers, optimizer state, loop \
        position; replaced atomically every --checkpoint-every steps and at the end of every epoch), \
        model.safetensors (for litecnn eval/run/export/bench), metrics.csv, metrics.json and curves.svg.

        --resume continues from the checkpoint: with the same seed and --threads it computes exactly the losses of \
        the uninterrupted run. Flags given again must agree with config.json, except --epochs (to extend the run), \
        --threads, --checkpoint-every and --max-steps. A NaN or infinite loss stops the run with the step named; \
        the last checkpoint is kept. See docs/TRAINING.md for the paper recipes as flags.

        --json prints one object per epoch on standard output: epoch, steps, loss, top1, test_loss, test_top1, \
        test_top5, images_per_s, lr, elapsed_s (accuracies in percent). Progress goes to standard error: a live bar \
        on a terminal, plain lines otherwise.

        Examples:
          litecnn train --model mobilenet_v2 --width 0.35 --data shapes --epochs 5 --out runs/mnv2
          litecnn train --model squeezenet1_1 --data data/cifar-10-batches-bin --resolution 32 --augment crop \\
              --optimizer sgd --lr 0.04 --schedule linear --epochs 30 --out runs/sq
          litecnn train --out runs/sq --resume --epochs 40
          litecnn train --model mobilenet_v3_small --data shapes --teacher runs/mnv2 --temperature 4 --out runs/kd
        """
    )

    // MARK: Model
    @Option(help: ArgumentHelp("Zoo model to train (see `litecnn zoo`).", valueName: "name"))
    var model: String?
    @Option(help: ArgumentHelp("Width multiplier α (MobileNet, ShuffleNet, EfficientNet).", valueName: "alpha"))
    var width: Double?
    @Option(help: ArgumentHelp("Groups of ShuffleNet V1's grouped 1×1 convolutions.", valueName: "g"))
    var groups: Int?

    // MARK: Data
    @OptionGroup(title: "Data") var dataArguments: DataArguments

    // MARK: Optimization
    @Option(help: ArgumentHelp("Passes over the training split (default 10). With --resume, a larger value extends the run.", valueName: "e"))
    var epochs: Int?
    @Option(help: ArgumentHelp("Images per step (default 32); the last incomplete batch of an epoch is dropped.", valueName: "b"))
    var batch: Int?
    @Option(help: ArgumentHelp("Peak learning rate (default 0.01).", valueName: "x"))
    var lr: Float?
    @Option(name: .customLong("final-lr"), help: ArgumentHelp("Learning rate at the end of the linear and cosine schedules (default 0).", valueName: "x"))
    var finalLR: Float?
    @Option(help: ArgumentHelp("sgd, nesterov, rmsprop (TensorFlow's, as the MobileNet papers), adam or adamw (default sgd).", valueName: "name"))
    var optimizer: String?
    @Option(help: ArgumentHelp("Momentum, or Adam's β1 (default: the optimizer's recipe, 0.9).", valueName: "m"))
    var momentum: Float?
    @Option(name: .customLong("weight-decay"), help: ArgumentHelp("Weight decay (default: sgd 1e-4, rmsprop 4e-5, adam 0, adamw 0.01).", valueName: "w"))
    var weightDecay: Float?
    @Option(help: ArgumentHelp("constant, linear, step, cosine or exponential, stepped every iteration (default constant).", valueName: "name"))
    var schedule: String?
    @Option(name: .customLong("step-epochs"), help: ArgumentHelp("Epochs between decays of the step (whole) and exponential (fractions allowed) schedules (default 1).", valueName: "n"))
    var stepEpochs: Double?
    @Option(help: ArgumentHelp("Decay factor of the step and exponential schedules (default 0.1).", valueName: "g"))
    var gamma: Float?
    @Option(name: .customLong("warmup-epochs"), help: ArgumentHelp("Linear warm-up from 0 to --lr over this many epochs (fractions allowed; default 0).", valueName: "n"))
    var warmupEpochs: Double?
    @Option(name: .customLong("label-smoothing"), help: ArgumentHelp("Label smoothing ε of the cross-entropy (default 0).", valueName: "eps"))
    var labelSmoothing: Float?
    @Option(name: .customLong("clip-norm"), help: ArgumentHelp("Scale gradients down to this global L2 norm at most (default: off).", valueName: "n"))
    var clipNorm: Float?
    @Option(help: ArgumentHelp("Training augmentation: none, crop (pad + random crop + flip, CIFAR) or resized-crop (RandomResizedCrop + flip, ImageNet). Default none.", valueName: "name"))
    var augment: String?

    // MARK: Distillation
    @Option(help: ArgumentHelp("Knowledge distillation from a teacher: a run directory or a weights file.", valueName: "run-dir"))
    var teacher: String?
    @Option(help: ArgumentHelp("Softmax temperature T of distillation (default 4).", valueName: "t"))
    var temperature: Float?
    @Option(name: .customLong("distill-weight"), help: ArgumentHelp("Weight w of the distillation term: w·T²·KL + (1 − w)·CE (default 0.9).", valueName: "w"))
    var distillWeight: Float?

    // MARK: Run
    @Option(help: ArgumentHelp("Seed of weights, shuffling, augmentation and dropout (default 0).", valueName: "s"))
    var seed: UInt64?
    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?
    @Option(name: .customLong("checkpoint-every"), help: ArgumentHelp("Also write the checkpoint every n steps (default: end of each epoch only).", valueName: "n"))
    var checkpointEvery: Int?
    @Option(name: .customLong("max-steps"), help: ArgumentHelp("Stop after n steps in total (resume later with --resume).", valueName: "n"))
    var maxSteps: Int?
    @Option(help: ArgumentHelp("The run directory.", valueName: "run-dir"))
    var out: String
    @Flag(help: "Continue the run in --out from its checkpoint.")
    var resume = false
    @Flag(help: "Print one JSON object per epoch on standard output.")
    var json = false

    /// The configuration: config.json when resuming (given flags must agree), defaults otherwise; then the flags.
    func makeConfiguration(runDirectory: RunDirectory) throws -> TrainingConfiguration {
        var merger: ConfigurationMerger
        if resume {
            guard FileManager.default.fileExists(atPath: runDirectory.configuration.path) else {
                throw CommandError("--resume: \(runDirectory.configuration.path) does not exist; \(out) holds no run to resume")
            }
            merger = ConfigurationMerger(try TrainingConfiguration.read(from: runDirectory.configuration), resuming: true,
                                         source: runDirectory.configuration.path)
        } else {
            guard let model else { throw ValidationError("--model is required (see `litecnn zoo`)") }
            merger = ConfigurationMerger(TrainingConfiguration(model: model), resuming: false, source: "")
        }
        try merger.set("--model", model, \.model)
        try merger.setOptional("--width", width, \.width)
        try merger.setOptional("--groups", groups, \.groups)
        try dataArguments.apply(to: &merger)
        try merger.set("--epochs", epochs, \.epochs, mayChange: true)
        try merger.set("--batch", batch, \.batchSize)
        try merger.set("--lr", lr, \.learningRate)
        try merger.set("--final-lr", finalLR, \.finalLearningRate)
        try merger.set("--optimizer", optimizer, \.optimizer)
        try merger.setOptional("--momentum", momentum, \.momentum)
        try merger.setOptional("--weight-decay", weightDecay, \.weightDecay)
        try merger.set("--schedule", schedule, \.schedule)
        try merger.set("--step-epochs", stepEpochs, \.stepEpochs)
        try merger.set("--gamma", gamma, \.gamma)
        try merger.set("--warmup-epochs", warmupEpochs, \.warmupEpochs)
        try merger.set("--label-smoothing", labelSmoothing, \.labelSmoothing)
        try merger.setOptional("--clip-norm", clipNorm, \.clipNorm)
        try merger.set("--augment", augment, \.augmentation)
        try merger.setOptional("--teacher", teacher, \.teacher)
        try merger.set("--temperature", temperature, \.temperature)
        try merger.set("--distill-weight", distillWeight, \.distillWeight)
        try merger.set("--seed", seed, \.seed)
        try merger.setOptional("--threads", threads, \.threads, mayChange: true)
        try merger.setOptional("--checkpoint-every", checkpointEvery, \.checkpointEvery, mayChange: true)
        try merger.setOptional("--max-steps", maxSteps, \.maxSteps, mayChange: true)
        if resume, maxSteps == nil { merger.configuration.maxSteps = nil }
        do { try merger.configuration.validate() } catch { throw CommandError("\(error)") }
        return merger.configuration
    }

    func run() throws {
        let runDirectory = RunDirectory(path: out)
        let configuration = try makeConfiguration(runDirectory: runDirectory)
        let session = TrainingSession(json: json)
        let trainer = try session.prepare(configuration, runDirectory: runDirectory, resume: resume)
        if !json { session.describe(trainer) }
        let outcome = try session.train(trainer)
        guard !json else { return }
        switch outcome {
        case .finished:
            if let resumed = trainer.resumedFrom, resumed.epoch >= configuration.epochs {
                say("Nothing to do: the run already finished its \(configuration.epochs) epochs (extend it with --resume --epochs N).")
            }
            if let last = trainer.state.history.last {
                say(String(format: "Finished: test top-1 %.2f%%, top-5 %.2f%%, loss %.4f after %d epochs.", last.testTop1,
                             last.testTop5, last.testLoss, last.epoch))
            }
        case let .stoppedAtMaxSteps(step):
            say("Stopped after step \(step) (--max-steps); continue with: litecnn train --out \(out) --resume")
        }
        say("Run directory: \(runDirectory.url.path) (model.safetensors, checkpoint.safetensors, metrics.csv, curves.svg)")
    }
}

/// The data options shared by `train`, `eval` and `demo`.
struct DataArguments: ParsableArguments {
    @Option(help: ArgumentHelp("`shapes` (built-in, generated) or a path: an IDX (MNIST) or CIFAR binary directory, an image folder (train/ and test/ with one subfolder per class) or .npy arrays.", valueName: "shapes|path"))
    var data: String?
    @Option(help: ArgumentHelp("Format of --data: idx, cifar, folder or npy (default: detected).", valueName: "format"))
    var format: String?
    @Option(help: ArgumentHelp("shapes: training images (default 2000).", valueName: "n"))
    var samples: Int?
    @Option(name: .customLong("test-samples"), help: ArgumentHelp("shapes: test images (default samples/5, at least 100).", valueName: "n"))
    var testSamples: Int?
    @Option(name: .customLong("data-seed"), help: ArgumentHelp("shapes: seed of the generated images (default 0).", valueName: "s"))
    var dataSeed: UInt64?
    @Option(help: ArgumentHelp("shapes: 1 (grayscale) or 3 (RGB) channels (default 3; files carry their own).", valueName: "c"))
    var channels: Int?
    @Option(help: ArgumentHelp("Height and width the network sees, in pixels (default 32).", valueName: "n"))
    var resolution: Int?
    @Option(help: ArgumentHelp("Per-channel mean to subtract, comma-separated, one value or one per channel (default 0.5).", valueName: "m"))
    var mean: String?
    @Option(help: ArgumentHelp("Per-channel standard deviation, comma-separated (default 0.25).", valueName: "s"))
    var std: String?

    func parsedFormat() throws -> DataFormat? {
        guard let format else { return nil }
        guard let value = DataFormat(rawValue: format) else {
            throw ValidationError("--format must be one of \(DataFormat.allCases.map(\.rawValue).joined(separator: ", ")), got \(format)")
        }
        return value
    }

    static func parseList(_ text: String?, flag: String) throws -> [Float]? {
        guard let text else { return nil }
        let values = text.split(separator: ",").map { Float($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ValidationError("\(flag) must be comma-separated numbers, got '\(text)'")
        }
        return values.map { $0! }
    }

    func apply(to merger: inout ConfigurationMerger) throws {
        try merger.set("--data", data, \.data)
        try merger.setOptional("--format", try parsedFormat(), \.format)
        try merger.set("--samples", samples, \.samples)
        try merger.setOptional("--test-samples", testSamples, \.testSamples)
        try merger.set("--data-seed", dataSeed, \.dataSeed)
        try merger.setOptional("--channels", channels, \.channels)
        try merger.set("--resolution", resolution, \.resolution)
        try merger.set("--mean", try Self.parseList(mean, flag: "--mean"), \.mean)
        try merger.set("--std", try Self.parseList(std, flag: "--std"), \.std)
    }
}

/// Applies flags to a configuration; when resuming, a flag that changes a saved setting is refused.
struct ConfigurationMerger {
    var configuration: TrainingConfiguration
    let resuming: Bool
    let source: String

    init(_ configuration: TrainingConfiguration, resuming: Bool, source: String) {
        self.configuration = configuration
        self.resuming = resuming
        self.source = source
    }

    mutating func set<T: Equatable>(_ flag: String, _ value: T?, _ keyPath: WritableKeyPath<TrainingConfiguration, T>,
                                    mayChange: Bool = false) throws {
        guard let value else { return }
        if resuming, !mayChange, configuration[keyPath: keyPath] != value {
            throw CommandError("--resume: \(flag) \(value) differs from the run's \(configuration[keyPath: keyPath]) (\(source)); "
                               + "omit it, or start a new run with another --out")
        }
        configuration[keyPath: keyPath] = value
    }

    mutating func setOptional<T: Equatable>(_ flag: String, _ value: T?, _ keyPath: WritableKeyPath<TrainingConfiguration, T?>,
                                    mayChange: Bool = false) throws {
        guard let value else { return }
        if resuming, !mayChange, let saved = configuration[keyPath: keyPath], saved != value {
            throw CommandError("--resume: \(flag) \(value) differs from the run's \(saved) (\(source)); "
                               + "omit it, or start a new run with another --out")
        }
        if resuming, !mayChange, configuration[keyPath: keyPath] == nil {
            throw CommandError("--resume: \(flag) was not set in the run (\(source)); omit it, or start a new run with another --out")
        }
        configuration[keyPath: keyPath] = value
    }
}

/// Runs a `Trainer` with the CLI's progress display and output conventions (shared by `train` and `demo`).
final class TrainingSession {
    let json: Bool
    let progress = TrainingProgressBar()

    init(json: Bool) { self.json = json }

    /// Opens the data and builds the trainer; errors become messages naming the flag or file.
    func prepare(_ configuration: TrainingConfiguration, runDirectory: RunDirectory, resume: Bool) throws -> Trainer {
        progress.status("opening \(configuration.data)")
        let data: DatasetSplits
        do { data = try Trainer.openData(configuration) } catch {
            progress.clear()
            throw CommandError("--data \(configuration.data): \(error)")
        }
        progress.status("building \(configuration.model)")
        do {
            let trainer = try Trainer(configuration: configuration, data: data, runDirectory: runDirectory, resume: resume)
            progress.clear()
            return trainer
        } catch {
            progress.clear()
            throw CommandError("\(error)")
        }
    }

    /// Prints what is about to be trained (text mode).
    func describe(_ trainer: Trainer) {
        let c = trainer.configuration
        let r = c.resolution
        let macs = trainer.model.multiplyAdds(for: [1, r, r, c.channels ?? 3])
        say("Data:  \(trainer.data.description): \(trainer.data.train.count) train / \(trainer.data.test.count) test images, \(trainer.data.train.classCount) classes")
        say("Model: \(c.model)\(c.width.map { " (width \($0))" } ?? ""): \(ModelSummary.grouped(trainer.model.parameterCount)) parameters, "
              + "\(ModelSummary.scaled(macs)) MACs per \(r)×\(r) image")
        say("Train: \(c.epochs) epochs × \(trainer.stepsPerEpoch) steps of \(c.batchSize), \(c.optimizer) lr \(c.learningRate) (\(c.schedule)), "
              + "threads \(WorkerPool.shared.threadCount), seed \(c.seed)")
        if let resumed = trainer.resumedFrom {
            say("Resuming at epoch \(resumed.epoch + 1), step \(resumed.stepInEpoch) (step \(resumed.globalStep) of the run)")
        }
    }

    /// Trains with progress on standard error and one line (text) or JSON object per epoch on standard output.
    func train(_ trainer: Trainer) throws -> TrainingOutcome {
        let progress = self.progress
        let json = self.json
        trainer.onStep = { progress.step($0) }
        trainer.onEvaluation = { progress.evaluation(done: $0, total: $1) }
        var headerPrinted = false
        trainer.onEpoch = { m in
            progress.clear()
            if json {
                say(m.jsonLine)
            } else {
                if !headerPrinted {
                    say("epoch   loss   top1%   test loss  test top1%  top5%   img/s      lr       time")
                    headerPrinted = true
                }
                say(String(format: "%5d  %6.4f  %6.2f  %9.4f  %10.2f  %6.2f  %6.0f  %9.3g  %7.1fs", m.epoch, m.trainLoss,
                             m.trainTop1, m.testLoss, m.testTop1, m.testTop5, m.imagesPerSecond, m.learningRate, m.elapsedSeconds))
            }
        }
        do {
            let outcome = try trainer.run()
            progress.clear()
            return outcome
        } catch {
            progress.clear()
            throw CommandError("\(error)")
        }
    }
}
