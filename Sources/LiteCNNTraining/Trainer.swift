// The training loop: mini-batch gradient descent over a data set with a zoo model, checkpoints, resumption that
// reproduces the uninterrupted run bit for bit, per-epoch evaluation and metrics, and knowledge distillation
// (Hinton, Vinyals & Dean, 2015, "Distilling the Knowledge in a Neural Network"). See docs/TRAINING.md.
import Foundation
import LiteCNNData
import LiteCNNIO
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor

/// What the loop reports after every optimizer step (for progress bars and logs).
public struct StepReport: Sendable {
    /// 0-based epoch and the epoch count of the run.
    public var epoch: Int
    public var epochs: Int
    /// 1-based step within the epoch, and the steps of an epoch.
    public var step: Int
    public var stepsPerEpoch: Int
    /// 1-based step over the whole run.
    public var globalStep: Int
    /// This step's mean loss over its batch.
    public var loss: Float
    /// Mean loss and top-1 % over the epoch's batches so far.
    public var runningLoss: Double
    public var runningTop1: Double
    /// Training throughput of the epoch so far.
    public var imagesPerSecond: Double
    public var learningRate: Float
    /// Estimated seconds until the run (or `--max-steps`) ends, training steps only.
    public var etaSeconds: Double
}

/// How `Trainer.run()` ended.
public enum TrainingOutcome: Sendable, Equatable {
    /// All `epochs` are done.
    case finished
    /// `maxSteps` optimizer steps were reached; the checkpoint lets `--resume` continue.
    case stoppedAtMaxSteps(globalStep: Int)
}

/// Trains a zoo model on a data set as a `TrainingConfiguration` describes, writing a run directory.
///
/// One step: take the loader's next batch (`[B, R, R, C]` NHWC, augmented and normalized); `model.train()`;
/// reseed every Dropout/DropPath from (seed, global step, layer index); logits = forward; loss = cross-entropy with
/// label smoothing, or `DistillationLoss` against the teacher's logits (teacher in eval mode); stop with
/// `TrainingError.nonFiniteLoss` if the loss is NaN or infinite; zero gradients; backward; clip the global gradient
/// norm if asked; set the learning rate from the schedule (per step); optimizer step.
///
/// Determinism: the loader's order and augmentation depend only on (seed, epoch, index), dropout masks on
/// (seed, step, layer), and everything else is restored from the checkpoint, so a resumed run computes exactly the
/// losses of an uninterrupted one with the same thread count.
public final class Trainer {
    public let configuration: TrainingConfiguration
    public let runDirectory: RunDirectory
    public let data: DatasetSplits
    /// The network being trained (a zoo model).
    public let model: any Layer
    public let modelOptions: ModelOptions
    public let optimizer: any Optimizer
    public let schedule: any LearningRateSchedule
    /// The teacher of knowledge distillation, in eval mode.
    public let teacher: (any Layer)?
    public let loader: DataLoader
    public let testTransforms: [any ImageTransform]
    /// Where the loop stands (restored from the checkpoint on resume).
    public private(set) var state: TrainingState
    /// The state the run was resumed from, `nil` for a fresh run.
    public let resumedFrom: TrainingState?
    /// The last test-set evaluation (after the last finished epoch of this process).
    public private(set) var lastEvaluation: ClassificationMetrics?

    /// Called after every optimizer step.
    public var onStep: ((StepReport) -> Void)?
    /// Called after backward (and gradient clipping), just before the optimizer step: compression uses it to gather
    /// gradients per weight-sharing cluster or to zero the gradients of pruned weights.
    public var beforeOptimizerStep: (() -> Void)?
    /// Called right after the optimizer step, before `onStep`: compression uses it to re-apply pruning masks and snap
    /// shared weights to their codebook.
    public var afterOptimizerStep: (() -> Void)?
    /// Called after every epoch with its metrics (already written to the run directory).
    public var onEpoch: ((EpochMetrics) -> Void)?
    /// Called when evaluation starts after an epoch, and with (done, total) samples while it runs.
    public var onEvaluation: ((Int, Int) -> Void)?

    private let criterion: SoftmaxCrossEntropy
    private let distillation: DistillationLoss?
    private let dropoutLayers: [any Layer]

