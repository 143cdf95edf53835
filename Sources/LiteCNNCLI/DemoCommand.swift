import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn demo`: the whole story in one command — generate data, train a small network, evaluate it, save it.
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Train a small CNN on the built-in shapes data set, evaluate it and explain what happened (a few minutes).",
        discussion: """
        Generates the built-in `shapes` data set (10 classes of rotated, coloured shapes over gradients, strokes and \
        noise), trains a ResNet-18 on it at 16×16 from random weights (Adam, warm-up, cosine decay), evaluates it on the \
        held-out test split, and prints the data, the model (parameters, multiply-adds), the epochs, the final \
        accuracy against chance, and where the run directory and the learning-curve plot are, with the commands to \
        try next. It is exactly `litecnn train` with the flags it prints, so every file of a training run is there.

        The run directory defaults to runs/demo-YYYYMMDD-HHMMSS under the current directory.

        Examples:
          litecnn demo
          litecnn demo --epochs 3 --samples 1000     # quicker, lower accuracy
          litecnn demo --out /tmp/demo --threads 2 --json
        """
    )

    @Option(help: ArgumentHelp("Training images to generate (the test split is a fifth of it).", valueName: "n"))
    var samples: Int = 4000
    @Option(help: ArgumentHelp("Passes over the training images.", valueName: "e"))
    var epochs: Int = 5
    @Option(help: ArgumentHelp("Zoo model to train.", valueName: "name"))
    var model: String = "resnet18"
    @Option(help: ArgumentHelp("Its width multiplier (MobileNet, ShuffleNet, EfficientNet).", valueName: "alpha"))
    var width: Double?
    @Option(help: ArgumentHelp("Image height and width in pixels.", valueName: "n"))
    var resolution: Int = 16
    @Option(help: ArgumentHelp("Images per step.", valueName: "b"))
    var batch: Int = 32
    @Option(help: ArgumentHelp("Peak learning rate (Adam, warm-up then cosine decay).", valueName: "x"))
    var lr: Float = 0.002
    @Option(help: ArgumentHelp("Seed of weights, shuffling and augmentation.", valueName: "s"))
    var seed: UInt64 = 0
    @Option(help: ArgumentHelp("The run directory (default: runs/demo-YYYYMMDD-HHMMSS).", valueName: "dir"))
    var out: String?
    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?
    @Flag(help: "Print one JSON object per epoch, then a summary object, instead of the story.")
    var json = false

    func validate() throws {
        guard (100...1_000_000).contains(samples) else { throw ValidationError("--samples must be between 100 and 1000000, got \(samples)") }
        guard (1...1000).contains(epochs) else { throw ValidationError("--epochs must be between 1 and 1000, got \(epochs)") }
        guard (16...512).contains(resolution) else { throw ValidationError("--resolution must be between 16 and 512, got \(resolution)") }
        guard (2...1024).contains(batch) else { throw ValidationError("--batch must be between 2 and 1024, got \(batch)") }
        guard lr.isFinite, lr > 0 else { throw ValidationError("--lr must be > 0, got \(lr)") }
        if let threads, !(1...1024).contains(threads) { throw ValidationError("--threads must be between 1 and 1024, got \(threads)") }
    }

    struct Summary: Codable {
        var runDirectory: String
        var model: String
        var parameters: Int
        var multiplyAdds: Int
        var epochs: Int
        var top1: Double
        var top5: Double
        var loss: Double
        var chance: Double
        var seconds: Double

        enum CodingKeys: String, CodingKey {
            case model, parameters, epochs, top1, top5, loss, chance, seconds
            case runDirectory = "run_dir", multiplyAdds = "multiply_adds"
        }
    }

    func run() throws {
        let start = monotonicSeconds()
        let outPath = out ?? Self.defaultRunDirectory()
        var c = TrainingConfiguration(model: model, data: "shapes", samples: samples, resolution: resolution, epochs: epochs,
                                      batchSize: batch, learningRate: lr, optimizer: .adam, seed: seed)
        c.width = width
        c.weightDecay = 1e-4
        c.schedule = ScheduleKind.cosine.rawValue
        c.warmupEpochs = min(1, Double(epochs) / 4)
        c.augmentation = Augmentation.none.rawValue
        c.threads = threads
        do { try c.validate() } catch { throw CommandError("\(error)") }

        let runDirectory = RunDirectory(path: outPath)
        let session = TrainingSession(json: json)
        let trainer = try session.prepare(c, runDirectory: runDirectory, resume: false)
        let c2 = trainer.configuration
        let parameters = trainer.model.parameterCount
        let macs = trainer.model.multiplyAdds(for: [1, resolution, resolution, c2.channels ?? 3])
        let train = trainer.data.train, test = trainer.data.test
        let chance = 100 / Double(train.classCount)

        if !json {
            say("LiteCNN demo: train a small convolutional network from random weights on this CPU, then test it.\n")
            say("1. Data   `shapes`, generated on the fly: \(train.classCount) classes (\(train.classNames.joined(separator: ", "))).")
            say("          \(train.count) training and \(test.count) test images (disjoint), \(resolution)×\(resolution) RGB; each is a")
            say("          gradient background with distractor strokes and blobs, one rotated coloured shape, and noise.")
            let summary = (try? ModelZoo.entry(named: model).summary) ?? model
            say("2. Model  \(model)\(width.map { " (width \($0))" } ?? ""): \(ModelSummary.grouped(parameters)) parameters, \(ModelSummary.scaled(macs)) multiply-adds per image;")
            say("          \(summary), random weights, \(train.classCount)-way classifier.")
            say("3. Train  \(epochs) epochs × \(trainer.stepsPerEpoch) steps of \(batch) images: Adam, lr \(lr) with warm-up and cosine decay,")
            say("          weight decay 1e-4, seed \(seed), \(WorkerPool.shared.threadCount) threads.")
            say("          Same as: litecnn train --model \(model)\(width.map { " --width \($0)" } ?? "") --data shapes --samples \(samples) --resolution \(resolution) \\")
            say("            --epochs \(epochs) --batch \(batch) --optimizer adam --lr \(lr) --weight-decay 0.0001 --schedule cosine \\")
            say("            --warmup-epochs \(c2.warmupEpochs) --seed \(seed) --out \(outPath)\n")
        }
        let outcome = try session.train(trainer)
        guard outcome == .finished, let last = trainer.state.history.last, let evaluation = trainer.lastEvaluation else {
            throw CommandError("training stopped before the end")
        }
        let seconds = monotonicSeconds() - start
        if json {
            say(try encodeJSONLine(Summary(runDirectory: runDirectory.url.path, model: model, parameters: parameters,
                                           multiplyAdds: macs, epochs: epochs, top1: last.testTop1, top5: last.testTop5,
                                           loss: last.testLoss, chance: chance, seconds: seconds)))
            return
        }
        say("")
        say(String(format: "4. Result test top-1 %.1f%% (chance: %.0f%%, so %.1f× better), top-5 %.1f%%, test loss %.3f.",
                   last.testTop1, chance, last.testTop1 / chance, last.testTop5, last.testLoss))
        say("          Trained in \(TrainingProgressBar.duration(seconds)) at \(String(format: "%.0f", last.imagesPerSecond)) images/s.")
        let perClass = evaluation.perClassAccuracy.enumerated().compactMap { i, a in a.map { (train.classNames[i], $0) } }
        if let best = perClass.max(by: { $0.1 < $1.1 }), let worst = perClass.min(by: { $0.1 < $1.1 }) {
            say("          Easiest class: \(best.0) (\(String(format: "%.0f", best.1))%); hardest: \(worst.0) (\(String(format: "%.0f", worst.1))%).")
        }
        var worstPair: (Int, Int, Int)? = nil
        for (t, row) in evaluation.confusion.enumerated() {
            for (p, n) in row.enumerated() where p != t && n > (worstPair?.2 ?? 0) { worstPair = (t, p, n) }
        }
        if let (t, p, n) = worstPair {
            say("          Most frequent mistake: \(train.classNames[t]) taken for \(train.classNames[p]) (\(n) of \(evaluation.confusion[t].reduce(0, +))).")
        }
        let run = runDirectory.url.path
        say("5. Files  \(run)/")
        say("          model.safetensors (trained weights), checkpoint.safetensors (to resume), config.json,")
        say("          metrics.csv / metrics.json (per epoch), curves.svg (loss and accuracy curves: open it in a browser).")
        say("")
        say("Next:")
        let next = [
            ("litecnn eval \(run)", "per-class accuracy and confusion matrix"),
            ("litecnn train --out \(run) --resume --epochs \(epochs * 2)", "train longer from the checkpoint"),
            ("litecnn export \(run)/model.safetensors --onnx demo.onnx --resolution \(resolution)", "ONNX for other runtimes"),
            ("litecnn bench \(run)/model.safetensors --resolution \(resolution) --batch 32", "inference speed"),
        ]
        let width = next.map(\.0.count).max() ?? 0
        for (command, comment) in next {
            say("  " + command + String(repeating: " ", count: width - command.count) + "   # " + comment)
        }
    }

    static func defaultRunDirectory() -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.dateFormat = "yyyyMMdd-HHmmss"
        return "runs/demo-" + formatter.string(from: Date())
    }
}

/// `value` as one line of JSON with sorted keys.
func encodeJSONLine<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
