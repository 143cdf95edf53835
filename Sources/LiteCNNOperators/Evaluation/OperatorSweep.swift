// Accuracy against multiply-adds and latency for selected configurations and for the two baselines.
import Foundation
import LiteCNNCompression
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor

/// One measured configuration of a sweep.
public struct SweepPoint: Sendable, Codable, Equatable {
    /// `selected`, `uniform`, `width` or `base`.
    public var method: String
    /// What it is: "budget 50 %", "lowrank β=0.5", "width −50 % MACs".
    public var label: String
    /// The multiply-add budget as a fraction of the base's (selected and width points).
    public var budgetFraction: Double?
    public var multiplyAdds: Int
    public var parameters: Int
    /// Median latency at batch 1 (ms), measured with the runtime on this machine.
    public var latencyMs: Double
    /// Top-1 (%) measured on the evaluation images.
    public var top1: Double
    /// Top-1 the bank's one-slot measurements predict (selected and uniform points).
    public var top1Predicted: Double?
    /// Operator per slot ("base" or "lowrank β=0.5"), for selected and uniform points.
    public var operators: [String]?

    enum CodingKeys: String, CodingKey {
        case method, label, operators
        case budgetFraction = "budget_fraction", multiplyAdds = "macs", parameters = "params", latencyMs = "latency_ms"
        case top1 = "top1_measured", top1Predicted = "top1_predicted"
    }
}

/// A sweep over multiply-add budgets (`litecnn operators sweep`).
public struct SweepResult: Sendable, Codable, Equatable {
    public var model: String
    public var base: SweepPoint
    public var selected: [SweepPoint]
    public var uniform: [SweepPoint]
    public var width: [SweepPoint]
    /// Per budget: whether the selected configuration is at least as accurate as the width-scaled base at that
    /// budget and as every uniform configuration that fits the budget.
    public var dominates: [Bool]
}

/// Runs sweeps and renders them.
public enum OperatorSweep {
    /// For every fraction f of the base's multiply-adds: the configuration `OperatorSelection` picks for f·MACs and the
    /// base pruned to f·MACs by uniform channel pruning without retraining (`StructuredPruning`, the width-scaling
    /// baseline); and once, every operator applied to all slots it fits (uniform baseline). Each point is run: top-1
    /// on `evaluation`, median latency over `latencyRuns` runs at batch 1.
    public static func run(model: SwitchableModel, name: String, evaluation: [LabeledBatch], fractions: [Double],
                           latencyRuns: Int = 20, status: ((String) -> Void)? = nil) throws -> SweepResult {
        let bank = model.bank
        let saved = model.configuration
        defer { _ = try? model.apply(saved) }
        func describe(_ c: OperatorConfiguration) -> [String] {
            c.choices.map { $0.map { bank.entries[$0].op.label } ?? "base" }
        }
        func measure(_ c: OperatorConfiguration, method: String, label: String, fraction: Double?) throws -> SweepPoint {
            try model.apply(c)
            let p = OperatorSelection.predict(c, bank: bank)
            return SweepPoint(method: method, label: label, budgetFraction: fraction, multiplyAdds: p.multiplyAdds,
                              parameters: p.parameters, latencyMs: try latency(model.engine, imageShape: bank.imageShape, runs: latencyRuns),
                              top1: try BankBuilder.accuracy(model, on: evaluation).top1, top1Predicted: p.top1,
                              operators: describe(c))
        }
        status?("measuring the base")
        var base = try measure(.base(slotCount: bank.slots.count), method: "base", label: "base", fraction: 1)
        base.operators = nil
        var uniform: [SweepPoint] = []
        var settings: [(OperatorKind, Double)] = []
        for e in bank.entries where !settings.contains(where: { $0.0 == e.op.kind && $0.1 == e.op.beta }) {
            settings.append((e.op.kind, e.op.beta))
        }
        for (kind, beta) in settings {
            let label = kind.label(beta: beta)
            status?("uniform \(label)")
            uniform.append(try measure(OperatorSelection.uniform(bank: bank, kind: kind, beta: beta), method: "uniform",
                                       label: label, fraction: nil))
        }
        var selected: [SweepPoint] = [], width: [SweepPoint] = []
        for f in fractions {
            let budget = Int((Double(bank.base.multiplyAdds) * f).rounded(.down))
            status?("budget \(Int((f * 100).rounded())) %: selecting")
            if let c = try? OperatorSelection.select(bank: bank, budget: .multiplyAdds(budget)) {
                selected.append(try measure(c, method: "selected", label: "budget \(Int((f * 100).rounded())) %", fraction: f))
            }
            status?("budget \(Int((f * 100).rounded())) %: width scaling")
            if f < 1, let (graph, report) = try? StructuredPruning.prune(model.base, imageShape: bank.imageShape, macReduction: 1 - f) {
                let engine = try InferenceEngine(graph: graph)
                let top1 = try accuracy(engine, on: evaluation)
                width.append(SweepPoint(method: "width", label: "width −\(Int(((1 - f) * 100).rounded())) % MACs",
                                        budgetFraction: f, multiplyAdds: report.multiplyAddsAfter,
                                        parameters: report.parametersAfter,
                                        latencyMs: try latency(engine, imageShape: bank.imageShape, runs: latencyRuns),
                                        top1: top1, top1Predicted: nil, operators: nil))
            }
        }
        var dominates: [Bool] = []
        for s in selected {
            let w = width.first { $0.budgetFraction == s.budgetFraction }
            let budget = Double(bank.base.multiplyAdds) * (s.budgetFraction ?? 1)
            let fitting = uniform.filter { Double($0.multiplyAdds) <= budget }
            dominates.append((w.map { s.top1 >= $0.top1 } ?? true) && fitting.allSatisfy { s.top1 >= $0.top1 })
        }
        return SweepResult(model: name, base: base, selected: selected, uniform: uniform, width: width, dominates: dominates)
    }

