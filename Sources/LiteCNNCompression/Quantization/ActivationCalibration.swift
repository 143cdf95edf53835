// Post-training calibration of activation ranges and fake int8 quantization — min/max (Jacob et al. 2018,
// https://arxiv.org/abs/1712.05877), percentile (McKinstry et al. 2018, https://arxiv.org/abs/1809.04191; Wu et al.
// 2020, https://arxiv.org/abs/2004.09602) and entropy: the KL-divergence threshold search of Szymon Migacz,
// "8-bit Inference with TensorRT" (GTC 2017), on a 2048-bin histogram of |x|.
import Foundation
import LiteCNNGraph
import LiteCNNTensor
import LiteCNNTraining

/// Activation ranges for int8 inference, observed through `GraphNetwork.valueHook`.
///
/// The values calibrated are the ones integer kernels would quantize: the first input of every Conv, Gemm and MatMul
/// of `network.graph`, and the graph input. Ranges always contain 0 (so asymmetric uint8 represents 0 exactly).
public enum ActivationCalibration {
    public enum Method: Sendable { case minMax, percentile(Double), entropy }

    /// Bins of the histograms used by `percentile` and `entropy` (TensorRT's 2048).
    public static let histogramBins = 2048

    /// Observes the values feeding every Conv/Gemm/MatMul (and the graph input) over `batches` (NHWC) and returns ranges.
    ///
    /// - `minMax`: the observed extremes.
    /// - `percentile(p)`, p in percent (99.99): the `(100 − p)`-th and `p`-th percentiles of the values, read from a
    ///   2048-bin histogram over the observed [min, max] (bin upper edges, so the result never cuts inside a bin).
    /// - `entropy`: TensorRT's threshold T minimizing KL(P‖Q) between the 2048-bin histogram P of |x| (clipped at T,
    ///   outliers added to the last kept bin) and its quantization Q to 128 levels (values that are never negative:
    ///   255 levels, range [0, T]); signed values get [−T, T]. Values made by an operator that bounds its output
    ///   (`Clip`, `Sigmoid`, `HardSigmoid`: ReLU6 is `Clip(0, 6)`) keep their observed range: they have no outliers to
    ///   cut, and ReLU6's mass piled at 6 made the search clip every one of MobileNet V2's ReLU6 outputs near 1.5,
    ///   which took its top-1 from 51.5 % to 12.6 %.
    /// Percentile and entropy run the batches twice (extremes first, then histograms). The network runs in inference
    /// mode; its previous mode and `valueHook` are restored.
    public static func calibrate(_ network: GraphNetwork, batches: [Tensor], method: Method) -> [String: ClosedRange<Float>] {
        let graph = network.graph
        var targets = Set<String>()
        for node in graph.nodes where ["Conv", "Gemm", "MatMul"].contains(node.opType) && node.domain.isEmpty {
            if let x = node.inputs.first, !x.isEmpty, graph.initializers[x] == nil { targets.insert(x) }
        }
        let inputName = graph.inputs.first?.name
        let wasTraining = network.isTraining, previousHook = network.valueHook
        defer { network.isTraining = wasTraining; network.valueHook = previousHook }
        network.isTraining = false

        // Pass 1: extremes.
        var lo: [String: Float] = [:], hi: [String: Float] = [:]
        func observeExtremes(_ name: String, _ t: Tensor) {
            var a = lo[name] ?? .infinity, b = hi[name] ?? -.infinity
            for v in t.scalars where v.isFinite { a = min(a, v); b = max(b, v) }
            lo[name] = a
            hi[name] = b
        }
        network.valueHook = { name, tensor in
            previousHook?(name, &tensor)
            if targets.contains(name) { observeExtremes(name, tensor) }
        }
        for batch in batches {
            if let inputName { observeExtremes(inputName, batch) }
            _ = network.forward(batch)
        }
        var extremes: [String: (Float, Float)] = [:]
        for (name, a) in lo where a <= hi[name]! { extremes[name] = (a, hi[name]!) }

        switch method {
        case .minMax:
            return extremes.mapValues { min($0.0, 0)...max($0.1, 0) }
        case let .percentile(p):
            let fraction = min(max(p, 0), 100) / 100
            let histograms = collect(network, batches: batches, inputName: inputName, extremes: extremes, absolute: false,
                                     previousHook: previousHook)
            var ranges: [String: ClosedRange<Float>] = [:]
            for (name, (a, b)) in extremes {
                guard let h = histograms[name], b > a else { ranges[name] = min(a, 0)...max(b, 0); continue }
                let total = h.reduce(0, +)
                let width = (Double(b) - Double(a)) / Double(histogramBins)
                // Lower: the lower edge of the bin where the cumulative count first exceeds (1 − f)·total.
                var acc = 0.0, lowBin = 0
                for (i, c) in h.enumerated() { acc += c; if acc > (1 - fraction) * total { lowBin = i; break } }
                acc = 0
                var highBin = histogramBins - 1
                for (i, c) in h.enumerated() { acc += c; if acc >= fraction * total { highBin = i; break } }
                let lower = Float(Double(a) + Double(lowBin) * width), upper = Float(Double(a) + Double(highBin + 1) * width)
                ranges[name] = min(max(lower, a), 0)...max(min(upper, b), 0)
            }
            return ranges
        case .entropy:
            let histograms = collect(network, batches: batches, inputName: inputName, extremes: extremes, absolute: true,
                                     previousHook: previousHook)
            let bounded = Set(graph.nodes.filter { ["Clip", "Sigmoid", "HardSigmoid"].contains($0.opType) && $0.domain.isEmpty }
                .flatMap(\.outputs))
            var ranges: [String: ClosedRange<Float>] = [:]
            for (name, (a, b)) in extremes {
                let maxAbs = max(abs(a), abs(b))
                guard let h = histograms[name], maxAbs > 0, !bounded.contains(name) else {
                    ranges[name] = min(a, 0)...max(b, 0)
                    continue
                }
                let unsigned = a >= 0
                let threshold = Float(Double(maxAbs) * Double(entropyThresholdBin(h, levels: unsigned ? 255 : 128))
                                      / Double(histogramBins))
                ranges[name] = unsigned ? 0...min(threshold, b) : -threshold...threshold
            }
            return ranges
        }
    }