    /// The data a configuration names: the built-in shapes set or `DataSource.open(path:format:)`.
    public static func openData(_ configuration: TrainingConfiguration) throws -> DatasetSplits {
        if configuration.data == "shapes" || configuration.format == .shapes {
            let channels = configuration.channels ?? 3
            try ShapesDataset.validate(samples: configuration.samples, testSamples: configuration.testSamples,
                                       resolution: configuration.resolution, channels: channels)
            return ShapesDataset.splits(samples: configuration.samples, testSamples: configuration.testSamples,
                                        resolution: configuration.resolution, channels: channels, seed: configuration.dataSeed)
        }
        return try DataSource.open(path: configuration.data, format: configuration.format)
    }

    /// Prepares a run: fills `channels`/`classes` from the data, builds the seeded model, optimizer, schedule and
    /// loader, loads the teacher, and either starts a fresh run directory or (with `resume`) restores the checkpoint.
    ///
    /// A fresh run refuses a directory that already holds one; a resumed run refuses a checkpoint whose
    /// configuration hash differs from `configuration.identityHash`.
    ///
    /// `customModel` trains a network of your own (input `[N, R, R, C]` NHWC, output `[N, classes]`) instead of
    /// building the zoo model `configuration.model` names; `configuration.model` is then only its label, and
    /// model.safetensors records that label (so `loadZooModel` cannot rebuild it — use `loadWeights` into your network).
    /// On resume, pass an identically built network. `customTeacher` likewise distills from a network of your own
    /// (trained, any architecture with the same classes) instead of loading `configuration.teacher`.
    public init(configuration: TrainingConfiguration, data: DatasetSplits, runDirectory: RunDirectory, resume: Bool,
                customModel: (any Layer)? = nil, customTeacher: (any Layer)? = nil) throws {
        var configuration = configuration
        let train = data.train, test = data.test
        guard train.count > 0, test.count > 0 else {
            throw TrainingError.invalidConfiguration("\(data.description): the training split has \(train.count) images and the test split \(test.count); both need at least one")
        }
        guard train.channels == test.channels, train.classCount == test.classCount else {
            throw TrainingError.invalidConfiguration("\(data.description): the splits disagree (train \(train.channels) channels, \(train.classCount) classes; test \(test.channels) channels, \(test.classCount) classes)")
        }
        if let channels = configuration.channels, channels != train.channels {
            throw TrainingError.invalidConfiguration("the configuration says \(channels) channels but \(data.description) has \(train.channels)")
        }
        if let classes = configuration.classes, classes != train.classCount {
            throw TrainingError.invalidConfiguration("the configuration says \(classes) classes but \(data.description) has \(train.classCount)")
        }
        configuration.channels = train.channels
        configuration.classes = train.classCount
        try configuration.validate()
        guard train.count >= configuration.batchSize else {
            throw TrainingError.invalidConfiguration("--batch \(configuration.batchSize) is larger than the training split (\(train.count) images)")
        }
        self.configuration = configuration
        self.runDirectory = runDirectory
        self.data = data
        if let threads = configuration.threads { WorkerPool.shared.threadCount = threads }

        // Model, seeded.
        let options = ModelOptions(classCount: train.classCount, inputChannels: train.channels,
                                   width: configuration.width, groups: configuration.groups)
        WeightInitialization.seed(configuration.seed)
        let model: any Layer
        if let customModel {
            model = customModel
        } else {
            do { model = try ModelZoo.build(configuration.model, options: options) } catch {
                throw TrainingError.invalidConfiguration("--model \(configuration.model): \(error)")
            }
        }
        self.model = model
        self.modelOptions = options
        let probe = model.outputShape(for: [1, configuration.resolution, configuration.resolution, train.channels])
        guard probe == [1, train.classCount] else {
            throw TrainingError.invalidConfiguration("\(configuration.model) at \(configuration.resolution)×\(configuration.resolution) outputs \(probe), not [1, \(train.classCount)]; try another --resolution")
        }
        dropoutLayers = model.namedLayers().map(\.layer).filter { $0 is Dropout || $0 is DropPath }

        optimizer = try Self.makeOptimizer(configuration, model: model)
        let normalization = try configuration.normalization(channels: train.channels)
        loader = DataLoader(dataset: train, batchSize: configuration.batchSize, shuffle: true, dropLast: true,
                            transforms: try Evaluation.trainTransforms(resolution: configuration.resolution, channels: train.channels,
                                                                       augmentation: configuration.augmentation,
                                                                       mean: normalization.mean, std: normalization.std),
                            seed: configuration.seed)
        testTransforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: train.channels,
                                                       mean: normalization.mean, std: normalization.std)
        schedule = try Self.makeSchedule(configuration, stepsPerEpoch: loader.batchesPerEpoch)
        criterion = SoftmaxCrossEntropy(labelSmoothing: configuration.labelSmoothing)

