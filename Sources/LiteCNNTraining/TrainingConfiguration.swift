// What a training run is: every choice `litecnn train` exposes as a flag, saved as RUN_DIR/config.json so that a run
// can be resumed, evaluated and reproduced from its directory alone. See docs/TRAINING.md.
import Foundation
import LiteCNNData

/// Every setting of a training run (model, data, optimization, distillation, checkpoints), `Codable` as
/// RUN_DIR/config.json with snake_case keys.
///
/// Learning rates and the other optimizer numbers are `Float` (the optimizers' precision); `epochs` counts passes over
/// the training split and `batchSize` images per step. `channels` and `classes` are filled in from the data set when
/// the run starts (`nil` until then).
public struct TrainingConfiguration: Codable, Sendable, Equatable {
    // MARK: Model
    /// Zoo name (`litecnn zoo` lists them).
    public var model: String
    /// Width multiplier α (MobileNet, ShuffleNet, …), `nil` = the model's default.
    public var width: Double?
    /// Groups of ShuffleNet V1's grouped 1×1 convolutions, `nil` = the model's default.
    public var groups: Int?

    // MARK: Data
    /// `shapes` (the built-in procedural set) or a directory/file path.
    public var data: String
    /// The on-disk format of `data`, `nil` = detected from the files present.
    public var format: DataFormat?
    /// Training images of the built-in `shapes` set (ignored for files).
    public var samples: Int
    /// Test images of the built-in `shapes` set, `nil` = samples/5 (at least 100).
    public var testSamples: Int?
    /// Seed of the built-in `shapes` set (which images are drawn), independent of the training seed.
    public var dataSeed: UInt64
    /// Height and width in pixels the network sees (images are resized, or randomly cropped, to it).
    public var resolution: Int
    /// Image channels (1 or 3), from the data set.
    public var channels: Int?
    /// Number of classes, from the data set.
    public var classes: Int?
    /// Augmentation of the training images: an `Augmentation` raw value (`none`, `crop` = CIFAR's pad-crop-flip,
    /// `resized-crop` = ImageNet's RandomResizedCrop + flip); see `StandardTransforms.training`.
    public var augmentation: String
    /// Per-channel mean subtracted after augmentation (one value is broadcast to every channel).
    public var mean: [Float]
    /// Per-channel standard deviation divided by after the mean is subtracted.
    public var std: [Float]

    // MARK: Optimization
    /// Passes over the training split.
    public var epochs: Int
    /// Images per step (the last incomplete batch of an epoch is dropped, so BatchNorm never sees a batch of one).
    public var batchSize: Int
    /// Peak learning rate.
    public var learningRate: Float
    /// Learning rate at the end of the `linear` and `cosine` schedules.
    public var finalLearningRate: Float
    /// An `OptimizerKind` raw value: `sgd`, `nesterov`, `rmsprop` (TensorFlow's, as the MobileNet papers), `adam`, `adamw`.
    public var optimizer: String
    /// Momentum (SGD, RMSProp) or Adam's β1; `nil` = the optimizer's recipe default (`OptimizerKind.defaultMomentum`).
    public var momentum: Float?
    /// Weight decay: L2 added to the gradient, or decoupled for AdamW; `nil` = `OptimizerKind.defaultWeightDecay`.
    public var weightDecay: Float?
    /// A `ScheduleKind` raw value, stepped per iteration: `constant`; `linear` from `lr` to `final_lr` (SqueezeNet);
    /// `step` (`lr·gamma^⌊epoch/step_epochs⌋`); `cosine` from `lr` to `final_lr`; `exponential`
    /// (`lr·gamma^(epoch/step_epochs)`, fractional epochs: MobileNet's 0.98 per epoch, EfficientNet's 0.97 per 2.4).
    public var schedule: String
    /// Epochs between decays of the `step` (whole) and `exponential` (fractions allowed) schedules.
    public var stepEpochs: Double
    /// Decay factor of the `step` and `exponential` schedules.
    public var gamma: Float
    /// Epochs of linear warm-up from 0 to `lr` before the schedule (fractions allowed: 0.5 = half an epoch).
    public var warmupEpochs: Double
    /// Label smoothing ε of the cross-entropy (0 = none).
    public var labelSmoothing: Float
    /// Gradient clipping: the global L2 norm of all gradients is scaled down to at most this value (`nil` = off).
    public var clipNorm: Float?

    // MARK: Reproducibility and execution
    /// Seed of the weights, the shuffling, the augmentation and the dropout masks.
    public var seed: UInt64
    /// Worker threads (`nil` = all cores or LITECNN_THREADS). Results are bit-identical for equal thread counts.
    public var threads: Int?
    /// Steps between checkpoints (`nil` = at the end of every epoch only).
    public var checkpointEvery: Int?
    /// Stop after this many optimizer steps in total (the run can be resumed later; the schedule still spans `epochs`).
    public var maxSteps: Int?

