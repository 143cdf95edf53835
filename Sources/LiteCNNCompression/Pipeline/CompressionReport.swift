// The compression report: a table in the style of the SqueezeNet paper's Table 2 (each stage's size, ratio to fp32,
// top-1/top-5), a size-versus-accuracy plot, and the same figures as JSON.
import Foundation

/// What `litecnn compress --json` prints and `--report DIR` writes as report.json.
public struct CompressionSummary: Codable, Sendable, Equatable {
    public var model: String
    public var data: String
    public var output: String
    /// Size of the written file in bytes (the file's size on disk).
    public var bytes: Int
    /// fp32 bytes / bytes.
    public var ratio: Double
    public var top1Before: Double
    public var top1After: Double
    public var top5Before: Double
    public var top5After: Double
    public var stages: [StageResult]
    public var plan: CompressionPlan

    public init(model: String, data: String, output: String, result: CompressionResult) {
        self.model = model
        self.data = data
        self.output = output
        self.bytes = result.bytes.count
        self.ratio = Double(result.baseline.bytes) / Double(max(1, result.bytes.count))
        self.top1Before = result.baseline.top1
        self.top1After = result.final.top1
        self.top5Before = result.baseline.top5
        self.top5After = result.final.top5
        self.stages = result.stages
        self.plan = result.plan
    }

    enum CodingKeys: String, CodingKey {
        case model, data, output, bytes, ratio, stages, plan
        case top1Before = "top1_before", top1After = "top1_after", top5Before = "top5_before", top5After = "top5_after"
    }
}

public enum CompressionReport {
    /// Bytes as people read them: `4.8 MB`, `470 KB`, `812 B` (decimal units, as the SqueezeNet paper).
    public static func formatBytes(_ bytes: Int) -> String {
        let b = Double(bytes)
        if b >= 1e6 { return String(format: "%.2f MB", b / 1e6) }
        if b >= 1e3 { return String(format: "%.1f KB", b / 1e3) }
        return "\(bytes) B"
    }

    /// The stage table as Markdown.
    public static func markdown(_ s: CompressionSummary) -> String {
        var lines = [
            "# Compression of \(s.model)",
            "",
            "Data: \(s.data). Output: `\(s.output)`, \(formatBytes(s.bytes)) (\(s.bytes) bytes), "
                + String(format: "%.1f× smaller than fp32; top-1 %.2f%% → %.2f%% (%+.2f points).", s.ratio, s.top1Before,
                         s.top1After, s.top1After - s.top1Before),
            "",
            "Every size is the size of the compressed file that stage writes; every accuracy is computed by the runtime "
                + "from that file, decoded.",
            "",
            "| stage | what | size | ratio to fp32 | top-1 % | top-5 % | top-1 before fine-tuning | non-zero weights | multiply-adds |",
            "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in s.stages {
            let before = r.top1BeforeFinetune.map { String(format: "%.2f", $0) } ?? "–"
            lines.append("| \(r.stage) | \(r.detail) | \(formatBytes(r.bytes)) | " + String(format: "%.1f×", r.ratio)
                         + String(format: " | %.2f | %.2f | ", r.top1, r.top5) + "\(before) | \(r.nonZeroWeights) | \(r.multiplyAdds) |")
        }
        lines += ["", "![size against accuracy](size_accuracy.svg)", ""]
        return lines.joined(separator: "\n")
    }

    /// Top-1 against file size (log scale), one labelled point per stage, as a standalone SVG.
    public static func svg(_ s: CompressionSummary) -> String {
        let width = 640.0, height = 400.0
        let left = 70.0, right = 30.0, top = 40.0, bottom = 60.0
        let plotW = width - left - right, plotH = height - top - bottom
        let sizes = s.stages.map { log10(Double(max(1, $0.bytes))) }
        var xMin = (sizes.min() ?? 0).rounded(.down), xMax = (sizes.max() ?? 1).rounded(.up)
        if xMax - xMin < 1 { xMax = xMin + 1 }
        let accuracies = s.stages.map(\.top1)
        var yMin = max(0, ((accuracies.min() ?? 0) - 5) / 10).rounded(.down) * 10
        let yMax = min(100, (((accuracies.max() ?? 100) + 5) / 10).rounded(.up) * 10)
        if yMax - yMin < 10 { yMin = max(0, yMax - 10) }
        func x(_ v: Double) -> Double { left + (v - xMin) / (xMax - xMin) * plotW }
        func y(_ v: Double) -> Double { top + (1 - (v - yMin) / (yMax - yMin)) * plotH }
        func esc(_ t: String) -> String {
            t.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
        }
        var out = [
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\" font-size=\"12\">",
            "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>",
            "<text x=\"\(width / 2)\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">\(esc(s.model)): top-1 against compressed size</text>",
            "<rect x=\"\(left)\" y=\"\(top)\" width=\"\(plotW)\" height=\"\(plotH)\" fill=\"none\" stroke=\"#888\"/>",
        ]
        // Decades and their 2× and 5× marks on the size axis.
        var decade = xMin
        while decade <= xMax + 1e-9 {
            for m in [1.0, 2.0, 5.0] {
                let v = decade + log10(m)
                guard v <= xMax + 1e-9 else { continue }
                let px = x(v)
                out.append("<line x1=\"\(px)\" y1=\"\(top)\" x2=\"\(px)\" y2=\"\(top + plotH)\" stroke=\"#eee\"/>")
                out.append("<text x=\"\(px)\" y=\"\(top + plotH + 16)\" text-anchor=\"middle\">\(esc(formatBytes(Int(pow(10, v).rounded()))))</text>")
            }
            decade += 1
        }
        var tick = yMin
        while tick <= yMax + 1e-9 {
            out.append("<line x1=\"\(left)\" y1=\"\(y(tick))\" x2=\"\(left + plotW)\" y2=\"\(y(tick))\" stroke=\"#eee\"/>")
            out.append("<text x=\"\(left - 8)\" y=\"\(y(tick) + 4)\" text-anchor=\"end\">\(Int(tick))</text>")
            tick += 10
        }
        out.append("<text x=\"\(left + plotW / 2)\" y=\"\(height - 18)\" text-anchor=\"middle\">compressed file size (log scale)</text>")
        out.append("<text transform=\"translate(18 \(top + plotH / 2)) rotate(-90)\" text-anchor=\"middle\">top-1 accuracy (%)</text>")
        let points = zip(sizes, accuracies).map { "\(x($0.0)),\(y($0.1))" }
        out.append("<polyline points=\"\(points.joined(separator: " "))\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\"/>")
        for (index, r) in s.stages.enumerated() {
            let px = x(sizes[index]), py = y(r.top1)
            out.append("<circle cx=\"\(px)\" cy=\"\(py)\" r=\"4\" fill=\"#1f77b4\"><title>\(esc(r.stage)): \(esc(formatBytes(r.bytes))), top-1 \(String(format: "%.2f", r.top1))%</title></circle>")
            let dy = index % 2 == 0 ? -10.0 : 18.0
            out.append("<text x=\"\(px)\" y=\"\(py + dy)\" text-anchor=\"middle\" font-size=\"11\">\(esc(r.stage))</text>")
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
