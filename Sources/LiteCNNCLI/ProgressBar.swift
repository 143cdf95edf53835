// Training progress on standard error: a live, redrawn bar on a terminal; plain log lines (about every 10 % of an
// epoch) when standard error is a file or a pipe, so logs stay readable.
import Foundation
import LiteCNN
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Shows `StepReport`s and evaluation progress of a training run on standard error.
///
/// On a terminal (`isatty(STDERR_FILENO)`): one line redrawn at most 10 times a second —
/// `epoch 2/10 [#######.......] 45/120  loss 1.234  acc 56.7%  812 img/s  ETA 1m20s`. Otherwise a plain line at every
/// tenth of an epoch. `clear()` erases the live line before something else is printed.
final class TrainingProgressBar {
    let isTerminal: Bool
    private var lastDraw = 0.0
    private var drawn = false
    private let barWidth = 20

    init(forceTerminal: Bool? = nil) {
        isTerminal = forceTerminal ?? (isatty(STDERR_FILENO) != 0)
    }

    func step(_ r: StepReport) {
        if isTerminal {
            let now = monotonicSeconds()
            guard now - lastDraw >= 0.1 || r.step == r.stepsPerEpoch else { return }
            lastDraw = now
            let filled = r.stepsPerEpoch == 0 ? 0 : barWidth * r.step / r.stepsPerEpoch
            let bar = String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled)
            draw("epoch \(r.epoch + 1)/\(r.epochs) [\(bar)] \(r.step)/\(r.stepsPerEpoch)  " + Self.numbers(r))
        } else {
            let every = max(1, r.stepsPerEpoch / 10)
            guard r.step % every == 0 || r.step == r.stepsPerEpoch else { return }
            log("epoch \(r.epoch + 1)/\(r.epochs) step \(r.step)/\(r.stepsPerEpoch)  " + Self.numbers(r))
        }
    }

    /// Evaluation on the test split after an epoch: `done` of `total` images.
    func evaluation(done: Int, total: Int) {
        guard isTerminal else {
            if done == 0 { log("evaluating on \(total) test images") }
            return
        }
        let now = monotonicSeconds()
        guard now - lastDraw >= 0.1 || done == 0 else { return }
        lastDraw = now
        draw("evaluating \(done)/\(total) test images")
    }

    /// Any long loop: `done` of `total`, with a text after the bar (a line every tenth when not a terminal).
    func progress(done: Int, total: Int, _ text: String) {
        let total = max(total, 1)
        if isTerminal {
            let now = monotonicSeconds()
            guard now - lastDraw >= 0.1 || done == total else { return }
            lastDraw = now
            let filled = barWidth * min(done, total) / total
            draw("[" + String(repeating: "#", count: filled) + String(repeating: ".", count: barWidth - filled) + "] \(done)/\(total)  " + text)
        } else {
            let every = max(1, total / 10)
            guard done % every == 0 || done == total else { return }
            log("\(done)/\(total)  " + text)
        }
    }

    /// A one-off status (loading, building).
    func status(_ text: String) {
        if isTerminal { draw(text) } else { log(text) }
    }

    /// Erases the live line (terminal only).
    func clear() {
        guard isTerminal, drawn else { return }
        FileHandle.standardError.write(Data("\r\u{1B}[K".utf8))
        drawn = false
    }

    private func draw(_ text: String) {
        let columns = Self.terminalColumns()
        let clipped = text.count > columns - 1 ? String(text.prefix(columns - 1)) : text
        FileHandle.standardError.write(Data(("\r\u{1B}[K" + clipped).utf8))
        drawn = true
    }

    private func log(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func numbers(_ r: StepReport) -> String {
        String(format: "loss %.4f  acc %.1f%%  %.0f img/s  lr %.4g  ETA ", r.runningLoss, r.runningTop1,
               r.imagesPerSecond, Double(r.learningRate)) + duration(r.etaSeconds)
    }

    /// `42s`, `3m05s`, `1h02m`.
    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        if s < 60 { return "\(s)s" }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm", s / 3600, (s % 3600) / 60)
    }

    private static func terminalColumns() -> Int {
        var size = winsize()
        let request = UInt(TIOCGWINSZ)
        if ioctl(STDERR_FILENO, request, &size) == 0, size.ws_col > 20 { return Int(size.ws_col) }
        return 120
    }
}

/// Writes `line` and a newline to standard output immediately (unbuffered, so JSON lines reach a pipe per epoch).
func say(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