    /// The number of bins T (levels…bins) of the histogram of |x| that minimizes KL(P‖Q) (TensorRT): the threshold
    /// is the upper edge of bin T − 1.
    public static func entropyThresholdBin(_ histogram: [Double], levels: Int) -> Int {
        let bins = histogram.count
        precondition(levels >= 1 && bins >= 1, "entropyThresholdBin: need levels ≥ 1 and a histogram")
        if bins <= levels { return bins }
        var best = bins, bestKL = Double.infinity
        var tail = histogram[levels...].reduce(0, +)            // Σ hist[i...] for the current i
        for i in levels...bins {
            // P: the first i bins, outliers added to the last one.
            var p = Array(histogram[0..<i])
            p[i - 1] += tail
            if i < bins { tail -= histogram[i] }
            // Q: the first i bins (without outliers) merged into `levels` groups, spread back over their non-zero bins.
            var q = [Double](repeating: 0, count: i)
            for g in 0..<levels {
                let start = g * i / levels, end = (g + 1) * i / levels
                var sum = 0.0, nonzero = 0
                for j in start..<end { sum += histogram[j]; if histogram[j] != 0 { nonzero += 1 } }
                if nonzero > 0 { for j in start..<end where histogram[j] != 0 { q[j] = sum / Double(nonzero) } }
            }
            let kl = divergence(p, q)
            if kl < bestKL { bestKL = kl; best = i }
        }
        return best
    }

