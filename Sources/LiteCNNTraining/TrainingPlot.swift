// RUN_DIR/curves.svg: loss and top-1 accuracy against the epoch, train and test, as a standalone SVG written by hand
// (no plotting library): two panels with axes, "nice" ticks, labels and a legend.
import Foundation

/// Draws a run's learning curves as SVG.
public enum TrainingPlot {
    /// Panel size in pixels (each of the two panels); the whole picture is `2·width + margins` by `height + margins`.
    public static let panelWidth = 420.0
    public static let panelHeight = 280.0

    /// A standalone SVG 1.1 document: left panel loss (train, test) per epoch, right panel top-1 % (train, test).
    /// `title` is drawn above the panels (XML-escaped). An empty history gives the axes without curves.
    public static func svg(_ history: [EpochMetrics], title: String) -> String {
        let margin = (left: 62.0, right: 18.0, top: 48.0, bottom: 56.0)
        let gap = 40.0
        let totalWidth = margin.left + panelWidth + gap + margin.left + panelWidth + margin.right
        let totalHeight = margin.top + panelHeight + margin.bottom
        var out = """
        <?xml version="1.0" encoding="UTF-8"?>
        <svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="\(fmt(totalWidth))" height="\(fmt(totalHeight))" \
        viewBox="0 0 \(fmt(totalWidth)) \(fmt(totalHeight))" font-family="Helvetica, Arial, sans-serif" font-size="12">
        <rect x="0" y="0" width="\(fmt(totalWidth))" height="\(fmt(totalHeight))" fill="white"/>
        <text x="\(fmt(totalWidth / 2))" y="22" text-anchor="middle" font-size="15" font-weight="bold">\(escape(title))</text>

        """
        let epochs = history.map { Double($0.epoch) }
        let losses = history.flatMap { [$0.trainLoss, $0.testLoss] }.filter(\.isFinite)
        let lossTop = max(losses.max() ?? 1, 1e-6)
        out += panel(x0: margin.left, y0: margin.top, title: "Loss", yLabel: "cross-entropy",
                     xs: epochs, yRange: 0...lossTop,
                     series: [("train", history.map(\.trainLoss), "#1f77b4", false),
                              ("test", history.map(\.testLoss), "#d62728", true)])
        out += panel(x0: margin.left + panelWidth + gap + margin.left, y0: margin.top, title: "Top-1 accuracy",
                     yLabel: "percent", xs: epochs, yRange: 0...100,
                     series: [("train", history.map(\.trainTop1), "#1f77b4", false),
                              ("test", history.map(\.testTop1), "#d62728", true)])
        out += "</svg>\n"
        return out
    }

