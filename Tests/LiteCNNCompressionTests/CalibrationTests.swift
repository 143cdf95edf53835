import LiteCNN
import XCTest
import _TestSupport

final class CalibrationTests: XCTestCase {
    /// input [N, 3, 8, 8] → Conv 3→4 → Relu (r) → Conv 4→5 (c2) → GlobalAveragePool → Flatten (f) → Gemm 5→3;
    /// with `relu6`, the input first goes through PyTorch's export of ReLU6, `Clip(input, 0, 6)` (x6).
    private func network(relu6: Bool = false) throws -> GraphNetwork {
        let conv: (String, String, String, String, Int, Int) -> Node = { name, x, w, y, _, _ in
            Node(name: name, opType: "Conv", inputs: [x, w + ".weight", w + ".bias"], outputs: [y], attributes: [
                "kernel_shape": .ints([3, 3]), "strides": .ints([1, 1]), "pads": .ints([1, 1, 1, 1]), "group": .int(1)])
        }
        let graph = Graph(
            inputs: [ValueInfo(name: "input", shape: [.symbolic("batch"), .fixed(3), .fixed(8), .fixed(8)])],
            outputs: [ValueInfo(name: "output", shape: nil)],
            nodes: (relu6 ? [Node(name: "relu6", opType: "Clip", inputs: ["input", "clip.min", "clip.max"], outputs: ["x6"])] : [])
                + [conv("conv0", relu6 ? "x6" : "input", "features.0", "c0", 3, 4),
                    Node(name: "relu0", opType: "Relu", inputs: ["c0"], outputs: ["r"]),
                    conv("conv1", "r", "features.2", "c2", 4, 5),
                    Node(name: "gap", opType: "GlobalAveragePool", inputs: ["c2"], outputs: ["g"]),
                    Node(name: "flatten", opType: "Flatten", inputs: ["g"], outputs: ["f"], attributes: ["axis": .int(1)]),
                    Node(name: "fc", opType: "Gemm", inputs: ["f", "fc.weight", "fc.bias"], outputs: ["output"],
                         attributes: ["transB": .int(1)])],
            initializers: ["features.0.weight": .float(randomTensor([4, 3, 3, 3], seed: 1)),
                           "features.0.bias": .float(randomTensor([4], seed: 2)),
                           "features.2.weight": .float(randomTensor([5, 4, 3, 3], seed: 3)),
                           "features.2.bias": .float(randomTensor([5], seed: 4)),
                           "fc.weight": .float(randomTensor([3, 5], seed: 5)),
                           "fc.bias": .float(randomTensor([3], seed: 6)),
                           "clip.min": .float(Tensor(shape: [], scalars: [0])),
                           "clip.max": .float(Tensor(shape: [], scalars: [6]))])
        return try GraphNetwork(graph: graph, imageShape: [3, 8, 8])
    }

    private func batches(outlier: Float? = nil) -> [Tensor] {
        (0..<3).map { i in
            var t = randomTensor([4, 8, 8, 3], seed: 100 + UInt64(i), range: -1...1)
            if let outlier, i == 1 { t.scalars[17] = outlier }
            return t
        }
    }

    func testMinMaxEqualsObservedExtremes() throws {
        let net = try network()
        let data = batches()
        var seen: [String: (Float, Float)] = [:]
        net.valueHook = { name, t in
            let (a, b) = seen[name] ?? (.infinity, -.infinity)
            seen[name] = (min(a, t.scalars.min()!), max(b, t.scalars.max()!))
        }
        for b in data { _ = net.forward(b) }
        let ranges = ActivationCalibration.calibrate(net, batches: data, method: .minMax)
        XCTAssertEqual(Set(ranges.keys), ["input", "r", "f"], "inputs of Conv, Conv and Gemm")
        let inputMin = data.flatMap(\.scalars).min()!, inputMax = data.flatMap(\.scalars).max()!
        XCTAssertEqual(ranges["input"], inputMin...inputMax)
        XCTAssertEqual(ranges["r"], 0...seen["r"]!.1)
        XCTAssertEqual(ranges["f"], min(seen["f"]!.0, 0)...max(seen["f"]!.1, 0))
        XCTAssertNotNil(net.valueHook, "the previous hook is restored")
    }