    // MARK: Knowledge distillation (Hinton et al., 2015, "Distilling the Knowledge in a Neural Network")
    /// A teacher: a run directory (its model.safetensors) or a weights file written by `saveZooModel`.
    public var teacher: String?
    /// Softmax temperature T of the distillation term.
    public var temperature: Float
    /// Weight of the distillation term: `loss = w·T²·KL(teacher_T ‖ student_T) + (1 − w)·CE(student, labels)`.
    public var distillWeight: Float

    /// A configuration with PyTorch-like defaults: SGD with momentum 0.9, lr 0.01 constant, batch 32, 10 epochs.
    public init(model: String, data: String = "shapes", format: DataFormat? = nil, samples: Int = 2000,
                resolution: Int = 32, epochs: Int = 10, batchSize: Int = 32, learningRate: Float = 0.01,
                optimizer: OptimizerKind = .sgd, seed: UInt64 = 0) {
        self.model = model
        self.data = data
        self.format = format
        self.samples = samples
        self.dataSeed = 0
        self.resolution = resolution
        self.augmentation = Augmentation.none.rawValue
        self.mean = [0.5]
        self.std = [0.25]
        self.epochs = epochs
        self.batchSize = batchSize
        self.learningRate = learningRate
        self.finalLearningRate = 0
        self.optimizer = optimizer.rawValue
        self.schedule = ScheduleKind.constant.rawValue
        self.stepEpochs = 1
        self.gamma = 0.1
        self.warmupEpochs = 0
        self.labelSmoothing = 0
        self.seed = seed
        self.temperature = 4
        self.distillWeight = 0.9
    }

    enum CodingKeys: String, CodingKey {
        case model, width, groups, data, format, samples, resolution, channels, classes, augmentation, mean, std
        case epochs, optimizer, momentum, schedule, gamma, seed, threads, teacher, temperature
        case testSamples = "test_samples", dataSeed = "data_seed", batchSize = "batch_size"
        case learningRate = "lr", finalLearningRate = "final_lr", weightDecay = "weight_decay"
        case stepEpochs = "step_epochs", warmupEpochs = "warmup_epochs"
        case labelSmoothing = "label_smoothing", clipNorm = "clip_norm", checkpointEvery = "checkpoint_every"
        case maxSteps = "max_steps", distillWeight = "distill_weight"
    }