        // Teacher.
        if let customTeacher {
            customTeacher.eval()
            teacher = customTeacher
            distillation = DistillationLoss(temperature: configuration.temperature, alpha: configuration.distillWeight,
                                            labelSmoothing: configuration.labelSmoothing)
        } else if let teacherPath = configuration.teacher {
            let url = RunDirectory.isRunDirectory(teacherPath) ? RunDirectory(path: teacherPath).model : URL(fileURLWithPath: teacherPath)
            let loaded: (name: String, options: ModelOptions, model: any Layer)
            do { loaded = try loadZooModel(from: url) } catch {
                throw TrainingError.invalidConfiguration("--teacher \(teacherPath): cannot load \(url.path): \(error)")
            }
            guard loaded.options.classCount == train.classCount, loaded.options.inputChannels == train.channels else {
                throw TrainingError.invalidConfiguration("--teacher \(teacherPath): \(loaded.name) has \(loaded.options.classCount) classes and \(loaded.options.inputChannels) input channels; the data has \(train.classCount) and \(train.channels)")
            }
            loaded.model.eval()
            teacher = loaded.model
            distillation = DistillationLoss(temperature: configuration.temperature, alpha: configuration.distillWeight,
                                            labelSmoothing: configuration.labelSmoothing)
        } else {
            teacher = nil
            distillation = nil
        }

