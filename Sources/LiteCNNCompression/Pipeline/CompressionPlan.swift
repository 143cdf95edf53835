// What `litecnn compress` does to a network, stage by stage (Han, Mao & Dally, 2016, "Deep Compression: Compressing
// Deep Neural Networks with Pruning, Trained Quantization and Huffman Coding", arXiv:1510.00149).
import Foundation
import LiteCNNTraining

/// The stages of a compression run and their settings. Stages run in this order, each followed by fine-tuning when
/// `finetuneEpochs > 0` (low rank → structured pruning → magnitude pruning → quantization → Huffman coding).
///
/// Weight tensors are the weights of `Conv` and `Gemm`/`MatMul` nodes; "fc" settings apply to `Gemm`/`MatMul` and
/// override the general ones there (Deep Compression prunes and quantizes AlexNet's fc layers harder than its convs).
/// Biases, BatchNorm parameters and statistics are stored as 32-bit floats.
public struct CompressionPlan: Codable, Sendable, Equatable {
    // MARK: Low rank
    /// Truncated SVD of the fully connected layers: keep this fraction of the squared singular values (energy).
    public var svdEnergy: Double?
    /// Tucker-2 factorization (1×1 → k×k → 1×1) of every k×k convolution (k ≥ 3, groups = 1), keeping this energy.
    public var tuckerEnergy: Double?
    /// Spatial factorization (k×1 then 1×k) of every k×k convolution (k ≥ 3, groups = 1), keeping this energy.
    public var spatialEnergy: Double?

    // MARK: Pruning
    /// Structured (channel) pruning: the fraction of multiply-adds to remove (0.5 = half).
    public var structuredReduction: Double?
    /// Structured pruning keeps a multiple of this many channels per layer (8 suits the kernels' vector width).
    public var channelMultiple: Int
    /// Unstructured magnitude pruning: the fraction of weights set to zero in every layer (`global == false`) or
    /// over all layers together (`global == true`).
    public var sparsity: Double?
    /// Sparsity of the fully connected layers (default: `sparsity`).
    public var fcSparsity: Double?
    /// Per-layer sparsities by weight name (`classifier.6.weight`, or the layer `classifier.6`), overriding
    /// `sparsity` and `fcSparsity` for those layers — Deep Compression's per-layer table (VGG-16 kept 4 % of fc6 and
    /// fc7 but 23 % of fc8).
    public var layerSparsity: [String: Double]?
    public var globalPruning: Bool
    /// A pruning schedule spec (`GradualPruningSchedule`), applied during the pruning stage's fine-tuning instead
    /// of one-shot pruning.
    public var pruneSchedule: String?

    // MARK: Quantization
    /// Weight sharing by k-means with 2^bits shared values per layer (1…8).
    public var bits: Int?
    /// Bits of the fully connected layers (default: `bits`).
    public var fcBits: Int?
    /// Linear (integer) quantization instead of k-means: 2…8 bits, per output channel or per tensor.
    public var linear: Bool
    public var perChannel: Bool
    public var symmetric: Bool
    /// Post-training calibration of int8 activation ranges (`minmax`, `percentile`, `entropy`); the report then
    /// gives the accuracy with int8 weights *and* activations.
    public var calibration: String?
    /// Images used for calibration.
    public var calibrationImages: Int

    // MARK: Coding
    /// Huffman-code codebook indices and sparse gaps.
    public var huffman: Bool
    /// Bits of a relative index (gap) between non-zeros in conv and fc layers (Deep Compression: 8 and 5).
    public var convIndexBits: Int
    public var fcIndexBits: Int

    // MARK: Fine-tuning
    /// Epochs of fine-tuning after each stage that changes weights (0 = none).
    public var finetuneEpochs: Int
    /// Learning rate of fine-tuning (cosine to 0 within each stage).
    public var finetuneLearningRate: Float

    public init(svdEnergy: Double? = nil, tuckerEnergy: Double? = nil, spatialEnergy: Double? = nil,
                structuredReduction: Double? = nil, channelMultiple: Int = 8, sparsity: Double? = nil, fcSparsity: Double? = nil,
                globalPruning: Bool = false, pruneSchedule: String? = nil, bits: Int? = nil, fcBits: Int? = nil,
                linear: Bool = false, perChannel: Bool = false, symmetric: Bool = false, calibration: String? = nil,
                calibrationImages: Int = 256, huffman: Bool = false, convIndexBits: Int = 8, fcIndexBits: Int = 5,
                finetuneEpochs: Int = 0, finetuneLearningRate: Float = 0.001) {
        self.svdEnergy = svdEnergy
        self.tuckerEnergy = tuckerEnergy
        self.spatialEnergy = spatialEnergy
        self.structuredReduction = structuredReduction
        self.channelMultiple = channelMultiple
        self.sparsity = sparsity
        self.fcSparsity = fcSparsity
        self.layerSparsity = nil
        self.globalPruning = globalPruning
        self.pruneSchedule = pruneSchedule
        self.bits = bits
        self.fcBits = fcBits
        self.linear = linear
        self.perChannel = perChannel
        self.symmetric = symmetric
        self.calibration = calibration
        self.calibrationImages = calibrationImages
        self.huffman = huffman
        self.convIndexBits = convIndexBits
        self.fcIndexBits = fcIndexBits
        self.finetuneEpochs = finetuneEpochs
        self.finetuneLearningRate = finetuneLearningRate
    }

