import ArgumentParser
import Foundation
import LiteCNN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `litecnn bench MODEL`: latency, throughput and memory of the inference runtime on one model.
struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Measure a model's inference latency, throughput and memory.",
        discussion: """
        Sequence: load MODEL (parse the ONNX file, or build and export a zoo model), plan it for \
        [batch, C, H, W] (fusions, packed weights, memory plan), run once — the time until that first output is \
        first_inference_ms — then --warmup untimed runs and --runs timed runs on the same seeded random input. \
        With a batch of several images, the first runs also time the ways to run it (--batch-splitting auto: whole, \
        per image, per thread) and keep the fastest; warm-up lasts until that choice is made, so timed runs never \
        include the trials. \
        load_ms (= parse_ms + compile_ms + plan_ms: reading the file; folding and fusing; packing weights and \
        planning memory) ends where the first run starts. Latency is per batch: median and 90th percentile \
        (nearest rank) in milliseconds; images/s = \
        batch × 1000 / median. peak_activation_bytes is the engine's planned activation memory; peak_rss_bytes is \
        the process's peak resident memory (VmHWM on Linux, ru_maxrss elsewhere), weights and code included.

        Environment: LITECNN_THREADS (threads when --threads is not given), LITECNN_PIN_THREADS=0 (do not bind \
        threads to processors), LITECNN_HUGE_PAGES=1 (packed weights on transparent huge pages too: a few percent \
        faster on large weights in a long-running process, a slower first inference on a VM that returns free \
        memory to its host) or =0 (no huge pages at all). docs/RUNTIME.md explains each.

        Examples:
          litecnn bench mobilenet_v3_small
          litecnn bench ~/.cache/litecnn-bench/onnx/mobilenet_v2.onnx --threads 1 --batch 8 --runs 50
          litecnn bench efficientnet_b0 --resolution 160 --json
        """
    )

    @OptionGroup var source: ModelSourceArguments

    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?

    @Option(help: ArgumentHelp("Images per inference.", valueName: "b"))
    var batch: Int = 1

    @Option(help: ArgumentHelp("Timed runs.", valueName: "r"))
    var runs: Int = 30

    @Option(help: ArgumentHelp("Untimed runs after the first inference.", valueName: "w"))
    var warmup: Int = 5

    @Option(name: .customLong("batch-splitting"), help: ArgumentHelp("How a batch of several images runs: auto (time the others on the first runs, keep the fastest), never (one plan; every operator splits its work over the threads), per-image (one lane per thread, each running its share of the images one at a time, in cache) or per-thread (one lane per thread, each running its share as one sub-batch).", valueName: "way"))
    var batchSplitting: String = "auto"

    static let splittingNames: [String: InferenceOptions.BatchSplitting] = [
        "auto": .automatic, "never": .never, "per-image": .perImage, "per-thread": .perThread,
    ]
    static let splittingDescriptions = [
        "never": "whole: every operator split over the threads", "per-image": "one lane per thread, one image at a time",
        "per-thread": "one lane per thread, one sub-batch each",
    ]

    @Flag(help: "Also time every step of the plan and print where the time goes: totals per operator kind and the slowest steps (in --json: \"profile\"). The profile runs the whole batch as one plan, whatever --batch-splitting chose.")
    var profile = false

    @Flag(help: "Print JSON: {model, threads, batch, resolution, runs, warmup, first_inference_ms, load_ms, median_ms, p90_ms, min_ms, mean_ms, images_per_s, peak_activation_bytes, peak_rss_bytes, batch_splitting}.")
    var json = false

    func validate() throws {
        if let threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must be between 1 and 1024, got \(threads)")
        }
        guard (1...4096).contains(batch) else { throw ValidationError("--batch must be between 1 and 4096, got \(batch)") }
        guard (1...1_000_000).contains(runs) else { throw ValidationError("--runs must be between 1 and 1000000, got \(runs)") }
        guard (0...1_000_000).contains(warmup) else { throw ValidationError("--warmup must be between 0 and 1000000, got \(warmup)") }
        guard Self.splittingNames[batchSplitting] != nil else {
            throw ValidationError("--batch-splitting must be auto, never, per-image or per-thread, got \(batchSplitting)")
        }
    }

    struct Report: Codable {
        var model: String
        var threads: Int
        var batch: Int
        var inputShape: [Int]
        var runs: Int
        var warmup: Int
        var loadMS: Double
        var parseMS: Double
        var compileMS: Double
        var planMS: Double
        var firstInferenceMS: Double
        var medianMS: Double
        var p90MS: Double
        var minMS: Double
        var meanMS: Double
        var imagesPerS: Double
        var peakActivationBytes: Int
        var peakRSSBytes: Int?
        /// How the timed runs ran the batch: `never` (whole), `per-image` or `per-thread`.
        var batchSplitting: String
        var profile: [InferenceEngine.StepTime]?

        enum CodingKeys: String, CodingKey {
            case model, threads, batch, runs, warmup, profile
            case inputShape = "input_shape", loadMS = "load_ms", firstInferenceMS = "first_inference_ms"
            case parseMS = "parse_ms", compileMS = "compile_ms", planMS = "plan_ms"
            case medianMS = "median_ms", p90MS = "p90_ms", minMS = "min_ms", meanMS = "mean_ms"
            case imagesPerS = "images_per_s", peakActivationBytes = "peak_activation_bytes", peakRSSBytes = "peak_rss_bytes"
            case batchSplitting = "batch_splitting"
        }
    }

    func run() throws {
        if let threads { WorkerPool.shared.threadCount = threads }
        WorkerPool.shared.bindCallingThread()  // this thread runs every inference: keep it off the workers' processors
        let effectiveThreads = threads.map { min($0, WorkerPool.shared.maximumThreads) } ?? WorkerPool.shared.threadCount
        let progress = ProgressLine(enabled: true)

        // Time to first inference: load + plan + one run.
        let start = monotonicSeconds()
        progress.update("loading \(source.model)")
        var loaded = try source.load()
        if let fixed = loaded.fixedBatch, fixed != batch {
            throw CommandError("\(loaded.label): the graph's batch dimension is fixed at \(fixed); use --batch \(fixed)")
        }
        let shape = [batch] + loaded.imageShape
        progress.update("planning \(loaded.label) for \(shape)")
        let engine: InferenceEngine
        let parsed = monotonicSeconds()
        var compiled = parsed
        do {
            engine = try InferenceEngine(graph: loaded.takeGraph(), options: InferenceOptions(threads: threads, batchSplitting: Self.splittingNames[batchSplitting] ?? .automatic))
            compiled = monotonicSeconds()
            try engine.prepare(inputShape: shape)
        } catch {
            throw CommandError("\(loaded.label): cannot plan the graph for input \(shape): \(error)")
        }
        let planned = monotonicSeconds()
        let input = Self.seededInput(shape: shape)
        do { _ = try engine.run(input) } catch {
            throw CommandError("\(loaded.label): inference failed on input \(shape): \(error)")
        }
        let first = monotonicSeconds()

        for i in 0..<warmup {
            progress.update("warm-up \(i + 1)/\(warmup)")
            _ = try engine.run(input)
        }
        var trials = 0
        while engine.batchSplitting(forInputShape: shape) == .automatic && trials < 100 {
            trials += 1
            progress.update("timing the ways to run a batch (\(trials))")
            _ = try engine.run(input)
        }
        let way = engine.batchSplitting(forInputShape: shape)
        let wayName = Self.splittingNames.first { $0.value == way && $0.key != "auto" }?.key ?? "never"
        var times: [Double] = []
        times.reserveCapacity(runs)
        for i in 0..<runs {
            let t0 = monotonicSeconds()
            _ = try engine.run(input)
            times.append((monotonicSeconds() - t0) * 1000)
            progress.update("run \(i + 1)/\(runs): \(String(format: "%.2f", times.last!)) ms")
        }
        progress.finish()
        let steps = profile ? try engine.profile(input, runs: runs) : nil

        let sorted = times.sorted()
        let median = sorted.count % 2 == 1 ? sorted[sorted.count / 2]
            : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
        let p90 = sorted[min(sorted.count - 1, Int((0.9 * Double(sorted.count)).rounded(.up)) - 1)]
        let report = Report(
            model: loaded.label, threads: effectiveThreads, batch: batch, inputShape: shape, runs: runs, warmup: warmup,
            loadMS: (planned - start) * 1000, parseMS: (parsed - start) * 1000, compileMS: (compiled - parsed) * 1000,
            planMS: (planned - compiled) * 1000, firstInferenceMS: (first - start) * 1000,
            medianMS: median, p90MS: p90, minMS: sorted[0], meanMS: times.reduce(0, +) / Double(times.count),
            imagesPerS: Double(batch) * 1000 / median, peakActivationBytes: engine.peakActivationBytes,
            peakRSSBytes: peakResidentBytes(), batchSplitting: wayName, profile: steps)
        if json {
            print(try encodeJSON(report))
            return
        }
        func ms(_ v: Double) -> String { String(format: "%.2f ms", v) }
        let rows: [[String]] = [
            ["model", report.model],
            ["input", ModelSummary.shapeText(shape) + " NCHW"],
            ["threads", String(report.threads)],
            ["batch", "\(batch)" + (batch > 1 ? " (\(Self.splittingDescriptions[wayName] ?? wayName))" : "")],
            ["load + plan", ms(report.loadMS) + " (read \(ms(report.parseMS)), compile \(ms(report.compileMS)), plan \(ms(report.planMS)))"],
            ["first inference", ms(report.firstInferenceMS) + " (from start)"],
            ["median", ms(report.medianMS) + " (\(runs) runs after \(warmup) warm-up)"],
            ["p90", ms(report.p90MS)],
            ["min / mean", ms(report.minMS) + " / " + ms(report.meanMS)],
            ["throughput", String(format: "%.1f images/s", report.imagesPerS)],
            ["peak activations", ModelSummary.megabytes(report.peakActivationBytes) + " MB"],
            ["peak RSS", report.peakRSSBytes.map { ModelSummary.megabytes($0) + " MB" } ?? "unknown"],
        ]
        print(renderTable(header: ["Measure", "Value"], rows: rows, rightAligned: []))
        if let steps { Self.printProfile(steps) }
    }

    /// Per-operator totals, then the ten slowest steps (wall and calling-thread CPU time).
    static func printProfile(_ steps: [InferenceEngine.StepTime]) {
        let total = steps.reduce(0) { $0 + $1.milliseconds }, totalCPU = steps.reduce(0) { $0 + $1.cpuMilliseconds }
        var byOp: [String: (ms: Double, cpu: Double, count: Int)] = [:]
        for s in steps {
            byOp[s.op, default: (0, 0, 0)].ms += s.milliseconds
            byOp[s.op, default: (0, 0, 0)].cpu += s.cpuMilliseconds
            byOp[s.op, default: (0, 0, 0)].count += 1
        }
        let share = { (ms: Double) in String(format: "%.1f%%", 100 * ms / max(total, 1e-9)) }
        let opRows = byOp.sorted { $0.value.ms > $1.value.ms }.map { op, v in
            [op, String(v.count), String(format: "%.3f", v.ms), share(v.ms), String(format: "%.3f", v.cpu)]
        }
        print("\nProfile (median per step over the timed runs; wall sum \(String(format: "%.2f", total)) ms, "
              + "calling thread's CPU sum \(String(format: "%.2f", totalCPU)) ms)")
        print(renderTable(header: ["Operator", "Steps", "ms", "Share", "CPU ms"], rows: opRows, rightAligned: [1, 2, 3, 4]))
        let slowest = steps.sorted { $0.milliseconds > $1.milliseconds }.prefix(10).map {
            [String($0.index), $0.op, $0.node, String(format: "%.3f", $0.milliseconds), share($0.milliseconds),
             String(format: "%.3f", $0.cpuMilliseconds)]
        }
        print(renderTable(header: ["Step", "Operator", "Node", "ms", "Share", "CPU ms"], rows: Array(slowest),
                          rightAligned: [0, 3, 4, 5]))
    }

    /// A deterministic NCHW input: values uniform in [-1, 1) from a fixed-seed generator.
    static func seededInput(shape: [Int]) -> Tensor {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        return Tensor(shape: shape, layout: .nchw) { out in
            for i in out.indices {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                out[i] = Float(state >> 40) / Float(1 << 23) - 1
            }
        }
    }
}