    /// Top-1 (%) of a plain engine.
    static func accuracy(_ engine: InferenceEngine, on batches: [LabeledBatch]) throws -> Double {
        try BankBuilder.evaluate({ try engine.runNHWC($0) }, on: batches).top1
    }

    /// Median latency (ms) of an engine at batch 1 on an NHWC image of `imageShape` `[C, H, W]`.
    public static func latency(_ engine: InferenceEngine, imageShape: [Int], runs: Int) throws -> Double {
        try latency(engine, inputShape: [1] + imageShape, runs: runs, warmup: 3)
    }

    /// Median wall time (ms) of `runs` runs after `warmup` runs, on an input of NCHW shape `inputShape` given NHWC so
    /// that no layout copy is timed; an input of another rank (a fully connected unit's `[N, C]`) is given as it is.
    static func latency(_ engine: InferenceEngine, inputShape: [Int], runs: Int, warmup: Int) throws -> Double {
        let count = inputShape.reduce(1, *)
        let values = (0..<count).map { Float($0 % 13) / 13 - 0.5 }
        let run: () throws -> Void
        if inputShape.count == 4 {
            let (n, c, h, w) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
            let x = Tensor(shape: [n, h, w, c], scalars: values, layout: .nhwc)
            run = { _ = try engine.runNHWC(x) }
        } else {
            let x = Tensor(shape: inputShape, scalars: values, layout: .plain)
            run = { _ = try engine.run(x) }
        }
        for _ in 0..<warmup { try run() }
        var times: [Double] = []
        for _ in 0..<max(1, runs) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            try run()
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
        }
        times.sort()
        return times[times.count / 2]
    }


    // MARK: Reports

    /// A Markdown table of every point.
    public static func markdown(_ r: SweepResult) -> String {
        var lines = ["# \(r.model): operator selection against the baselines", "",
                     "| method | configuration | MACs (M) | params (M) | latency (ms) | top-1 measured | top-1 predicted |",
                     "|---|---|---:|---:|---:|---:|---:|"]
        func row(_ p: SweepPoint) -> String {
            let predicted = p.top1Predicted.map { String(format: "%.2f", $0) } ?? "–"
            return "| \(p.method) | \(p.label) | " + String(format: "%.1f | %.2f | %.3f | %.2f | ", Double(p.multiplyAdds) / 1e6,
                                                              Double(p.parameters) / 1e6, p.latencyMs, p.top1) + predicted + " |"
        }
        lines.append(row(r.base))
        for p in r.selected + r.width + r.uniform { lines.append(row(p)) }
        lines.append("")
        let wins = r.dominates.filter { $0 }.count
        lines.append("The selected configuration is at least as accurate as both baselines at \(wins) of \(r.dominates.count) budgets.")
        return lines.joined(separator: "\n") + "\n"
    }

    public enum Axis: Sendable { case multiplyAdds, latency }

    /// Top-1 against multiply-adds or latency: selected configurations and width scaling as lines, uniform operators
    /// as labelled points, the base as a star.
    public static func svg(_ r: SweepResult, axis: Axis) -> String {
        let width = 720.0, height = 440.0, left = 70.0, right = 170.0, top = 40.0, bottom = 56.0
        let plotW = width - left - right, plotH = height - top - bottom
        func xv(_ p: SweepPoint) -> Double { axis == .multiplyAdds ? Double(p.multiplyAdds) / 1e6 : p.latencyMs }
        let all = [r.base] + r.selected + r.width + r.uniform
        let xMax = (all.map(xv).max() ?? 1) * 1.05, xMin = 0.0
        let accuracies = all.map(\.top1)
        let yMin = max(0, ((accuracies.min() ?? 0) - 5) / 5).rounded(.down) * 5
        let yMax = min(100, (((accuracies.max() ?? 100) + 2) / 5).rounded(.up) * 5)
        func x(_ v: Double) -> Double { left + (v - xMin) / max(xMax - xMin, 1e-9) * plotW }
        func y(_ v: Double) -> Double { top + (1 - (v - yMin) / max(yMax - yMin, 1e-9)) * plotH }
        func esc(_ t: String) -> String {
            t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        func f(_ v: Double) -> String { String(format: "%.1f", v) }
        let xLabel = axis == .multiplyAdds ? "multiply-adds (millions)" : "latency at batch 1 (ms)"
        var out = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(f(left + plotW / 2))\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(esc(r.model)): top-1 against \(xLabel)</text>",
            "<rect x=\"\(f(left))\" y=\"\(f(top))\" width=\"\(f(plotW))\" height=\"\(f(plotH))\" fill=\"none\" stroke=\"#888\"/>",
        ]
        for i in 0...5 {
            let v = xMin + (xMax - xMin) * Double(i) / 5
            out.append("<line x1=\"\(f(x(v)))\" y1=\"\(f(top))\" x2=\"\(f(x(v)))\" y2=\"\(f(top + plotH))\" stroke=\"#eee\"/>")
            out.append("<text x=\"\(f(x(v)))\" y=\"\(f(top + plotH + 16))\" text-anchor=\"middle\">\(String(format: axis == .multiplyAdds ? "%.0f" : "%.2f", v))</text>")
        }
        var tick = yMin
        while tick <= yMax + 1e-9 {
            out.append("<line x1=\"\(f(left))\" y1=\"\(f(y(tick)))\" x2=\"\(f(left + plotW))\" y2=\"\(f(y(tick)))\" stroke=\"#eee\"/>")
            out.append("<text x=\"\(f(left - 8))\" y=\"\(f(y(tick) + 4))\" text-anchor=\"end\">\(Int(tick))%</text>")
            tick += 5
        }
        out.append("<text x=\"\(f(left + plotW / 2))\" y=\"\(f(height - 14))\" text-anchor=\"middle\">\(xLabel)</text>")
        out.append("<text transform=\"translate(18 \(f(top + plotH / 2))) rotate(-90)\" text-anchor=\"middle\">top-1 (%)</text>")
        func line(_ points: [SweepPoint], color: String, name: String, legendRow: Int) {
            let sorted = points.sorted { xv($0) < xv($1) }
            if sorted.count > 1 {
                let d = sorted.map { "\(f(x(xv($0)))),\(f(y($0.top1)))" }.joined(separator: " ")
                out.append("<polyline points=\"\(d)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>")
            }
            for p in sorted { out.append("<circle cx=\"\(f(x(xv(p))))\" cy=\"\(f(y(p.top1)))\" r=\"3.5\" fill=\"\(color)\"><title>\(esc(p.label)): \(f(p.top1))%</title></circle>") }
            let ly = top + 14 + Double(legendRow) * 18
            out.append("<line x1=\"\(f(left + plotW + 12))\" y1=\"\(f(ly - 4))\" x2=\"\(f(left + plotW + 32))\" y2=\"\(f(ly - 4))\" stroke=\"\(color)\" stroke-width=\"2\"/>")
            out.append("<text x=\"\(f(left + plotW + 38))\" y=\"\(f(ly))\">\(esc(name))</text>")
        }
        line(r.selected, color: "#1f77b4", name: "selected (knapsack)", legendRow: 0)
        line(r.width, color: "#d62728", name: "width scaling", legendRow: 1)
        for (i, p) in r.uniform.enumerated() {
            out.append("<rect x=\"\(f(x(xv(p)) - 3.5))\" y=\"\(f(y(p.top1) - 3.5))\" width=\"7\" height=\"7\" fill=\"#2ca02c\"><title>\(esc(p.label))</title></rect>")
            out.append("<text x=\"\(f(x(xv(p)) + 6))\" y=\"\(f(y(p.top1) - 6 - Double(i % 2) * 10))\" font-size=\"10\" fill=\"#2ca02c\">\(esc(p.label))</text>")
        }
        let ly = top + 14 + 2 * 18
        out.append("<rect x=\"\(f(left + plotW + 18))\" y=\"\(f(ly - 8))\" width=\"7\" height=\"7\" fill=\"#2ca02c\"/>")
        out.append("<text x=\"\(f(left + plotW + 38))\" y=\"\(f(ly))\">uniform operator</text>")
        out.append("<text x=\"\(f(x(xv(r.base))))\" y=\"\(f(y(r.base.top1) + 5))\" text-anchor=\"middle\" font-size=\"16\" fill=\"#000\">★</text>")
        out.append("<text x=\"\(f(left + plotW + 38))\" y=\"\(f(ly + 18))\">★ base</text>")
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