        // Fresh run or resumption.
        try runDirectory.create()
        if resume {
            guard FileManager.default.fileExists(atPath: runDirectory.checkpoint.path) else {
                throw TrainingError.invalidRunDirectory("--resume: \(runDirectory.checkpoint.path) does not exist; nothing to resume")
            }
            let (header, file) = try Checkpoint.read(from: runDirectory.checkpoint)
            guard header.configHash == configuration.identityHash else {
                throw TrainingError.resumeMismatch("--resume: \(runDirectory.checkpoint.path) was written with another configuration (hash \(header.configHash), now \(configuration.identityHash)); only --epochs, --threads, --checkpoint-every and --max-steps may change")
            }
            try Checkpoint.restore(file, into: model, optimizer: optimizer)
            guard header.state.stepInEpoch <= loader.batchesPerEpoch else {
                throw TrainingError.invalidRunDirectory("\(runDirectory.checkpoint.path): step \(header.state.stepInEpoch) is beyond the \(loader.batchesPerEpoch) steps of an epoch")
            }
            state = header.state
            resumedFrom = header.state
        } else {
            if runDirectory.holdsRun {
                throw TrainingError.invalidRunDirectory("\(runDirectory.url.path) already holds a run; continue it with --resume or choose another --out")
            }
            state = TrainingState()
            resumedFrom = nil
        }
        try writeFileAtomically(try configuration.encodedJSON(), to: runDirectory.configuration)
    }

    /// The optimizer a configuration names (`makeOptimizer(kind:…)` with its recipe defaults), over the model's
    /// trainable parameters.
    public static func makeOptimizer(_ c: TrainingConfiguration, model: any Layer) throws -> any Optimizer {
        guard let kind = OptimizerKind(rawValue: c.optimizer) else {
            throw TrainingError.invalidConfiguration("--optimizer must be one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(c.optimizer)")
        }
        let parameters = model.namedParameters().filter { $0.parameter.isTrainable }
        do {
            return try LiteCNNTraining.makeOptimizer(kind: kind, parameters: parameters, learningRate: c.learningRate,
                                                     momentum: c.momentum, weightDecay: c.weightDecay)
        } catch {
            throw TrainingError.invalidConfiguration("\(error)")
        }
    }

    /// The learning-rate schedule a configuration names (`makeSchedule(kind:…)`), with linear warm-up over
    /// `warmupEpochs × stepsPerEpoch` steps (rounded) when set.
    public static func makeSchedule(_ c: TrainingConfiguration, stepsPerEpoch: Int) throws -> any LearningRateSchedule {
        guard let kind = ScheduleKind(rawValue: c.schedule) else {
            throw TrainingError.invalidConfiguration("--schedule must be one of \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(c.schedule)")
        }
        let warmupSteps = Int((c.warmupEpochs * Double(stepsPerEpoch)).rounded())
        do {
            return try LiteCNNTraining.makeSchedule(kind: kind, initial: c.learningRate, stepEpochs: c.stepEpochs, gamma: c.gamma,
                                                    minimum: c.finalLearningRate, warmupSteps: warmupSteps)
        } catch {
            throw TrainingError.invalidConfiguration("\(error)")
        }
    }

    /// Steps of one epoch (the last incomplete batch is dropped).
    public var stepsPerEpoch: Int { loader.batchesPerEpoch }
    /// Steps of the whole run (`epochs × stepsPerEpoch`); the schedule spans these even when `maxSteps` stops earlier.
    public var totalSteps: Int { configuration.epochs * stepsPerEpoch }

    /// Trains until `epochs` are done or `maxSteps` is reached, checkpointing as configured.
    public func run() throws -> TrainingOutcome {
        let c = configuration
        let stepsPerEpoch = self.stepsPerEpoch
        let totalSteps = self.totalSteps
        let stopStep = min(totalSteps, c.maxSteps ?? Int.max)
        let processStart = monotonicSeconds()
        let elapsedBase = state.elapsedSeconds
        var stepSecondsThisProcess = 0.0
        var stepsThisProcess = 0
        let batch = c.batchSize
        func elapsed() -> Double { elapsedBase + monotonicSeconds() - processStart }

        while state.epoch < c.epochs {
            if state.globalStep >= stopStep, state.stepInEpoch < stepsPerEpoch {
                try saveCheckpoint(elapsed: elapsed())
                return .stoppedAtMaxSteps(globalStep: state.globalStep)
            }
            if state.stepInEpoch < stepsPerEpoch {
                let iterator = loader.epoch(state.epoch, startingAt: state.stepInEpoch)
                while state.globalStep < stopStep, let batchData = try iterator.next() {
                    let t0 = monotonicSeconds()
                    let loss = try step(batchData)
                    let dt = monotonicSeconds() - t0
                    state.trainSeconds += dt
                    stepSecondsThisProcess += dt
                    stepsThisProcess += 1
                    if let onStep {
                        let remaining = Double(stopStep - state.globalStep)
                        onStep(StepReport(
                            epoch: state.epoch, epochs: c.epochs, step: state.stepInEpoch, stepsPerEpoch: stepsPerEpoch,
                            globalStep: state.globalStep, loss: loss,
                            runningLoss: state.seen == 0 ? 0 : state.lossSum / Double(state.seen),
                            runningTop1: state.seen == 0 ? 0 : 100 * Double(state.correct) / Double(state.seen),
                            imagesPerSecond: state.trainSeconds > 0 ? Double(state.seen) / state.trainSeconds : 0,
                            learningRate: state.learningRate,
                            etaSeconds: remaining * stepSecondsThisProcess / Double(max(stepsThisProcess, 1))))
                    }
                    if let every = c.checkpointEvery, state.globalStep % every == 0, state.stepInEpoch < stepsPerEpoch {
                        try saveCheckpoint(elapsed: elapsed())
                    }
                }
                if state.stepInEpoch < stepsPerEpoch {
                    // Stopped by maxSteps in the middle of the epoch.
                    try saveCheckpoint(elapsed: elapsed())
                    return .stoppedAtMaxSteps(globalStep: state.globalStep)
                }
            }

            // End of epoch: evaluate, record, checkpoint.
            onEvaluation?(0, data.test.count)
            let evaluation = try Evaluation.evaluate(model, on: data.test, transforms: testTransforms,
                                                     batchSize: batch, progress: onEvaluation)
            lastEvaluation = evaluation
            let metrics = EpochMetrics(
                epoch: state.epoch + 1, steps: stepsPerEpoch,
                trainLoss: state.seen == 0 ? 0 : state.lossSum / Double(state.seen),
                trainTop1: state.seen == 0 ? 0 : 100 * Double(state.correct) / Double(state.seen),
                testLoss: evaluation.meanLoss, testTop1: evaluation.top1, testTop5: evaluation.top5,
                imagesPerSecond: state.trainSeconds > 0 ? Double(state.seen) / state.trainSeconds : 0,
                // The Float's shortest decimal (0.01, not 0.009999999776) for the files and JSON lines.
                learningRate: Double("\(state.learningRate)") ?? Double(state.learningRate), elapsedSeconds: elapsed())
            state.history.append(metrics)
            state.epoch += 1
            state.stepInEpoch = 0
            state.lossSum = 0
            state.correct = 0
            state.seen = 0
            state.trainSeconds = 0
            try saveCheckpoint(elapsed: elapsed())
            try writeReports()
            onEpoch?(metrics)
        }
        return .finished
    }

    /// One optimizer step on `batch`; returns its loss. Throws `nonFiniteLoss` before touching the weights.
    private func step(_ batch: Batch) throws -> Float {
        model.train()
        for (index, layer) in dropoutLayers.enumerated() {
            let seed = dropoutSeed(configuration.seed, UInt64(state.globalStep), UInt64(index))
            if let dropout = layer as? Dropout { dropout.reseed(seed) } else if let path = layer as? DropPath { path.reseed(seed) }
        }
        let logits = model.forward(batch.images)
        let loss: Float
        let gradient: Tensor
        if let teacher, let distillation {
            let teacherLogits = teacher.forward(batch.images)
            loss = distillation.loss(studentLogits: logits, teacherLogits: teacherLogits, labels: batch.labels)
            gradient = distillation.gradient()
        } else {
            loss = criterion.loss(logits: logits, labels: batch.labels)
            gradient = criterion.gradient()
        }
        guard loss.isFinite else {
            let checkpoint = FileManager.default.fileExists(atPath: runDirectory.checkpoint.path) ? runDirectory.checkpoint.path : nil
            throw TrainingError.nonFiniteLoss(epoch: state.epoch + 1, step: state.stepInEpoch + 1,
                                              globalStep: state.globalStep + 1, loss: loss, checkpoint: checkpoint)
        }
        model.zeroGradients()
        _ = model.backward(gradient)
        if let clipNorm = configuration.clipNorm {
            _ = clipGradientNorm(model.trainableParameters, maxNorm: clipNorm)
        }
        let rate = schedule.learningRate(step: state.globalStep, stepsPerEpoch: stepsPerEpoch, totalSteps: totalSteps)
        optimizer.learningRate = rate
        beforeOptimizerStep?()
        optimizer.step()
        afterOptimizerStep?()

        var batchMetrics = ClassificationMetrics(classCount: logits.shape[1])
        batchMetrics.add(logits: logits, labels: batch.labels, meanLoss: loss)
        state.lossSum += Double(loss) * Double(batch.labels.count)
        state.correct += batchMetrics.top1Correct
        state.seen += batch.labels.count
        state.learningRate = rate
        state.globalStep += 1
        state.stepInEpoch += 1
        return loss
    }

    /// Writes checkpoint.safetensors (atomically) and model.safetensors.
    private func saveCheckpoint(elapsed: Double) throws {
        state.elapsedSeconds = elapsed
        let zooMetadata = [WeightMetadataKey.model: configuration.model, WeightMetadataKey.options: modelOptions.metadataJSON]
        try Checkpoint.write(model: model, optimizer: optimizer, state: state, configuration: configuration,
                             options: zooMetadata, to: runDirectory.checkpoint)
        try saveZooModel(model, name: configuration.model, options: modelOptions, to: runDirectory.model,
                         metadata: ["litecnn.global_step": String(state.globalStep)])
    }

    /// Rewrites metrics.csv, metrics.json and curves.svg from the history.
    private func writeReports() throws {
        try EpochMetrics.write(state.history, csv: runDirectory.metricsCSV, json: runDirectory.metricsJSON)
        let title = "\(configuration.model) on \(data.description)"
        try writeFileAtomically(Array(TrainingPlot.svg(state.history, title: title).utf8), to: runDirectory.curves)
    }
}

/// A 64-bit mix of several values (SplitMix64 finalizer over a running combination), for deriving per-step seeds.
func dropoutSeed(_ values: UInt64...) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15
    for v in values {
        h = (h ^ v) &+ 0x9E37_79B9_7F4A_7C15
        h = (h ^ (h >> 30)) &* 0xBF58_476D_1CE4_E5B9
        h = (h ^ (h >> 27)) &* 0x94D0_49BB_1331_11EB
        h ^= h >> 31
    }
    return h
}

/// Seconds since an arbitrary start, monotonic.
func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}