    /// Whether any stage quantizes weights.
    public var quantizes: Bool { bits != nil || fcBits != nil }
    /// Whether any stage prunes individual weights.
    public var prunes: Bool { sparsity != nil || fcSparsity != nil || pruneSchedule != nil || !(layerSparsity ?? [:]).isEmpty }

    /// Checks every value; the error names the flag (`--bits`).
    public func validate() throws {
        func fail(_ message: String) -> CompressionError { CompressionError(message) }
        for (flag, value) in [("--svd", svdEnergy), ("--tucker", tuckerEnergy), ("--spatial", spatialEnergy)] {
            if let value, !(value > 0 && value <= 1) { throw fail("\(flag) is the fraction of energy to keep, in (0, 1]; got \(value)") }
        }
        if tuckerEnergy != nil, spatialEnergy != nil {
            throw fail("--tucker and --spatial both factorize the k×k convolutions; choose one")
        }
        if let r = structuredReduction, !(r > 0 && r < 1) {
            throw fail("--structured is the fraction of multiply-adds to remove, in (0, 1); got \(r)")
        }
        guard (1...256).contains(channelMultiple) else { throw fail("--channel-multiple must be 1…256; got \(channelMultiple)") }
        for (flag, value) in [("--prune", sparsity), ("--fc-prune", fcSparsity)] {
            if let value, !(value >= 0 && value < 1) { throw fail("\(flag) is the fraction of weights to zero, in [0, 1); got \(value)") }
        }
        for (name, value) in (layerSparsity ?? [:]).sorted(by: { $0.key < $1.key }) where !(value >= 0 && value < 1) {
            throw fail("--layer-prune \(name)=\(value): the fraction of weights to zero must be in [0, 1)")
        }
        if pruneSchedule != nil, sparsity != nil {
            throw fail("--prune-schedule sets the sparsity itself; drop --prune (--fc-prune and --layer-prune set the final sparsity of their layers)")
        }
        if pruneSchedule != nil, globalPruning, fcSparsity != nil {
            throw fail("--global prunes with one threshold over all layers; drop --fc-prune")
        }
        if globalPruning, !(layerSparsity ?? [:]).isEmpty {
            throw fail("--global prunes with one threshold over all layers; drop --layer-prune")
        }
        if pruneSchedule != nil, finetuneEpochs == 0 {
            throw fail("--prune-schedule prunes while fine-tuning; give --finetune-epochs ≥ 1")
        }
        let bitRange = linear ? 2...8 : 1...8
        for (flag, value) in [("--bits", bits), ("--fc-bits", fcBits)] {
            if let value, !bitRange.contains(value) {
                throw fail("\(flag) must be \(bitRange.lowerBound)…\(bitRange.upperBound)\(linear ? " with --linear" : ""); got \(value)")
            }
        }
        if linear, !quantizes { throw fail("--linear needs --bits") }
        if perChannel || symmetric, !linear { throw fail("--per-channel and --symmetric apply to --linear quantization") }
        if let calibration, !["minmax", "percentile", "entropy"].contains(calibration) {
            throw fail("--calibrate must be minmax, percentile or entropy; got \(calibration)")
        }
        guard (1...100_000).contains(calibrationImages) else {
            throw fail("--calibration-images must be 1…100000; got \(calibrationImages)")
        }
        for (flag, value) in [("--conv-index-bits", convIndexBits), ("--fc-index-bits", fcIndexBits)] {
            if !(1...16).contains(value) { throw fail("\(flag) must be 1…16; got \(value)") }
        }
        guard (0...1000).contains(finetuneEpochs) else { throw fail("--finetune-epochs must be 0…1000; got \(finetuneEpochs)") }
        guard finetuneLearningRate > 0, finetuneLearningRate.isFinite else {
            throw fail("--finetune-lr must be positive; got \(finetuneLearningRate)")
        }
    }

    enum CodingKeys: String, CodingKey {
        case svdEnergy = "svd_energy", tuckerEnergy = "tucker_energy", spatialEnergy = "spatial_energy"
        case structuredReduction = "structured_reduction", channelMultiple = "channel_multiple", sparsity, fcSparsity = "fc_sparsity"
        case layerSparsity = "layer_sparsity"
        case globalPruning = "global_pruning", pruneSchedule = "prune_schedule", bits, fcBits = "fc_bits"
        case linear, perChannel = "per_channel", symmetric, calibration, calibrationImages = "calibration_images"
        case huffman, convIndexBits = "conv_index_bits", fcIndexBits = "fc_index_bits"
        case finetuneEpochs = "finetune_epochs", finetuneLearningRate = "finetune_lr"
    }
}

/// A compression run that cannot proceed: a bad setting, a model or data that does not fit.
public struct CompressionError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
