// Magnitude pruning: exact sparsity per layer and globally, masks that hold pruned weights at zero through SGD with
// momentum and weight decay (by hand and inside the real Trainer), and the pruning schedules and their string forms.
import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class MagnitudePruningTests: XCTestCase {
    private func parameter(_ shape: [Int], seed: UInt64) -> Parameter {
        Parameter(randomTensor(shape, seed: seed))
    }

    /// Every pruned weight is no larger in magnitude than every kept weight of the same set.
    private func assertThreshold(_ values: [[Float]], _ masks: [[Bool]], file: StaticString = #filePath, line: UInt = #line) {
        var maxPruned: Float = 0, minKept = Float.infinity
        for (v, m) in zip(values, masks) {
            for (x, keep) in zip(v, m) {
                if keep { minKept = min(minKept, abs(x)) } else { maxPruned = max(maxPruned, abs(x)) }
            }
        }
        XCTAssertLessThanOrEqual(maxPruned, minKept, "a pruned weight is larger than a kept one", file: file, line: line)
    }

    func testLayerwisePruningHitsEachLayersSparsityExactly() {
        let a = parameter([7, 5, 3, 3], seed: 1), b = parameter([10, 33], seed: 2), c = parameter([4, 4], seed: 3)
        let params: [(name: String, parameter: Parameter)] = [("a", a), ("b", b), ("c", c)]
        let masks = MagnitudePruning.layerwise(params, sparsity: ["a": 0.3, "b": 0.75])
        XCTAssertNil(masks.masks["c"], "a layer without a target gets no mask")
        // 0.3 · 315 = 94.5 → 95 (rounded half away from zero); 0.75 · 330 = 247.5 → 248.
        XCTAssertEqual(masks.masks["a"]!.filter { !$0 }.count, 95)
        XCTAssertEqual(masks.masks["b"]!.filter { !$0 }.count, 248)
        XCTAssertEqual(masks.sparsity(of: "a")!, 95.0 / 315, accuracy: 1e-12)
        XCTAssertEqual(masks.sparsity, Double(95 + 248) / Double(315 + 330), accuracy: 1e-12)
        assertThreshold([a.value.scalars], [masks.masks["a"]!])
        assertThreshold([b.value.scalars], [masks.masks["b"]!])
        masks.apply(to: params)
        XCTAssertEqual(a.value.scalars.filter { $0 == 0 }.count, 95)
        XCTAssertEqual(b.value.scalars.filter { $0 == 0 }.count, 248)
        XCTAssertEqual(c.value.scalars.filter { $0 == 0 }.count, 0)
    }

    func testTiesAndExistingZerosStillGiveTheExactCount() {
        // 40 equal magnitudes (±0.5), 10 zeros and 50 distinct values: pruning 30 % = 30 takes the zeros, then the
        // smallest distinct ones; pruning 70 % = 70 must cut into the tie and take exactly enough of it.
        var values = [Float](repeating: 0, count: 10)
        for i in 0..<40 { values.append(i % 2 == 0 ? 0.5 : -0.5) }
        for i in 0..<50 { values.append(Float(i + 1) * (i % 3 == 0 ? -0.003 : 0.003)) }  // all below 0.5
        let p = Parameter(Tensor(shape: [100], scalars: values))
        for (s, expected) in [(0.3, 30), (0.7, 70), (0.0, 0), (1.0, 100)] {
            let m = MagnitudePruning.layerwise([("w", p)], sparsity: ["w": s]).masks["w"]!
            XCTAssertEqual(m.filter { !$0 }.count, expected, "sparsity \(s)")
            XCTAssertTrue(m[0..<10].allSatisfy { !$0 } || expected == 0, "existing zeros are pruned first at \(s)")
            assertThreshold([values], [m])
        }
        // Among equal magnitudes the lowest indices go first: at 70 %, 60 non-tied (10 zeros + 50 small) + 10 of the tie.
        let m = MagnitudePruning.layerwise([("w", p)], sparsity: ["w": 0.7]).masks["w"]!
        XCTAssertEqual(Array(m[10..<50]), [Bool](repeating: false, count: 10) + [Bool](repeating: true, count: 30))
    }

    func testGlobalPruningUsesOneThresholdAcrossLayers() {
        // Layer b's weights are 10× smaller, so a global threshold prunes it far more than layer a.
        let a = parameter([16, 8, 3, 3], seed: 4)
        let small = randomTensor([64, 20], seed: 5)
        let b = Parameter(Tensor(shape: small.shape, scalars: small.scalars.map { $0 * 0.1 }))
        let params: [(name: String, parameter: Parameter)] = [("a", a), ("b", b)]
        let masks = MagnitudePruning.global(params, sparsity: 0.5)
        let total = a.count + b.count
        XCTAssertEqual(masks.prunedCount, Int((0.5 * Double(total)).rounded()))
        XCTAssertEqual(masks.totalCount, total)
        assertThreshold([a.value.scalars, b.value.scalars], [masks.masks["a"]!, masks.masks["b"]!])
        XCTAssertGreaterThan(masks.sparsity(of: "b")!, 0.8)
        XCTAssertLessThan(masks.sparsity(of: "a")!, 0.15)
        // The layerwise form at the same sparsity prunes each layer by half instead.
        let uniform = MagnitudePruning.masks(params, sparsity: 0.5, global: false)
        XCTAssertEqual(uniform.sparsity(of: "a")!, 0.5, accuracy: 1e-12)
        XCTAssertEqual(uniform.sparsity(of: "b")!, 0.5, accuracy: 1e-12)
    }

    func testQuickselectAgreesWithSorting() {
        for seed in 0..<20 as Range<UInt64> {
            let n = 1 + Int(seed * 37 % 301)
            // Few distinct values in some rounds, to exercise ties.
            let values = randomTensor([n], seed: seed).scalars.map { seed % 2 == 0 ? ($0 * 4).rounded() : $0 }
            let sorted = values.sorted()
            for k in [0, n / 3, n / 2, n - 1] {
                var copy = values
                XCTAssertEqual(MagnitudePruning.select(&copy, k), sorted[k], "seed \(seed) k \(k)")
            }
        }
    }

    func testPrunableWeightsOfAnExportedGraphAreConvAndGemmWeightsInOrder() throws {
        let model = try ModelZoo.build("mobilenet_v1", options: ModelOptions(classCount: 10, width: 0.25))
        let graph = try exportGraph(model, inputChannels: 3, height: 32, width: 32)
        let names = MagnitudePruning.prunableWeights(graph)
        let expected = model.namedParameters().filter { $0.name.hasSuffix(".weight") && $0.parameter.shape.count >= 2 }.map(\.name)
        XCTAssertEqual(names, expected)
        XCTAssertEqual(names.count, 28, "27 convolutions and the classifier")
    }

    // MARK: Masks during fine-tuning

    /// A small conv net; returns it with its named parameters.
    private func smallNetwork() -> (any Layer, [(name: String, parameter: Parameter)]) {
        let net = Sequential([
            Conv2D(3, 8, kernelSize: 3, padding: 1), BatchNorm2D(8), ReLU(), MaxPool2D(kernelSize: 2),
            Conv2D(8, 12, kernelSize: 3, padding: 1), BatchNorm2D(12), ReLU(), GlobalAvgPool(), Linear(12, 10),
        ])
        return (net, net.namedParameters())
    }

    func testMasksHoldPrunedWeightsAtZeroThroughSGDWithMomentumAndWeightDecay() {
        let (net, params) = smallNetwork()
        let images = randomTensor([6, 8, 8, 3], seed: 11), labels = [0, 1, 2, 3, 4, 9]
        let loss = SoftmaxCrossEntropy()
        let sgd = SGD(parameters: params, learningRate: 0.1, momentum: 0.9, weightDecay: 5e-3)
        net.train()
        func step(_ masks: PruningMasks?, applyAfter: Bool = true) {
            net.zeroGradients()
            _ = loss.loss(logits: net.forward(images), labels: labels)
            _ = net.backward(loss.gradient())
            masks?.maskGradients(of: params)
            sgd.step()
            if applyAfter { masks?.apply(to: params) }
        }
        // Two unmasked steps first, so the momentum buffers of the weights about to be pruned are not zero.
        step(nil)
        step(nil)
        let weights = params.filter { $0.parameter.shape.count >= 2 }
        let masks = MagnitudePruning.masks(params, sparsity: 0.6, global: true)
        XCTAssertEqual(Set(masks.masks.keys), Set(weights.map(\.name)))
        masks.apply(to: params)
        let before = weights.map { $0.parameter.value }
        for _ in 0..<4 { step(masks) }
        for ((name, p), old) in zip(weights, before) {
            let mask = masks.masks[name]!
            for i in 0..<mask.count where !mask[i] { XCTAssertEqual(p.value.scalars[i], 0, "\(name)[\(i)] moved off zero") }
            let moved = (0..<mask.count).filter { mask[$0] && p.value.scalars[$0] != old.scalars[$0] }.count
            XCTAssertGreaterThan(moved, 0, "\(name): the kept weights still train")
        }
        XCTAssertEqual(PruningMasks.keepingNonZeros(of: weights).prunedCount, masks.prunedCount)
        // Control: masking the gradients alone is not enough — momentum and weight decay move pruned weights.
        step(masks, applyAfter: false)
        let drifted = weights.reduce(0) { total, entry in
            total + zip(masks.masks[entry.name]!, entry.parameter.value.scalars).filter { !$0.0 && $0.1 != 0 }.count
        }
        XCTAssertGreaterThan(drifted, 0, "without re-applying the masks the momentum buffers move pruned weights")
    }

    func testScheduledPrunerInsideTheTrainerReachesTheFinalSparsityAndKeepsZeros() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-pruning-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: directory) }
        var c = TrainingConfiguration(model: "small_cnn", data: "shapes", samples: 96, resolution: 16, epochs: 2, batchSize: 16,
                                      learningRate: 0.05, optimizer: .sgd, seed: 2)
        c.momentum = 0.9
        c.weightDecay = 1e-3
        c.testSamples = 32
        c.threads = 2
        let (net, params) = smallNetwork()
        let trainer = try Trainer(configuration: c, data: try Trainer.openData(c), runDirectory: RunDirectory(directory),
                                  resume: false, customModel: net)
        // 12 steps: AGP from 0 to 0.8 between steps 0 and 8, every 4 steps (0 → 0.7 → 0.8).
        let schedule = try PruningSchedule(parsing: "agp:0-0.8@0-8/4")
        let pruner = ScheduledPruner(schedule: schedule, parameters: params, global: false)
        var seen: [Double] = []
        trainer.onStep = { _ in
            seen.append(pruner.currentSparsity)
            for (name, p) in params where pruner.masks.masks[name] != nil {
                let mask = pruner.masks.masks[name]!
                XCTAssertFalse(zip(mask, p.value.scalars).contains { !$0.0 && $0.1 != 0 }, "\(name) has a pruned weight off zero")
            }
        }
        pruner.install(on: trainer)
        XCTAssertEqual(trainer.totalSteps, 12)
        XCTAssertEqual(try trainer.run(), .finished)
        XCTAssertEqual(seen.count, 12)
        XCTAssertEqual(seen[0], 0)
        XCTAssertEqual(seen[4], 0.8 + (0 - 0.8) * pow(0.5, 3), accuracy: 1e-12)
        XCTAssertEqual(seen[11], 0.8)
        for name in pruner.names {
            let p = params.first { $0.name == name }!.parameter
            let zeros = p.value.scalars.filter { $0 == 0 }.count
            XCTAssertEqual(zeros, Int((0.8 * Double(p.count)).rounded()), "\(name) ends at exactly 80 %")
        }
    }

    /// Per-layer final targets: a layer with its own target follows the schedule's curve scaled to that target (AGP
    /// towards 0.95 for one layer while the rest go to 0.5), and masks only grow.
    func testScheduledPrunerWithLayerTargetsScalesTheCurvePerLayer() throws {
        let (_, params) = smallNetwork()
        let names = params.filter { $0.parameter.shape.count >= 2 }.map(\.name)
        let special = try XCTUnwrap(names.last), other = try XCTUnwrap(names.first)
        let schedule = try PruningSchedule(parsing: "agp:0-0.5@0-8/4")
        let pruner = ScheduledPruner(schedule: schedule, parameters: params, global: false, names: names,
                                     layerTargets: [special: 0.95])
        func zeroShare(_ name: String) -> Double {
            let p = params.first { $0.name == name }!.parameter
            return Double(p.value.scalars.filter { $0 == 0 }.count) / Double(p.count)
        }
        pruner.update(step: 4, totalSteps: 12)  // half-way: the curve is at 7/8 of its final value
        XCTAssertEqual(zeroShare(other), 0.5 * 7 / 8, accuracy: 0.02)
        XCTAssertEqual(zeroShare(special), 0.95 * 7 / 8, accuracy: 0.02)
        pruner.update(step: 12, totalSteps: 12)
        XCTAssertEqual(zeroShare(other), 0.5, accuracy: 0.02)
        XCTAssertEqual(zeroShare(special), 0.95, accuracy: 0.02)
    }

    // MARK: Schedules

    func testGradualScheduleFollowsZhuAndGupta() {
        let s = GradualPruningSchedule(initialSparsity: 0.1, finalSparsity: 0.9, startStep: 100, endStep: 500, frequency: 100)
        XCTAssertEqual(s.pruningSteps, 4)
        XCTAssertEqual(s.sparsity(atStep: 0), 0)
        XCTAssertEqual(s.sparsity(atStep: 99), 0)
        XCTAssertEqual(s.sparsity(atStep: 100), 0.1, accuracy: 1e-12)
        // t = 300: (t − t0)/(nΔt) = 0.5 → 0.9 + (0.1 − 0.9)·0.125 = 0.8.
        XCTAssertEqual(s.sparsity(atStep: 300), 0.8, accuracy: 1e-12)
        XCTAssertEqual(s.sparsity(atStep: 399), 0.8, accuracy: 1e-12, "held until the next pruning step")
        XCTAssertEqual(s.sparsity(atStep: 400), 0.9 - 0.8 / 64, accuracy: 1e-12)
        XCTAssertEqual(s.sparsity(atStep: 500), 0.9)
        XCTAssertEqual(s.sparsity(atStep: 10_000), 0.9)
        XCTAssertTrue(s.isPruningStep(300))
        XCTAssertFalse(s.isPruningStep(350))
        XCTAssertFalse(s.isPruningStep(600))
        var previous = 0.0
        for t in 0...600 {
            XCTAssertGreaterThanOrEqual(s.sparsity(atStep: t), previous)
            previous = s.sparsity(atStep: t)
        }
    }

    func testIterativeScheduleSplitsTheRunIntoRounds() {
        let s = IterativePruningSchedule(sparsities: [0.3, 0.5, 0.67])
        XCTAssertEqual((0..<9).map { s.sparsity(atStep: $0, totalSteps: 9) }, [0.3, 0.3, 0.3, 0.5, 0.5, 0.5, 0.67, 0.67, 0.67])
        XCTAssertEqual(s.sparsity(atStep: 100, totalSteps: 9), 0.67)
        let fixed = IterativePruningSchedule(sparsities: [0.3, 0.6], stepsPerRound: 2)
        XCTAssertEqual((0..<5).map { fixed.sparsity(atStep: $0, totalSteps: 100) }, [0.3, 0.3, 0.6, 0.6, 0.6])
    }

    func testScheduleStringsParseRoundTripAndRejectNonsenseWithTheReason() throws {
        let cases: [(String, PruningSchedule)] = [
            ("0.67", .oneShot(0.67)),
            ("oneshot:0.5", .oneShot(0.5)),
            ("iterative:0.3,0.5,0.67", .iterative(IterativePruningSchedule(sparsities: [0.3, 0.5, 0.67]))),
            ("iterative:0.3,0.6@200", .iterative(IterativePruningSchedule(sparsities: [0.3, 0.6], stepsPerRound: 200))),
            ("agp:0.0-0.67@0-300/50", .gradual(GradualPruningSchedule(initialSparsity: 0, finalSparsity: 0.67, startStep: 0,
                                                                       endStep: 300, frequency: 50))),
        ]
        for (text, expected) in cases {
            let parsed = try PruningSchedule(parsing: text)
            XCTAssertEqual(parsed, expected, text)
            XCTAssertEqual(try PruningSchedule(parsing: parsed.description), parsed, "description \(parsed.description)")
            let json = try JSONEncoder().encode(parsed)
            XCTAssertEqual(try JSONDecoder().decode(PruningSchedule.self, from: json), parsed)
        }
        XCTAssertEqual(try PruningSchedule(parsing: "agp:0.0-0.67@0-300/50").description, "agp:0.0-0.67@0-300/50")
        XCTAssertEqual(try PruningSchedule(parsing: "agp:0-0.8@0-8/4").finalSparsity, 0.8)
        let bad: [(String, String)] = [
            ("1.5", "not a fraction"), ("agp:0-0.5@0-300/70", "multiple of the frequency"), ("agp:0-0.5@300-0/50", "after the start"),
            ("agp:0-0.5", "expected agp"), ("iterative:0.5,0.3", "must not decrease"), ("iterative:", "expected iterative"),
            ("cubic:0.5", "unknown schedule"), ("iterative:0.3@0", "at least 1"), ("agp:0-x@0-10/5", "final sparsity 'x'"),
        ]
        for (text, reason) in bad {
            XCTAssertThrowsError(try PruningSchedule(parsing: text), text) { error in
                let message = String(describing: error)
                XCTAssertTrue(message.contains(reason) && message.contains(text), "\(text): \(message)")
            }
        }
    }
}
