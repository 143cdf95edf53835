import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn eval RUN_DIR|WEIGHTS --data …`: accuracy, loss and confusion matrix of a trained model on a test split.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a trained model on the test split: top-1, top-5, loss, per-class accuracy, confusion matrix.",
        discussion: """
        MODEL is a run directory written by `litecnn train` (its model.safetensors is evaluated on the data, \
        resolution and normalization of its config.json, each of which a flag may override), a weights file \
        written by saveZooModel (`litecnn weights`, RUN_DIR/model.safetensors), or an .onnx or .lcz file (run by the \
        inference runtime at the file's own input size); files need --data. The model runs \
        in eval mode (BatchNorm running statistics, no dropout) on the test split, without augmentation: resize of \
        the shorter side, centre crop to --resolution, normalize with --mean/--std.

        Accuracies are in percent; the loss is the mean cross-entropy (no label smoothing). The confusion matrix \
        (rows: true class, columns: predicted) is printed for up to 20 classes. --json prints {model, data, \
        samples, top1, top5, loss, class_names, per_class_top1, confusion}.

        Examples:
          litecnn eval runs/demo
          litecnn eval runs/mnv2/model.safetensors --data shapes --samples 2000 --resolution 32
          litecnn eval runs/cifar --data data/cifar-10-batches-bin --json
        """
    )

    @Argument(help: ArgumentHelp("A run directory, a weights file (.safetensors with litecnn.model metadata), or an .onnx or .lcz file.", valueName: "run-dir|file"))
    var model: String

    @OptionGroup(title: "Data (default: the run's)") var dataArguments: DataArguments

    @Option(help: ArgumentHelp("Images per forward pass.", valueName: "b"))
    var batch: Int = 64

    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?

    @Flag(help: "Print the result as JSON.")
    var json = false

    func validate() throws {
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be between 1 and 4096, got \(batch)") }
        if let threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must be between 1 and 1024, got \(threads)")
        }
    }

    struct Report: Codable {
        var model: String
        var weights: String
        var data: String
        var samples: Int
        var resolution: Int
        var top1: Double
        var top5: Double
        var loss: Double
        var classNames: [String]
        var perClassTop1: [Double?]
        var confusion: [[Int]]

        enum CodingKeys: String, CodingKey {
            case model, weights, data, samples, resolution, top1, top5, loss, confusion
            case classNames = "class_names", perClassTop1 = "per_class_top1"
        }
    }

    func run() throws {
        if let threads { WorkerPool.shared.threadCount = threads }
        let progress = TrainingProgressBar()
        let isRun = RunDirectory.isRunDirectory(model)
        var configuration: TrainingConfiguration
        let weightsURL: URL
        if isRun {
            let run = RunDirectory(path: model)
            do { configuration = try TrainingConfiguration.read(from: run.configuration) } catch { throw CommandError("\(error)") }
            weightsURL = run.model
            guard FileManager.default.fileExists(atPath: weightsURL.path) else {
                throw CommandError("\(weightsURL.path) does not exist: the run has not finished an epoch or a checkpoint yet")
            }
        } else if let kind = try? ModelSource.classify(model), kind.isGraphFile {
            try evaluateGraphFile(progress: progress)
            return
        } else {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) else {
                throw CommandError("\(model): no such file or run directory")
            }
            if isDirectory.boolValue {
                throw CommandError("\(model): a directory without config.json is not a run directory; pass RUN_DIR or a weights file")
            }
            guard dataArguments.data != nil else {
                throw ValidationError("--data is required when evaluating a weights file (shapes or a path)")
            }
            configuration = TrainingConfiguration(model: "")
            weightsURL = URL(fileURLWithPath: model)
        }
        progress.status("loading \(weightsURL.lastPathComponent)")
        let loaded: (name: String, options: ModelOptions, model: any Layer)
        do { loaded = try loadZooModel(from: weightsURL) } catch {
            progress.clear()
            throw CommandError("\(weightsURL.path): cannot load the weights: \(error)")
        }
        // Flags override the run's data settings (evaluating on other data is allowed).
        var merger = ConfigurationMerger(configuration, resuming: false, source: "")
        try dataArguments.apply(to: &merger)
        configuration = merger.configuration
        configuration.model = loaded.name
        if dataArguments.channels == nil, configuration.data == "shapes" { configuration.channels = loaded.options.inputChannels }
        if dataArguments.data != nil, dataArguments.channels == nil, configuration.data != "shapes" { configuration.channels = nil }
        if isRun, dataArguments.data != nil { configuration.classes = nil }

        progress.status("opening \(configuration.data)")
        let data: DatasetSplits
        do { data = try Trainer.openData(configuration) } catch {
            progress.clear()
            throw CommandError("--data \(configuration.data): \(error)")
        }
        let test = data.test
        guard test.classCount == loaded.options.classCount else {
            progress.clear()
            throw CommandError("\(weightsURL.path): \(loaded.name) has \(loaded.options.classCount) outputs but \(data.description) has \(test.classCount) classes")
        }
        let channels = loaded.options.inputChannels
        let transforms: [any ImageTransform]
        do {
            let normalization = try configuration.normalization(channels: channels)
            transforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: channels,
                                                       mean: normalization.mean, std: normalization.std)
        } catch {
            progress.clear()
            throw CommandError("\(error)")
        }
        let metrics: ClassificationMetrics
        do {
            metrics = try Evaluation.evaluate(loaded.model, on: test, transforms: transforms, batchSize: batch) { done, total in
                progress.evaluation(done: done, total: total)
            }
        } catch {
            progress.clear()
            throw CommandError("\(data.description): \(error)")
        }
        progress.clear()

        try publish(model: loaded.name, weights: weightsURL.path, data: data, resolution: configuration.resolution, metrics: metrics)
    }

    /// Prints the report of `metrics` (JSON with --json).
    private func publish(model label: String, weights: String, data: DatasetSplits, resolution: Int,
                         metrics: ClassificationMetrics) throws {
        let test = data.test
        let report = Report(model: label, weights: weights, data: data.description, samples: metrics.count,
                            resolution: resolution, top1: metrics.top1, top5: metrics.top5, loss: metrics.meanLoss,
                            classNames: test.classNames, perClassTop1: metrics.perClassAccuracy, confusion: metrics.confusion)
        if json {
            say(try encodeJSON(report))
            return
        }
        say(Self.render(report, chance: 100 / Double(max(test.classCount, 1))))
    }

    /// Evaluates an .onnx or .lcz file with the inference runtime (the file carries its own input size).
    private func evaluateGraphFile(progress: TrainingProgressBar) throws {
        guard dataArguments.data != nil else {
            throw ValidationError("--data is required when evaluating an .onnx or .lcz file (shapes or a path)")
        }
        progress.status("loading \(model)")
        let source = try CompressionSource.load(model, resolution: dataArguments.resolution)
        var merger = ConfigurationMerger(source.configuration, resuming: false, source: "")
        try dataArguments.apply(to: &merger)
        var configuration = merger.configuration
        configuration.resolution = source.imageShape[1]
        if dataArguments.channels == nil { configuration.channels = source.imageShape[0] }
        progress.status("opening \(configuration.data)")
        let data: DatasetSplits
        do { data = try Trainer.openData(configuration) } catch {
            progress.clear()
            throw CommandError("--data \(configuration.data): \(error)")
        }
        let metrics: ClassificationMetrics
        do {
            let normalization = try configuration.normalization(channels: source.imageShape[0])
            let transforms = try Evaluation.testTransforms(resolution: configuration.resolution, channels: source.imageShape[0],
                                                           mean: normalization.mean, std: normalization.std)
            metrics = try GraphEvaluation.evaluate(source.graph, on: data.test, transforms: transforms, batchSize: batch,
                                                   threads: threads) { done, total in progress.evaluation(done: done, total: total) }
        } catch {
            progress.clear()
            throw CommandError("\(model) on \(data.description): \(error)")
        }
        progress.clear()
        try publish(model: source.label, weights: model, data: data, resolution: configuration.resolution, metrics: metrics)
    }

    /// The text report: summary, per-class accuracy and (≤ 20 classes) the confusion matrix.
    static func render(_ report: Report, chance: Double) -> String {
        var lines: [String] = []
        lines.append("\(report.model) (\(report.weights)) on \(report.data), \(report.samples) test images at \(report.resolution)×\(report.resolution)")
        lines.append(String(format: "top-1 %.2f%%   top-5 %.2f%%   loss %.4f   (chance: %.1f%%)", report.top1, report.top5, report.loss, chance))
        lines.append("")
        let rows: [[String]] = report.classNames.enumerated().map { index, name in
            let total = report.confusion[index].reduce(0, +)
            return [String(index), name, String(total), report.perClassTop1[index].map { String(format: "%.1f", $0) } ?? "-"]
        }
        lines.append(renderTable(header: ["Class", "Name", "Images", "Top-1 %"], rows: rows, rightAligned: [0, 2, 3]))
        if report.classNames.count <= 20 {
            lines.append("")
            lines.append("Confusion matrix (rows: true class, columns: predicted):")
            let header = ["true\\pred"] + report.classNames.indices.map(String.init)
            let matrix = report.confusion.enumerated().map { index, row in
                ["\(index) \(report.classNames[index])"] + row.map(String.init)
            }
            lines.append(renderTable(header: header, rows: matrix, rightAligned: Set(1...report.classNames.count)))
        }
        return lines.joined(separator: "\n")
    }
}
