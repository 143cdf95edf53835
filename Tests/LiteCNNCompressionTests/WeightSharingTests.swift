import LiteCNN
import Foundation
import XCTest
import _TestSupport

final class WeightSharingTests: XCTestCase {
    /// A pruned-looking weight tensor: normal values with `zeroFraction` of them exactly 0.
    private func prunedWeights(_ count: Int, zeroFraction: Double, seed: UInt64) -> Tensor {
        var g = SeededGenerator(seed: seed)
        var x = [Float](repeating: 0, count: count)
        for i in 0..<count {
            let v = g.nextNormal() * 0.05
            x[i] = Double(g.nextUnit()) < zeroFraction ? 0 : v
        }
        return Tensor(shape: [count], scalars: x)
    }

    /// Reference 1-D Lloyd: O(n·k) nearest-centroid assignment from the same linear initialization.
    private func naiveLloyd(_ values: [Float], clusters k: Int, iterations: Int) -> [Float] {
        let lo = values.min()!, hi = values.max()!
        var c = WeightSharing.linearInitialization(min: lo, max: hi, clusters: k).map(Double.init)
        var previous: [Int] = []
        func assignment() -> [Int] {
            values.map { v in
                var best = 0
                for j in 1..<k where abs(Double(v) - c[j]) < abs(Double(v) - c[best]) { best = j }
                return best
            }
        }
        for _ in 0..<iterations {
            let assign = assignment()
            if assign == previous { break }
            var sums = [Double](repeating: 0, count: k), counts = [Int](repeating: 0, count: k)
            for (i, v) in values.enumerated() { sums[assign[i]] += Double(v); counts[assign[i]] += 1 }
            for j in 0..<k where counts[j] > 0 { c[j] = sums[j] / Double(counts[j]) }
            c.sort()
            previous = assign
        }
        // The centroids some value is nearest to (empty clusters are dropped, as the codebook drops them).
        let used = Set(assignment())
        return (0..<k).filter { used.contains($0) }.map { Float(c[$0]) }
    }

    func testAtMostTwoToTheBitsValuesAndZerosKeptExactly() {
        let w = prunedWeights(5000, zeroFraction: 0.6, seed: 1)
        for bits in 1...8 {
            let c = WeightSharing.cluster(w, bits: bits)
            let decoded = c.decoded()
            XCTAssertLessThanOrEqual(Set(decoded.scalars).count, 1 << bits, "bits \(bits)")
            XCTAssertLessThanOrEqual(c.codebook.count, 1 << bits)
            XCTAssertEqual(c.zeroIndex.map { c.codebook[$0] }, 0)
            XCTAssertEqual(c.codebook, c.codebook.sorted(), "codebook ascending")
            for i in 0..<w.count {
                if w.scalars[i] == 0 { XCTAssertEqual(decoded.scalars[i], 0, "pruned weight \(i) at \(bits) bits") }
                else { XCTAssertNotEqual(decoded.scalars[i], 0, "kept weight \(i) became 0 at \(bits) bits") }
            }
            // Every entry is used.
            XCTAssertEqual(Set(c.indices).count, c.codebook.count)
        }
    }