    /// One panel: frame, grid, ticks, axis labels, polylines with point markers, legend.
    private static func panel(x0: Double, y0: Double, title: String, yLabel: String, xs: [Double],
                              yRange: ClosedRange<Double>, series: [(String, [Double], String, Bool)]) -> String {
        let xMax = max(xs.max() ?? 1, 1)
        let xMin = 1.0
        let xTicks = niceTicks(lower: xMin, upper: xMax, count: 6, integers: true)
        let yTicks = niceTicks(lower: yRange.lowerBound, upper: yRange.upperBound, count: 5, integers: false)
        let yTop = max(yTicks.last ?? yRange.upperBound, yRange.upperBound)
        let yBottom = yRange.lowerBound
        func px(_ x: Double) -> Double { xMax == xMin ? x0 + panelWidth / 2 : x0 + (x - xMin) / (xMax - xMin) * panelWidth }
        func py(_ y: Double) -> Double { y0 + panelHeight - (y - yBottom) / (yTop - yBottom) * panelHeight }

        var s = "<g>\n"
        s += "<text x=\"\(fmt(x0 + panelWidth / 2))\" y=\"\(fmt(y0 - 10))\" text-anchor=\"middle\" font-size=\"13\" font-weight=\"bold\">\(escape(title))</text>\n"
        for tick in yTicks where tick <= yTop + 1e-9 {
            let y = py(tick)
            s += "<line x1=\"\(fmt(x0))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x0 + panelWidth))\" y2=\"\(fmt(y))\" stroke=\"#e5e5e5\"/>\n"
            s += "<line x1=\"\(fmt(x0 - 5))\" y1=\"\(fmt(y))\" x2=\"\(fmt(x0))\" y2=\"\(fmt(y))\" stroke=\"black\"/>\n"
            s += "<text x=\"\(fmt(x0 - 8))\" y=\"\(fmt(y + 4))\" text-anchor=\"end\">\(tickLabel(tick))</text>\n"
        }
        for tick in xTicks where tick >= xMin - 1e-9 && tick <= xMax + 1e-9 {
            let x = px(tick)
            s += "<line x1=\"\(fmt(x))\" y1=\"\(fmt(y0 + panelHeight))\" x2=\"\(fmt(x))\" y2=\"\(fmt(y0 + panelHeight + 5))\" stroke=\"black\"/>\n"
            s += "<text x=\"\(fmt(x))\" y=\"\(fmt(y0 + panelHeight + 19))\" text-anchor=\"middle\">\(tickLabel(tick))</text>\n"
        }
        s += "<rect x=\"\(fmt(x0))\" y=\"\(fmt(y0))\" width=\"\(fmt(panelWidth))\" height=\"\(fmt(panelHeight))\" fill=\"none\" stroke=\"black\"/>\n"
        s += "<text x=\"\(fmt(x0 + panelWidth / 2))\" y=\"\(fmt(y0 + panelHeight + 40))\" text-anchor=\"middle\">epoch</text>\n"
        let yLabelX = x0 - 48, yLabelY = y0 + panelHeight / 2
        s += "<text x=\"\(fmt(yLabelX))\" y=\"\(fmt(yLabelY))\" text-anchor=\"middle\" transform=\"rotate(-90 \(fmt(yLabelX)) \(fmt(yLabelY)))\">\(escape(yLabel))</text>\n"

        for (name, values, colour, dashed) in series {
            let points = zip(xs, values).filter { $0.1.isFinite }.map { (px($0.0), py(min($0.1, yTop))) }
            if points.count > 1 {
                let list = points.map { "\(fmt($0.0)),\(fmt($0.1))" }.joined(separator: " ")
                s += "<polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "") points=\"\(list)\"><title>\(escape(name))</title></polyline>\n"
            }
            for (x, y) in points {
                s += "<circle cx=\"\(fmt(x))\" cy=\"\(fmt(y))\" r=\"2.5\" fill=\"\(colour)\"/>\n"
            }
        }
        // Legend, top right inside the frame.
        let legendX = x0 + panelWidth - 92
        var legendY = y0 + 16
        s += "<rect x=\"\(fmt(legendX - 8))\" y=\"\(fmt(y0 + 4))\" width=\"92\" height=\"\(fmt(Double(series.count) * 18 + 6))\" fill=\"white\" fill-opacity=\"0.85\" stroke=\"#999999\"/>\n"
        for (name, _, colour, dashed) in series {
            s += "<line x1=\"\(fmt(legendX))\" y1=\"\(fmt(legendY - 4))\" x2=\"\(fmt(legendX + 26))\" y2=\"\(fmt(legendY - 4))\" stroke=\"\(colour)\" stroke-width=\"2\"\(dashed ? " stroke-dasharray=\"6 4\"" : "")/>\n"
            s += "<text x=\"\(fmt(legendX + 32))\" y=\"\(fmt(legendY))\">\(escape(name))</text>\n"
            legendY += 18
        }
        s += "</g>\n"
        return s
    }

    /// About `count` round tick values (1, 2 or 5 × 10^k apart) covering `lower…upper`, starting at or below `lower`.
    static func niceTicks(lower: Double, upper: Double, count: Int, integers: Bool) -> [Double] {
        let span = max(upper - lower, integers ? 1 : 1e-9)
        let raw = span / Double(max(count - 1, 1))
        let magnitude = pow(10, floor(log10(raw)))
        var step = [1.0, 2, 5, 10].map { $0 * magnitude }.first { $0 >= raw } ?? 10 * magnitude
        if integers { step = max(1, step.rounded()) }
        let first = (lower / step).rounded(.down) * step
        var ticks: [Double] = []
        var value = first
        while value <= upper + step * 0.5 + 1e-12, ticks.count < 50 {
            ticks.append(value)
            value += step
        }
        return ticks
    }

    private static func tickLabel(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e9 { return String(Int(value)) }
        var text = String(format: "%.3g", value)
        if text.contains("e") { text = String(format: "%.2e", value) }
        return text
    }

    private static func fmt(_ value: Double) -> String { String(format: "%.1f", value) }

    /// Escapes `&`, `<`, `>` and `"` for SVG text and attributes.
    static func escape(_ text: String) -> String {
        var out = ""
        for ch in text {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            default: out.append(ch)
            }
        }
        return out
    }
}
