// Training checkpoints: one safetensors file holding the model's parameters and buffers, the optimizer's state and
// the loop's position, written atomically so that killing the process at any moment leaves a usable file.
import Foundation
import LiteCNNIO
import LiteCNNLayers
import LiteCNNTensor

/// Where the loop is and what it has accumulated, saved with every checkpoint.
///
/// `epoch` is the 0-based epoch in progress and `stepInEpoch` the batches of it already done (0 = the epoch has not
/// started; an epoch's own end-of-epoch checkpoint is stored as `(epoch + 1, 0)`). `globalStep` counts optimizer
/// steps over the whole run. The running train loss sum (Double, saved as its bit pattern so that a resumed epoch
/// reports exactly the mean of the uninterrupted one), correct count and images seen cover the epoch in progress.
public struct TrainingState: Codable, Sendable, Equatable {
    public var epoch: Int
    public var stepInEpoch: Int
    public var globalStep: Int
    /// Bit pattern of the Double sum of batch-size-weighted losses of the epoch in progress.
    public var lossSumBits: UInt64
    public var correct: Int
    public var seen: Int
    /// Seconds spent in training steps during the epoch in progress (for images/s).
    public var trainSeconds: Double
    /// Wall-clock seconds of the run so far, across resumptions.
    public var elapsedSeconds: Double
    /// The learning rate of the last step.
    public var learningRate: Float
    /// Finished epochs.
    public var history: [EpochMetrics]

    public init(epoch: Int = 0, stepInEpoch: Int = 0, globalStep: Int = 0, lossSum: Double = 0, correct: Int = 0,
                seen: Int = 0, trainSeconds: Double = 0, elapsedSeconds: Double = 0, learningRate: Float = 0,
                history: [EpochMetrics] = []) {
        self.epoch = epoch
        self.stepInEpoch = stepInEpoch
        self.globalStep = globalStep
        self.lossSumBits = lossSum.bitPattern
        self.correct = correct
        self.seen = seen
        self.trainSeconds = trainSeconds
        self.elapsedSeconds = elapsedSeconds
        self.learningRate = learningRate
        self.history = history
    }

    public var lossSum: Double {
        get { Double(bitPattern: lossSumBits) }
        set { lossSumBits = newValue.bitPattern }
    }

    enum CodingKeys: String, CodingKey {
        case epoch, correct, seen, history
        case stepInEpoch = "step_in_epoch", globalStep = "global_step", lossSumBits = "loss_sum_bits"
        case trainSeconds = "train_seconds", elapsedSeconds = "elapsed_s", learningRate = "lr"
    }
}

/// RUN_DIR/checkpoint.safetensors: a safetensors file (F32 tensors) with
///
/// - every entry of `model.namedParameters()` (weights and buffers such as BatchNorm running statistics) under its
///   torchvision name (`features.0.0.weight`);
/// - every entry of `optimizer.state()` under `optimizer.<key>` (`optimizer.momentum.features.0.0.weight`);
/// - metadata `litecnn.checkpoint` = `TrainingState` as JSON, `litecnn.config_hash` = the configuration's
///   `identityHash`, `litecnn.seed`, and the zoo keys `litecnn.model`/`litecnn.options`.
///
/// Written with `Safetensors.write`, i.e. to a temporary file in the same directory then renamed over the old
/// checkpoint: a reader (or a resumed run) sees the previous checkpoint or the new one, never a partial file.
public enum Checkpoint {
    /// Prefix of optimizer-state tensors.
    public static let optimizerPrefix = "optimizer."
    static let stateKey = "litecnn.checkpoint"
    static let hashKey = "litecnn.config_hash"
    static let seedKey = "litecnn.seed"

    /// What a checkpoint file holds besides tensors.
    public struct Header: Sendable {
        public var state: TrainingState
        public var configHash: String
        public var seed: UInt64
    }

    /// Writes model, optimizer and loop state to `url` atomically.
    public static func write(model: any Layer, optimizer: any Optimizer, state: TrainingState, configuration: TrainingConfiguration,
                             options: [String: String] = [:], to url: URL) throws {
        var tensors = model.namedParameters().map { (name: $0.name, tensor: $0.parameter.value) }
        for (key, tensor) in optimizer.state().sorted(by: { $0.key < $1.key }) {
            tensors.append((optimizerPrefix + key, tensor))
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var metadata = options
        metadata[stateKey] = String(decoding: try encoder.encode(state), as: UTF8.self)
        metadata[hashKey] = configuration.identityHash
        metadata[seedKey] = String(configuration.seed)
        metadata[WeightMetadataKey.format] = "pt"
        try Safetensors.write(tensors, metadata: metadata, to: url)
    }

    /// Reads and validates a checkpoint's file and header (tensors are decoded by `restore`).
    public static func read(from url: URL) throws -> (header: Header, file: Safetensors.File) {
        let file = try Safetensors.File(contentsOf: url)
        guard let stateText = file.metadata[stateKey] else {
            throw FileFormatError(file: file.fileName, reason: "no '\(stateKey)' metadata: not a LiteCNN training checkpoint")
        }
        let state: TrainingState
        do { state = try JSONDecoder().decode(TrainingState.self, from: Data(stateText.utf8)) } catch {
            throw FileFormatError(file: file.fileName, reason: "metadata '\(stateKey)' is not a valid training state (\(error))")
        }
        guard state.epoch >= 0, state.stepInEpoch >= 0, state.globalStep >= 0, state.seen >= 0, state.correct >= 0 else {
            throw FileFormatError(file: file.fileName, reason: "metadata '\(stateKey)' has negative counters")
        }
        guard let hash = file.metadata[hashKey], let seedText = file.metadata[seedKey], let seed = UInt64(seedText) else {
            throw FileFormatError(file: file.fileName, reason: "missing '\(hashKey)' or '\(seedKey)' metadata")
        }
        return (Header(state: state, configHash: hash, seed: seed), file)
    }

    /// Loads the model's tensors (strictly: every model name must be present with its shape) and the optimizer's
    /// state from a checkpoint file. Nothing in the model changes unless every tensor validates.
    public static func restore(_ file: Safetensors.File, into model: any Layer, optimizer: any Optimizer) throws {
        let modelNames = Set(model.namedParameters().map(\.name))
        var optimizerState: [String: Tensor] = [:]
        for name in file.names {
            if name.hasPrefix(optimizerPrefix) {
                optimizerState[String(name.dropFirst(optimizerPrefix.count))] = try file.tensor(named: name)
            } else if !modelNames.contains(name) {
                throw FileFormatError(file: file.fileName, tensor: name, reason: "the checkpoint holds a tensor the model does not have")
            }
        }
        let missing = model.namedParameters().map(\.name).filter { file.info(named: $0) == nil }
        if !missing.isEmpty {
            throw WeightLoadingError.namesDiffer(file: file.fileName, missing: missing, unexpected: [])
        }
        try loadWeights(into: model, from: file, strict: false)
        do { try optimizer.loadState(optimizerState) } catch {
            throw FileFormatError(file: file.fileName, reason: "optimizer state does not fit: \(error)")
        }
    }
}