    func testWithoutZerosAllEntriesAreCentroidsAndErrorShrinksWithBits() {
        let w = prunedWeights(4000, zeroFraction: 0, seed: 2)
        var previous = Double.infinity
        for bits in 1...8 {
            let c = WeightSharing.cluster(w, bits: bits)
            XCTAssertNil(c.zeroIndex)
            // Linear initialization leaves some tail clusters empty at high bit widths (Deep Compression accepts this);
            // at low widths every slot is used.
            if bits <= 4 { XCTAssertEqual(c.codebook.count, 1 << bits, "every slot used at \(bits) bits") }
            XCTAssertGreaterThan(c.codebook.count, (1 << bits) * 3 / 4)
            let d = c.decoded().scalars
            let mse = zip(d, w.scalars).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) } / Double(w.count)
            XCTAssertLessThan(mse, previous, "error must shrink with more bits (\(bits))")
            previous = mse
            // Each weight sits on its nearest centroid.
            for (i, v) in w.scalars.enumerated() {
                let nearest = c.codebook.map { abs($0 - v) }.min()!
                XCTAssertLessThanOrEqual(abs(d[i] - v), nearest * (1 + 1e-6) + 1e-9)
            }
        }
    }

    func testFastLloydMatchesNaiveLloydOnSmallAndRadixSortedInputs() {
        for (count, seed) in [(777, UInt64(3)), (40_000, UInt64(4))] {     // 40 000 takes the radix-sort path
            let w = prunedWeights(count, zeroFraction: 0.3, seed: seed)
            let nonzero = w.scalars.filter { $0 != 0 }
            for bits in [2, 4, 5] {
                let c = WeightSharing.cluster(w, bits: bits, iterations: 30)
                let reference = naiveLloyd(nonzero, clusters: (1 << bits) - 1, iterations: 30)
                let mine = c.codebook.filter { $0 != 0 }
                XCTAssertEqual(mine.count, reference.count, "count \(count), bits \(bits)")
                for (a, b) in zip(mine, reference) { XCTAssertEqual(a, b, accuracy: 1e-5 * max(1, abs(b))) }
            }
        }
    }

    func testDegenerateTensorsNeverTrap() {
        XCTAssertEqual(WeightSharing.cluster(Tensor(shape: [0]), bits: 3).indices, [])
        let zeros = WeightSharing.cluster(Tensor(shape: [2, 3]), bits: 2)
        XCTAssertEqual(zeros.codebook, [0])
        XCTAssertEqual(zeros.decoded().scalars, [Float](repeating: 0, count: 6))
        let constant = WeightSharing.cluster(Tensor(shape: [5], repeating: 0.25), bits: 4)
        XCTAssertEqual(constant.decoded().scalars, [Float](repeating: 0.25, count: 5))
        let weird = WeightSharing.cluster(Tensor(shape: [6], scalars: [1, -2, .nan, .infinity, -.infinity, 0]), bits: 2)
        XCTAssertLessThanOrEqual(weird.codebook.count, 4)
        XCTAssertEqual(weird.decoded().scalars[5], 0)
        XCTAssertEqual(weird.decoded().scalars[3], weird.codebook.max())
        XCTAssertEqual(weird.decoded().scalars[4], weird.codebook.min())
    }

    // MARK: Codebook fine-tuning

    func testFineTuningStepKeepsCodebookPropertyAndPinsZeros() {
        let w = prunedWeights(3000, zeroFraction: 0.5, seed: 5).reshaped(to: [30, 100])
        let bits = 3
        let codebook = WeightSharing.cluster(w, bits: bits)
        let parameter = Parameter(w)
        let tuning = CodebookFineTuning(parameters: [("fc.weight", parameter)], codebooks: ["fc.weight": codebook])
        XCTAssertEqual(parameter.value.scalars, codebook.decoded().scalars, "weights snapped to the codebook at start")
        let optimizer = SGD(parameters: [("fc.weight", parameter)], learningRate: 0.1, momentum: 0.9)
        for step in 0..<4 {
            parameter.gradient = randomTensor([30, 100], seed: 100 + UInt64(step))
            let raw = parameter.gradient.scalars
            tuning.gatherGradients()
            let g = parameter.gradient.scalars
            // Per-cluster mean gradient; zero cluster 0.
            for k in 0..<codebook.codebook.count {
                let members = (0..<g.count).filter { Int(codebook.indices[$0]) == k }
                let mean = members.reduce(0.0) { $0 + Double(raw[$1]) } / Double(members.count)
                for i in members {
                    XCTAssertEqual(g[i], k == codebook.zeroIndex ? 0 : Float(mean), accuracy: 1e-6)
                }
            }
            let before = tuning.codebooks["fc.weight"]!.codebook
            optimizer.step()
            tuning.snap()
            let current = tuning.codebooks["fc.weight"]!
            XCTAssertEqual(parameter.value.scalars, current.decoded().scalars, "weights equal decoded() bit for bit")
            XCTAssertLessThanOrEqual(Set(parameter.value.scalars).count, 1 << bits)
            XCTAssertEqual(current.indices, codebook.indices)
            for i in 0..<w.count where w.scalars[i] == 0 { XCTAssertEqual(parameter.value.scalars[i], 0) }
            XCTAssertEqual(current.codebook[codebook.zeroIndex!], 0)
            XCTAssertNotEqual(before, current.codebook, "centroids move")
        }
    }

    func testFineTuningFirstStepMovesCentroidsByMeanGradient() {
        let w = Tensor(shape: [6], scalars: [0, 1, 1.2, 0, -1, -1.1])
        let c = WeightSharing.cluster(w, bits: 2)      // {−1.05, 0, 1.1}
        XCTAssertEqual(c.codebook.count, 3)
        let p = Parameter(w)
        let tuning = CodebookFineTuning(parameters: [("w", p)], codebooks: ["w": c], reduction: .sum)
        p.gradient = Tensor(shape: [6], scalars: [5, 1, 3, 7, -2, 0])
        tuning.gatherGradients()
        XCTAssertEqual(p.gradient.scalars, [0, 4, 4, 0, -2, -2])
        let optimizer = SGD(parameters: [("w", p)], learningRate: 0.5)
        optimizer.step()
        tuning.snap()
        let book = tuning.codebooks["w"]!.codebook
        XCTAssertEqual(book[0], c.codebook[0] + 1, accuracy: 1e-6)
        XCTAssertEqual(book[1], 0)
        XCTAssertEqual(book[2], c.codebook[2] - 2, accuracy: 1e-6)
    }

    func testLinearLayerFineTunedThroughTrainingLoopKeepsSharing() {
        let layer = Linear(20, 4)
        ClosedFormWeights.fill(layer)
        let params = layer.namedParameters()
        // Prune half of the weight, then share it with 2 bits.
        layer.weight.value.scalars = layer.weight.value.scalars.enumerated().map { $0.offset % 2 == 0 ? 0 : $0.element }
        let c = WeightSharing.cluster(layer.weight.value, bits: 2)
        let tuning = CodebookFineTuning(parameters: params, codebooks: ["weight": c])
        let optimizer = Adam(parameters: params, learningRate: 0.01)
        let x = randomTensor([8, 20], seed: 9)
        layer.train()
        for _ in 0..<5 {
            layer.zeroGradients()
            let y = layer.forward(x)
            _ = layer.backward(Tensor(shape: y.shape, scalars: y.scalars.map { 2 * ($0 - 1) }))
            tuning.gatherGradients()
            optimizer.step()
            tuning.snap()
            let values = layer.weight.value.scalars
            XCTAssertLessThanOrEqual(Set(values).count, 4)
            for i in stride(from: 0, to: values.count, by: 2) { XCTAssertEqual(values[i], 0) }
            XCTAssertEqual(values, tuning.codebooks["weight"]!.decoded().scalars)
        }
    }

    func testTrainerRunWithInstalledFineTuningKeepsCodebooksAndPrunedZeros() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-codebook-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        var c = TrainingConfiguration(model: "small_cnn", data: "shapes", samples: 64, resolution: 16, epochs: 1, batchSize: 16,
                                      learningRate: 0.05, optimizer: .sgd, seed: 3)
        c.momentum = 0.9
        c.weightDecay = 1e-3
        c.testSamples = 16
        c.threads = 2
        let net = Sequential([
            Conv2D(3, 8, kernelSize: 3, padding: 1), BatchNorm2D(8), ReLU(), MaxPool2D(kernelSize: 2),
            Conv2D(8, 12, kernelSize: 3, padding: 1), BatchNorm2D(12), ReLU(), GlobalAvgPool(), Linear(12, 10),
        ])
        let params = net.namedParameters()
        let shared = params.filter { $0.parameter.isTrainable && $0.parameter.shape.count >= 2 }
        XCTAssertEqual(shared.count, 3)
        var codebooks: [String: CodebookTensor] = [:]
        var pruned: [String: [Bool]] = [:]
        for (name, p) in shared {
            // Prune every third weight, then share the rest with 3 bits.
            p.value.scalars = p.value.scalars.enumerated().map { $0.offset % 3 == 0 ? 0 : $0.element }
            pruned[name] = p.value.scalars.map { $0 == 0 }
            codebooks[name] = WeightSharing.cluster(p.value, bits: 3)
        }
        let trainer = try Trainer(configuration: c, data: try Trainer.openData(c), runDirectory: RunDirectory(directory),
                                  resume: false, customModel: net)
        let tuning = CodebookFineTuning(parameters: params, codebooks: codebooks)
        tuning.install(on: trainer)
        var steps = 0
        trainer.onStep = { _ in
            steps += 1
            for (name, p) in shared {
                let values = p.value.scalars
                XCTAssertLessThanOrEqual(Set(values).count, 8, name)
                XCTAssertEqual(values, tuning.codebooks[name]!.decoded().scalars, "\(name) equals its codebook")
                XCTAssertFalse(zip(pruned[name]!, values).contains { $0.0 && $0.1 != 0 }, "\(name): a pruned weight moved")
            }
        }
        XCTAssertEqual(try trainer.run(), .finished)
        XCTAssertEqual(steps, 4)
        for (name, book) in codebooks { XCTAssertNotEqual(tuning.codebooks[name]!.codebook, book.codebook, "\(name) trained") }
    }
}