    func testPercentileAndEntropyClipAnInjectedOutlier() throws {
        let net = try network()
        let data = batches(outlier: 1000)
        let minMax = ActivationCalibration.calibrate(net, batches: data, method: .minMax)
        XCTAssertEqual(minMax["input"]!.upperBound, 1000)
        let percentile = ActivationCalibration.calibrate(net, batches: data, method: .percentile(99.9))
        XCTAssertLessThan(percentile["input"]!.upperBound, 2, "99.9th percentile of U(−1, 1) data with one outlier")
        XCTAssertGreaterThan(percentile["input"]!.upperBound, 0.9)
        XCTAssertLessThan(percentile["input"]!.lowerBound, -0.9)
        let entropy = ActivationCalibration.calibrate(net, batches: data, method: .entropy)
        XCTAssertLessThan(entropy["input"]!.upperBound, 100, "entropy clips the outlier")
        XCTAssertEqual(entropy["input"]!.lowerBound, -entropy["input"]!.upperBound, "signed data: symmetric threshold")
        XCTAssertGreaterThanOrEqual(entropy["r"]!.lowerBound, 0, "ReLU output stays non-negative")
        for (name, range) in entropy { XCTAssertTrue(range.contains(0), name) }
    }

    /// ReLU6 outputs pile up at 6 and have no outliers: entropy keeps their observed range instead of cutting the pile
    /// (the search put MobileNet V2's near 1.5 and its top-1 fell from 51.5 % to 12.6 %). Unbounded values still get a
    /// searched threshold.
    func testEntropyKeepsTheRangeOfBoundedActivations() throws {
        let net = try network(relu6: true)
        // Like a ReLU6 output: most values small (exponential, mean 0.3), 2 % beyond the bound, so piled at 6.
        var rng = SeededGenerator(seed: 9)
        let data = (0..<3).map { _ in
            Tensor(shape: [4, 8, 8, 3], scalars: (0..<768).map { _ in
                Float.random(in: 0..<1, using: &rng) < 0.02 ? 9 : -0.3 * log(Float.random(in: 0.001..<1, using: &rng))
            })
        }
        let minMax = ActivationCalibration.calibrate(net, batches: data, method: .minMax)
        let entropy = ActivationCalibration.calibrate(net, batches: data, method: .entropy)
        XCTAssertEqual(minMax["x6"], 0...6)
        XCTAssertEqual(entropy["x6"], 0...6, "a Clip output keeps its range")
        XCTAssertLessThan(entropy["input"]!.upperBound, 9, "the unbounded input is still searched and cut")
        XCTAssertGreaterThanOrEqual(entropy["r"]!.lowerBound, 0)
    }

    func testEntropyThresholdOnSyntheticHistograms() {
        // A half-normal bulk over the first ~400 bins plus a few far outliers: the threshold lands near the bulk.
        var h = [Double](repeating: 0, count: 2048)
        for i in 0..<600 { h[i] = 1e5 * exp(-Double(i * i) / (2 * 120 * 120)) }
        h[2040] = 3
        let t = ActivationCalibration.entropyThresholdBin(h, levels: 128)
        XCTAssertGreaterThan(t, 200)
        XCTAssertLessThan(t, 700)
        // Uniform data: nothing to clip.
        let uniform = [Double](repeating: 10, count: 2048)
        XCTAssertGreaterThan(ActivationCalibration.entropyThresholdBin(uniform, levels: 128), 1900)
    }

    func testFakeQuantizationPutsValuesOnTheGridAndStaysClose() throws {
        let net = try network()
        let data = batches()
        let float = data.map { net.forward($0) }
        let ranges = ActivationCalibration.calibrate(net, batches: data, method: .minMax)
        ActivationCalibration.installFakeQuantization(on: net, ranges: ranges)
        let quantizer = net.valueHook!
        var checked = 0
        net.valueHook = { name, t in
            quantizer(name, &t)
            guard let range = ranges[name] else { return }
            let p = LinearQuantization.parameters(min: range.lowerBound, max: range.upperBound, bits: 8, symmetric: false)
            for v in t.scalars {
                let q = v / p.scale + Float(p.zeroPoint)
                XCTAssertEqual(q, q.rounded(), accuracy: 1e-3, "\(name): \(v) is on the uint8 grid")
                XCTAssertTrue((0...255).contains(Int(q.rounded())))
            }
            checked += 1
        }
        for (b, y0) in zip(data, float) {
            let y = net.forward(ActivationCalibration.fakeQuantizeInput(b, network: net, ranges: ranges))
            var worst: Float = 0, scale: Float = 0
            for (p, q) in zip(y.scalars, y0.scalars) { worst = max(worst, abs(p - q)); scale = max(scale, abs(q)) }
            XCTAssertLessThan(worst, 0.05 * scale, "int8 model stays close to float")
            XCTAssertNotEqual(y.scalars, y0.scalars, "fake quantization changes the output")
        }
        XCTAssertEqual(checked, 2 * data.count, "r and f observed per batch")
    }
}