/// The process's peak resident set size in bytes: `VmHWM` of /proc/self/status on Linux, `ru_maxrss` elsewhere.
func peakResidentBytes() -> Int? {
    #if os(Linux)
    if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) {
        for line in status.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if fields.count >= 2, let kilobytes = Int(fields[1]) { return kilobytes * 1024 }
        }
    }
    #endif
    var usage = rusage()
    #if os(Linux)
    let who = RUSAGE_SELF.rawValue
    #else
    let who = RUSAGE_SELF
    #endif
    guard getrusage(who, &usage) == 0 else { return nil }
    #if canImport(Darwin)
    return Int(usage.ru_maxrss)          // bytes on macOS
    #else
    return Int(usage.ru_maxrss) * 1024   // kilobytes on Linux
    #endif
}

/// A one-line status on standard error, redrawn in place, shown only on a terminal and only once a run has
/// lasted more than a second (short benchmarks stay quiet).
final class ProgressLine {
    private let enabled: Bool
    private let start = monotonicSeconds()
    private var lastDraw = 0.0
    private var drawn = false

    init(enabled: Bool) { self.enabled = enabled && isatty(STDERR_FILENO) != 0 }

    func update(_ text: @autoclosure () -> String) {
        guard enabled else { return }
        let now = monotonicSeconds()
        guard now - start > 1, now - lastDraw > 0.1 else { return }
        lastDraw = now
        drawn = true
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + text()).utf8))
    }

    func finish() {
        guard drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
    }
}
