import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn compress MODEL_OR_RUN --out model.lcz`: Deep Compression (pruning, weight sharing, Huffman coding), linear
/// quantization, low-rank factorization and structured pruning, each stage fine-tuned and measured.
struct CompressCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compress",
        abstract: "Compress a trained model into a small .lcz file: prune, quantize, factorize, Huffman-code, fine-tune.",
        discussion: """
        MODEL_OR_RUN is a run directory written by `litecnn train` (its data, resolution and normalization are used \
        unless flags override them), a weights file (.safetensors from `litecnn train`/`weights`), an .onnx file or a \
        .lcz file; anything but a run directory needs --data.

        Stages run in this order, each optional; with --finetune-epochs N each stage that changes weights is followed \
        by N epochs of fine-tuning (distilled from --teacher when given):
          low rank            --svd E (fc layers), --tucker E or --spatial E (k×k convolutions); E = energy kept
          structured pruning  --structured R: remove channels until R of the multiply-adds are gone
          pruning             --prune S [--fc-prune S] [--global] or --prune-schedule SPEC (gradual, during fine-tuning)
          quantization        --bits B [--fc-bits B]: k-means weight sharing (Deep Compression), fine-tuned per cluster;
                              with --linear: integers, [--per-channel] [--symmetric]
          coding              --huffman: Huffman-code indices and gaps
          int8 activations    --calibrate minmax|percentile|entropy: accuracy with 8-bit activations too

        Every size reported is the size of the file that stage produces; every accuracy is computed by the runtime \
        from that file. --report DIR writes report.md (a table like the SqueezeNet paper's Table 2), \
        size_accuracy.svg and report.json. --json prints the same figures (bytes, ratio, top1_before, top1_after, \
        stages). The .lcz file runs with `litecnn run`, `bench`, `eval` and `export` (docs/COMPRESSED_FORMAT.md).

        Examples:
          litecnn train --model squeezenet1_0 --data shapes --epochs 30 --out runs/sq
          litecnn compress runs/sq --prune 0.67 --bits 6 --huffman --finetune-epochs 2 --out sq.lcz --report sq-report
          litecnn compress runs/alex --prune 0.65 --fc-prune 0.91 --bits 8 --fc-bits 5 --huffman --out alex.lcz
          litecnn compress runs/mnv2 --bits 8 --linear --per-channel --symmetric --calibrate entropy --out mnv2-int8.lcz
          litecnn compress runs/mnv1 --structured 0.5 --finetune-epochs 3 --out mnv1-half.lcz
        """
    )

    @Argument(help: ArgumentHelp("A run directory, a .safetensors weights file, an .onnx file or a .lcz file.", valueName: "model-or-run"))
    var model: String

    @Option(name: .shortAndLong, help: ArgumentHelp("The compressed model file to write (.lcz).", valueName: "file"))
    var out: String

    @Option(help: ArgumentHelp("Also write report.md, size_accuracy.svg and report.json to this directory.", valueName: "dir"))
    var report: String?

    @OptionGroup(title: "Data (default: the run's)") var dataArguments: DataArguments

    @Option(help: ArgumentHelp("Magnitude pruning: fraction of the weights set to zero in every layer.", valueName: "s"))
    var prune: Double?
    @Option(name: .customLong("fc-prune"), help: ArgumentHelp("Sparsity of the fully connected layers (default: --prune).", valueName: "s"))
    var fcPrune: Double?
    @Option(name: .customLong("layer-prune"), parsing: .singleValue,
            help: ArgumentHelp("Sparsity of one layer, overriding --prune/--fc-prune: NAME=S with the layer's weight name (classifier.6 or classifier.6.weight); repeat the option for more layers.", valueName: "name=s"))
    var layerPrune: [String] = []
    @Flag(name: .customLong("global"), help: "Prune with one magnitude threshold over all layers instead of per layer.")
    var globalPruning = false
    @Option(name: .customLong("prune-schedule"), help: ArgumentHelp("Gradual pruning during fine-tuning, e.g. agp:0-0.67@0-300/50 (see docs/COMPRESSION.md).", valueName: "spec"))
    var pruneSchedule: String?
    @Option(help: ArgumentHelp("Structured pruning: fraction of multiply-adds to remove by dropping channels.", valueName: "r"))
    var structured: Double?
    @Option(name: .customLong("channel-multiple"), help: ArgumentHelp("--structured keeps a multiple of this many channels per layer (vector width of the kernels).", valueName: "n"))
    var channelMultiple = 8

    @Option(help: ArgumentHelp("Bits per weight: 2^B shared values per layer (k-means), or B-bit integers with --linear.", valueName: "b"))
    var bits: Int?
    @Option(name: .customLong("fc-bits"), help: ArgumentHelp("Bits of the fully connected layers (default: --bits).", valueName: "b"))
    var fcBits: Int?
    @Flag(help: "Linear (integer) quantization instead of k-means weight sharing.")
    var linear = false
    @Flag(name: .customLong("per-channel"), help: "--linear: one scale per output channel instead of per tensor.")
    var perChannel = false
    @Flag(help: "--linear: symmetric range, zero point 0.")
    var symmetric = false
    @Option(help: ArgumentHelp("Calibrate int8 activation ranges: minmax, percentile or entropy.", valueName: "method"))
    var calibrate: String?
    @Option(name: .customLong("calibration-images"), help: ArgumentHelp("Training images used for calibration.", valueName: "n"))
    var calibrationImages = 256

    @Flag(help: "Huffman-code codebook indices and sparse gaps.")
    var huffman = false

    @Option(help: ArgumentHelp("Truncated SVD of the fully connected layers keeping this fraction of energy.", valueName: "e"))
    var svd: Double?
    @Option(help: ArgumentHelp("Tucker-2 (1×1 → k×k → 1×1) of the k×k convolutions keeping this energy.", valueName: "e"))
    var tucker: Double?
    @Option(help: ArgumentHelp("Spatial factorization (k×1 then 1×k) of the k×k convolutions keeping this energy.", valueName: "e"))
    var spatial: Double?

    @Option(name: .customLong("finetune-epochs"), help: ArgumentHelp("Epochs of fine-tuning after each stage (0 = none).", valueName: "n"))
    var finetuneEpochs = 0
    @Option(name: .customLong("finetune-lr"), help: ArgumentHelp("Learning rate of fine-tuning (cosine to 0).", valueName: "lr"))
    var finetuneLearningRate: Float = 0.001
    @Option(help: ArgumentHelp("Distill fine-tuning from this model (run directory, weights, .onnx or .lcz).", valueName: "model"))
    var teacher: String?

    @Option(help: ArgumentHelp("Images per evaluation batch.", valueName: "b"))
    var batch = 64
    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?
    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be between 1 and 4096, got \(batch)") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be between 1 and 1024, got \(threads)") }
        _ = try layerSparsities()
        do { try plan().validate() } catch { throw ValidationError("\(error)") }
        let hasStage = prune != nil || fcPrune != nil || !layerPrune.isEmpty || pruneSchedule != nil || structured != nil || bits != nil
            || fcBits != nil || huffman || svd != nil || tucker != nil || spatial != nil || calibrate != nil
        guard hasStage else {
            throw ValidationError("nothing to do: give at least one of --prune, --prune-schedule, --structured, --bits, --huffman, --svd, --tucker, --spatial, --calibrate")
        }
    }

    func plan() -> CompressionPlan {
        var plan = CompressionPlan(svdEnergy: svd, tuckerEnergy: tucker, spatialEnergy: spatial, structuredReduction: structured,
                        channelMultiple: channelMultiple, sparsity: prune, fcSparsity: fcPrune, globalPruning: globalPruning, pruneSchedule: pruneSchedule,
                        bits: bits, fcBits: fcBits, linear: linear, perChannel: perChannel, symmetric: symmetric,
                        calibration: calibrate, calibrationImages: calibrationImages, huffman: huffman,
                        finetuneEpochs: finetuneEpochs, finetuneLearningRate: finetuneLearningRate)
        if let layers = try? layerSparsities(), !layers.isEmpty { plan.layerSparsity = layers }
        return plan
    }

    /// `--layer-prune NAME=S` options as a sparsity per name; a malformed one is a validation error.
    func layerSparsities() throws -> [String: Double] {
        var layers: [String: Double] = [:]
        for entry in layerPrune {
            let parts = entry.split(separator: "=", maxSplits: 1)
            guard parts.count == 2, !parts[0].isEmpty, let value = Double(parts[1]) else {
                throw ValidationError("--layer-prune takes NAME=S (e.g. classifier.6=0.77), got '\(entry)'")
            }
            layers[String(parts[0])] = value
        }
        return layers
    }

    func run() throws {
        if let threads { WorkerPool.shared.threadCount = threads }
        let progress = TrainingProgressBar()
        defer { progress.clear() }
        progress.status("loading \(model)")
        let (source, loaded) = try CompressionSource.load(model, dataArguments: dataArguments)
        var configuration = loaded
        if let threads { configuration.threads = threads }
        guard source.isRun || dataArguments.data != nil else {
            throw ValidationError("--data is required unless MODEL_OR_RUN is a run directory (shapes or a path)")
        }
        progress.status("opening \(configuration.data)")
        let data: DatasetSplits
        do { data = try Trainer.openData(configuration) } catch { throw CommandError("--data \(configuration.data): \(error)") }

        var teacherModel: (any Layer)?
        if let teacher {
            progress.status("loading the teacher \(teacher)")
            let t = try CompressionSource.load(teacher, resolution: configuration.resolution)
            guard t.imageShape == source.imageShape else {
                throw CommandError("--teacher \(teacher): takes \(t.imageShape) images; the model takes \(source.imageShape)")
            }
            teacherModel = try GraphNetwork(graph: t.graph, imageShape: t.imageShape)
        }

        let outURL = URL(fileURLWithPath: out)
        let work = outURL.deletingLastPathComponent()
            .appendingPathComponent(".\(outURL.lastPathComponent).work-\(ProcessInfo.processInfo.processIdentifier)")
        defer { try? FileManager.default.removeItem(at: work) }
        let compressor: Compressor
        do {
            compressor = try Compressor(graph: source.graph, imageShape: source.imageShape, plan: plan(), data: data,
                                        configuration: configuration, teacher: teacherModel, workDirectory: work,
                                        evaluationBatch: batch)
        } catch { throw CommandError("\(error)") }
        compressor.onStatus = { progress.status($0) }
        compressor.onStep = { progress.step($0) }
        compressor.onEvaluation = { progress.evaluation(done: $0, total: $1) }
        let result: CompressionResult
        do { result = try compressor.run() } catch { throw CommandError("\(error)") }

        try writeFileAtomically(result.bytes, to: outURL)
        let summary = CompressionSummary(model: source.label, data: data.description, output: outURL.path, result: result)
        if let report {
            let dir = URL(fileURLWithPath: report)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try writeFileAtomically(Array(CompressionReport.markdown(summary).utf8), to: dir.appendingPathComponent("report.md"))
            try writeFileAtomically(Array(CompressionReport.svg(summary).utf8), to: dir.appendingPathComponent("size_accuracy.svg"))
            try writeFileAtomically(Array(try encodeJSON(summary).utf8), to: dir.appendingPathComponent("report.json"))
        }
        progress.clear()
        if json {
            say(try encodeJSON(summary))
            return
        }
        say(Self.render(summary))
    }

    static func render(_ s: CompressionSummary) -> String {
        var lines = ["\(s.model) → \(s.output)", ""]
        let header = ["stage", "size", "ratio", "top-1", "top-5", "what"]
        var rows = [header]
        for r in s.stages {
            rows.append([r.stage, CompressionReport.formatBytes(r.bytes), String(format: "%.1f×", r.ratio),
                         String(format: "%.2f", r.top1), String(format: "%.2f", r.top5), r.detail])
        }
        let widths = (0..<header.count - 1).map { c in rows.map { $0[c].count }.max() ?? 0 }
        for row in rows {
            var line = ""
            for c in 0..<header.count - 1 {
                let cell = row[c]
                line += c == 0 ? cell.padding(toLength: widths[c], withPad: " ", startingAt: 0)
                               : String(repeating: " ", count: widths[c] - cell.count) + cell
                line += "  "
            }
            lines.append(line + row.last!)
        }
        lines.append("")
        lines.append("\(CompressionReport.formatBytes(s.bytes)) (\(s.bytes) bytes), " + String(format: "%.1f× smaller than fp32; top-1 %.2f%% → %.2f%%", s.ratio, s.top1Before, s.top1After))
        return lines.joined(separator: "\n")
    }
}

/// A model to compress (or a teacher) as a graph, with the training settings it came with.
struct CompressionSource {
    var graph: Graph
    var label: String
    /// `[C, H, W]`.
    var imageShape: [Int]
    /// The run's configuration, or defaults for files.
    var configuration: TrainingConfiguration
    var isRun: Bool

    /// Loads a run directory, weights file, .onnx or .lcz file. `resolution` applies to weights files (default 32)
    /// and to ONNX/.lcz files with free spatial dimensions.
    static func load(_ path: String, resolution: Int?) throws -> CompressionSource {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw CommandError("\(path): no such file or run directory")
        }
        if isDirectory.boolValue {
            guard RunDirectory.isRunDirectory(path) else {
                throw CommandError("\(path): a directory without config.json is not a run directory")
            }
            let run = RunDirectory(path: path)
            let configuration: TrainingConfiguration
            do { configuration = try TrainingConfiguration.read(from: run.configuration) } catch { throw CommandError("\(error)") }
            guard FileManager.default.fileExists(atPath: run.model.path) else {
                throw CommandError("\(run.model.path) does not exist: the run has not finished an epoch yet")
            }
            return try fromWeights(run.model, resolution: resolution ?? configuration.resolution, configuration: configuration, isRun: true)
        }
        let url = URL(fileURLWithPath: path)
        let ext = url.pathExtension.lowercased()
        if ext == CompressedModelFile.fileExtension || CompressedModelFile.looksLikeCompressedModel(url) {
            let graph: Graph
            do { graph = try CompressedModelFile.read(url).decodedGraph() } catch { throw CommandError("\(path): \(error)") }
            return try fromGraph(graph, label: url.lastPathComponent, file: path, resolution: resolution)
        }
        if ext == "onnx" {
            let graph: Graph
            do { graph = try ONNXFile.load(contentsOf: url) } catch { throw CommandError("\(path): cannot load the ONNX model: \(error)") }
            return try fromGraph(graph, label: url.lastPathComponent, file: path, resolution: resolution)
        }
        return try fromWeights(url, resolution: resolution ?? 32, configuration: nil, isRun: false)
    }

    /// Loads `path` and merges the data flags into its configuration: the resolution is the model's, and so are the
    /// channels unless `--channels` says otherwise; a run given `--data` takes its classes from the new data.
    static func load(_ path: String, dataArguments: DataArguments) throws -> (source: CompressionSource, configuration: TrainingConfiguration) {
        let source = try load(path, resolution: dataArguments.resolution)
        var merger = ConfigurationMerger(source.configuration, resuming: false, source: "")
        try dataArguments.apply(to: &merger)
        var configuration = merger.configuration
        if source.isRun, dataArguments.data != nil { configuration.classes = nil }
        if dataArguments.channels == nil { configuration.channels = source.imageShape[0] }
        configuration.resolution = source.imageShape[1]
        return (source, configuration)
    }

    private static func fromWeights(_ url: URL, resolution: Int, configuration: TrainingConfiguration?, isRun: Bool) throws -> CompressionSource {
        let loaded: (name: String, options: ModelOptions, model: any Layer)
        do { loaded = try loadZooModel(from: url) } catch { throw CommandError("\(url.path): cannot load the weights: \(error)") }
        loaded.model.eval()
        let graph: Graph
        do {
            graph = try exportGraph(loaded.model, inputChannels: loaded.options.inputChannels, height: resolution, width: resolution)
        } catch { throw CommandError("\(loaded.name): cannot export at \(resolution)×\(resolution): \(error)") }
        var c = configuration ?? TrainingConfiguration(model: loaded.name)
        c.resolution = resolution
        return CompressionSource(graph: graph, label: loaded.name, imageShape: [loaded.options.inputChannels, resolution, resolution],
                                 configuration: c, isRun: isRun)
    }

    private static func fromGraph(_ graph: Graph, label: String, file: String, resolution: Int?) throws -> CompressionSource {
        guard let input = graph.inputs.first, let dims = input.shape, dims.count == 4, let channels = dims[1].value else {
            throw CommandError("\(file): expected one image input [N, C, H, W] with a fixed C")
        }
        let h = dims[2].value ?? resolution ?? 224, w = dims[3].value ?? resolution ?? 224
        guard h == w else { throw CommandError("\(file): input is \(h)×\(w); compression evaluates square images") }
        if let resolution, resolution != h {
            throw CommandError("\(file): the input is fixed at \(h)×\(w); --resolution \(resolution) does not apply")
        }
        var c = TrainingConfiguration(model: label)
        c.resolution = h
        return CompressionSource(graph: graph, label: label, imageShape: [channels, h, w], configuration: c, isRun: false)
    }
}