    /// KL(P‖Q) of two unnormalized histograms, Q smoothed where it is 0 and P is not (MXNet's ε = 1e-4 smoothing).
    static func divergence(_ p: [Double], _ q: [Double]) -> Double {
        let ps = p.reduce(0, +), qs = q.reduce(0, +)
        guard ps > 0 else { return 0 }
        guard qs > 0 else { return .infinity }
        let eps = 1e-4
        let zeros = q.filter { $0 == 0 }.count, nonzeros = q.count - zeros
        let shift = nonzeros > 0 ? eps * Double(zeros) / Double(nonzeros) : 0
        var kl = 0.0
        for j in 0..<p.count where p[j] > 0 {
            let pj = p[j] / ps
            let qj = q[j] == 0 ? eps : max(q[j] / qs - shift, eps)
            kl += pj * log(pj / qj)
        }
        return kl
    }

    /// Pass 2: histograms (`histogramBins` bins) over [min, max], or over [0, max|x|] of |x| when `absolute`.
    private static func collect(_ network: GraphNetwork, batches: [Tensor], inputName: String?,
                                extremes: [String: (Float, Float)], absolute: Bool,
                                previousHook: ((String, inout Tensor) -> Void)?) -> [String: [Double]] {
        var histograms: [String: [Double]] = [:]
        let bins = histogramBins
        func observe(_ name: String, _ t: Tensor) {
            guard let (a, b) = extremes[name] else { return }
            let lo = absolute ? 0 : Double(a), hi = absolute ? Double(max(abs(a), abs(b))) : Double(b)
            guard hi > lo else { return }
            var h = histograms[name] ?? [Double](repeating: 0, count: bins)
            let scale = Double(bins) / (hi - lo)
            for v in t.scalars where v.isFinite {
                let x = absolute ? Double(abs(v)) : Double(v)
                h[min(bins - 1, max(0, Int((x - lo) * scale)))] += 1
            }
            histograms[name] = h
        }
        network.valueHook = { name, tensor in
            previousHook?(name, &tensor)
            observe(name, tensor)
        }
        for batch in batches {
            if let inputName { observe(inputName, batch) }
            _ = network.forward(batch)
        }
        return histograms
    }

    /// Installs fake int8 quantization of those values on `network.valueHook` (asymmetric uint8 per tensor).
    ///
    /// Every node output named in `ranges` is replaced by `(clamp(round(x/s) + z, 0, 2^bits − 1) − z)·s` with
    /// `LinearQuantization.parameters(min:max:bits:symmetric: false)` of its range, in training and inference alike
    /// (backward passes it straight through). A hook installed before is kept and runs first. The graph input is not
    /// a node output: quantize the batches with `fakeQuantizeInput` (idempotent, so doing both is harmless).
    public static func installFakeQuantization(on network: GraphNetwork, ranges: [String: ClosedRange<Float>], bits: Int = 8) {
        precondition((2...16).contains(bits), "installFakeQuantization: bits must be 2…16, got \(bits)")
        let parameters = ranges.mapValues {
            LinearQuantization.parameters(min: $0.lowerBound, max: $0.upperBound, bits: bits, symmetric: false)
        }
        let previous = network.valueHook
        network.valueHook = { name, tensor in
            previous?(name, &tensor)
            guard let p = parameters[name] else { return }
            tensor.scalars.withUnsafeMutableBufferPointer { LinearQuantization.fakeQuantize($0, p) }
        }
    }

    /// `batch` fake-quantized with the range calibrated for the graph input (unchanged when there is none).
    public static func fakeQuantizeInput(_ batch: Tensor, network: GraphNetwork, ranges: [String: ClosedRange<Float>],
                                         bits: Int = 8) -> Tensor {
        guard let name = network.graph.inputs.first?.name, let range = ranges[name] else { return batch }
        let p = LinearQuantization.parameters(min: range.lowerBound, max: range.upperBound, bits: bits, symmetric: false)
        var out = batch
        out.scalars.withUnsafeMutableBufferPointer { LinearQuantization.fakeQuantize($0, p) }
        return out
    }
}