    /// Checks every value's range; the error names the setting as its flag (`--lr`).
    public func validate() throws {
        func fail(_ message: String) -> TrainingError { .invalidConfiguration(message) }
        guard !model.isEmpty else { throw fail("--model is empty") }
        if let width, !(width.isFinite && width > 0 && width <= 4) { throw fail("--width must be in (0, 4], got \(width)") }
        if let groups, !(1...64).contains(groups) { throw fail("--groups must be between 1 and 64, got \(groups)") }
        guard (1...10_000_000).contains(samples) else { throw fail("--samples must be between 1 and 10000000, got \(samples)") }
        if let testSamples, !(1...10_000_000).contains(testSamples) {
            throw fail("--test-samples must be between 1 and 10000000, got \(testSamples)")
        }
        guard (4...1024).contains(resolution) else { throw fail("--resolution must be between 4 and 1024, got \(resolution)") }
        guard (1...100_000).contains(epochs) else { throw fail("--epochs must be between 1 and 100000, got \(epochs)") }
        guard (1...4096).contains(batchSize) else { throw fail("--batch must be between 1 and 4096, got \(batchSize)") }
        for (name, value) in [("--lr", learningRate), ("--final-lr", finalLearningRate), ("--weight-decay", weightDecay ?? 0)] {
            guard value.isFinite, value >= 0 else { throw fail("\(name) must be a finite number ≥ 0, got \(value)") }
        }
        guard learningRate > 0 else { throw fail("--lr must be > 0, got \(learningRate)") }
        for (name, value) in [("--label-smoothing", labelSmoothing), ("--distill-weight", distillWeight)] {
            guard value.isFinite, (0...1).contains(value) else { throw fail("\(name) must be in [0, 1], got \(value)") }
        }
        guard OptimizerKind(rawValue: optimizer) != nil else {
            throw fail("--optimizer must be one of \(OptimizerKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(optimizer)")
        }
        if let momentum, !(momentum.isFinite && momentum >= 0 && momentum < 1) {
            throw fail("--momentum must be in [0, 1), got \(momentum)")
        }
        guard Augmentation(rawValue: augmentation) != nil else {
            throw fail("--augment must be one of \(Augmentation.allCases.map(\.rawValue).joined(separator: ", ")), got \(augmentation)")
        }
        guard gamma.isFinite, gamma > 0 else { throw fail("--gamma must be > 0, got \(gamma)") }
        guard ScheduleKind(rawValue: schedule) != nil else {
            throw fail("--schedule must be one of \(ScheduleKind.allCases.map(\.rawValue).joined(separator: ", ")), got \(schedule)")
        }
        guard stepEpochs.isFinite, stepEpochs > 0, stepEpochs <= 100_000 else {
            throw fail("--step-epochs must be in (0, 100000], got \(stepEpochs)")
        }
        guard warmupEpochs.isFinite, warmupEpochs >= 0, warmupEpochs <= Double(epochs) else {
            throw fail("--warmup-epochs must be between 0 and --epochs (\(epochs)), got \(warmupEpochs)")
        }
        if let clipNorm, !(clipNorm.isFinite && clipNorm > 0) { throw fail("--clip-norm must be > 0, got \(clipNorm)") }
        if let threads, !(1...1024).contains(threads) { throw fail("--threads must be between 1 and 1024, got \(threads)") }
        if let checkpointEvery, checkpointEvery < 1 { throw fail("--checkpoint-every must be ≥ 1, got \(checkpointEvery)") }
        if let maxSteps, maxSteps < 1 { throw fail("--max-steps must be ≥ 1, got \(maxSteps)") }
        guard temperature.isFinite, temperature > 0 else { throw fail("--temperature must be > 0, got \(temperature)") }
        guard !mean.isEmpty, mean.count == std.count || mean.count == 1 || std.count == 1 else {
            throw fail("--mean and --std need one value or one per channel (got \(mean.count) and \(std.count))")
        }
        guard mean.allSatisfy(\.isFinite), std.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw fail("--mean must be finite and --std > 0")
        }
    }

    /// `mean` and `std` expanded to `channels` values each.
    public func normalization(channels: Int) throws -> (mean: [Float], std: [Float]) {
        func expand(_ values: [Float], _ flag: String) throws -> [Float] {
            if values.count == 1 { return Array(repeating: values[0], count: channels) }
            guard values.count == channels else {
                throw TrainingError.invalidConfiguration("\(flag) has \(values.count) values but the data has \(channels) channels")
            }
            return values
        }
        return (try expand(mean, "--mean"), try expand(std, "--std"))
    }

    /// The settings that decide the numbers a run computes, as canonical JSON: everything but `epochs`, `threads`,
    /// `checkpoint_every` and `max_steps`, which may change between a run and its resumption.
    public var identityJSON: String {
        var copy = self
        copy.epochs = 0
        copy.threads = nil
        copy.checkpointEvery = nil
        copy.maxSteps = nil
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(copy)).map { String(decoding: $0, as: UTF8.self) } ?? ""
    }

    /// FNV-1a (64-bit) of `identityJSON` in hexadecimal, stored in checkpoints to detect a changed configuration.
    public var identityHash: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in identityJSON.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return String(hash, radix: 16)
    }

    /// Pretty JSON as written to RUN_DIR/config.json.
    public func encodedJSON() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(self)) + [0x0A]
    }

    /// Reads RUN_DIR/config.json; the error names the file.
    public static func read(from url: URL) throws -> TrainingConfiguration {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw TrainingError.invalidRunDirectory("\(url.path): cannot read (\(error.localizedDescription))")
        }
        do { return try JSONDecoder().decode(TrainingConfiguration.self, from: data) } catch {
            throw TrainingError.invalidRunDirectory("\(url.path): not a training configuration (\(error))")
        }
    }
}

/// Why training could not start or had to stop.
public enum TrainingError: Error, CustomStringConvertible, Equatable {
    /// A setting is out of range or inconsistent with the data.
    case invalidConfiguration(String)
    /// A run directory is missing files or holds something else.
    case invalidRunDirectory(String)
    /// `--resume` with settings that differ from the saved run's.
    case resumeMismatch(String)
    /// The loss became NaN or infinite; `epoch` and `step` are 1-based, `globalStep` counts from 1 over the run.
    case nonFiniteLoss(epoch: Int, step: Int, globalStep: Int, loss: Float, checkpoint: String?)

    public var description: String {
        switch self {
        case let .invalidConfiguration(message), let .invalidRunDirectory(message), let .resumeMismatch(message):
            return message
        case let .nonFiniteLoss(epoch, step, globalStep, loss, checkpoint):
            var text = "the loss became \(loss) at epoch \(epoch), step \(step) (step \(globalStep) of the run); training stopped. "
                + "Lower --lr, add --clip-norm or --warmup-epochs."
            if let checkpoint {
                text += " The last good checkpoint is \(checkpoint) (continue with --resume)."
            } else {
                text += " No checkpoint had been written yet."
            }
            return text
        }
    }
}
