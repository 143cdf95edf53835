import Foundation
import LiteCNN
import _TestSupport
import XCTest

/// A tiny base network for bank tests: 12×12 RGB → stem 3×3 (BN, ReLU) → 3×3 (BN, ReLU) → 3×3 stride 2 (BN) → ReLU →
/// global pool → Gemm to 4 classes. Slot 1's kernel has spatial rank 2 (`W[o,i,y,x] = Σ_r A[r,i,x]·B[o,r,y]`), so a
/// low-rank operator with R ≥ 2 reproduces it exactly.
func tinyBase(seed: UInt64 = 3) -> Graph {
    var s = seed
    func r() -> Float {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(s >> 40) / Double(1 << 24)) * 2 - 1
    }
    func tensor(_ shape: [Int], _ f: () -> Float) -> Constant { .float(Tensor(shape: shape, scalars: (0..<shape.reduce(1, *)).map { _ in f() })) }
    var initializers: [String: Constant] = [:]
    var nodes: [Node] = []
    func unit(_ name: String, _ x: String, cin: Int, cout: Int, stride: Int, relu: Bool, weight: Constant? = nil) -> String {
        initializers["\(name).w"] = weight ?? tensor([cout, cin, 3, 3]) { r() * 0.4 }
        initializers["\(name).g"] = tensor([cout]) { 0.8 + 0.4 * abs(r()) }
        initializers["\(name).b"] = tensor([cout]) { 0.1 * r() }
        initializers["\(name).m"] = tensor([cout]) { 0.1 * r() }
        initializers["\(name).v"] = tensor([cout]) { 0.5 + abs(r()) }
        nodes.append(Node(name: "\(name)/conv", opType: "Conv", inputs: [x, "\(name).w"], outputs: ["\(name).c"],
                          attributes: ["pads": .ints([1, 1, 1, 1]), "strides": .ints([stride, stride]), "kernel_shape": .ints([3, 3])]))
        nodes.append(Node(name: "\(name)/bn", opType: "BatchNormalization",
                          inputs: ["\(name).c", "\(name).g", "\(name).b", "\(name).m", "\(name).v"], outputs: ["\(name).n"]))
        guard relu else { return "\(name).n" }
        nodes.append(Node(name: "\(name)/relu", opType: "Relu", inputs: ["\(name).n"], outputs: ["\(name).r"]))
        return "\(name).r"
    }
    // Slot 1's weight: spatial rank 2.
    let (c, k, rank) = (8, 3, 2)
    let a = (0..<(rank * c * k)).map { _ in r() * 0.5 }, b = (0..<(c * rank * k)).map { _ in r() * 0.5 }
    var w = [Float](repeating: 0, count: c * c * k * k)
    for o in 0..<c { for i in 0..<c { for y in 0..<k { for x in 0..<k {
        var v: Float = 0
        for q in 0..<rank { v += a[(q * c + i) * k + x] * b[(o * rank + q) * k + y] }
        w[((o * c + i) * k + y) * k + x] = v
    } } } }
    var h = unit("stem", "image", cin: 3, cout: 8, stride: 1, relu: true)
    h = unit("mid", h, cin: 8, cout: 8, stride: 1, relu: true, weight: .float(Tensor(shape: [c, c, k, k], scalars: w)))
    h = unit("down", h, cin: 8, cout: 12, stride: 2, relu: false)
    nodes.append(Node(name: "relu", opType: "Relu", inputs: [h], outputs: ["act"]))
    nodes.append(Node(name: "pool", opType: "GlobalAveragePool", inputs: ["act"], outputs: ["pooled"]))
    nodes.append(Node(name: "flatten", opType: "Flatten", inputs: ["pooled"], outputs: ["flat"]))
    initializers["fc.w"] = tensor([4, 12]) { r() }
    initializers["fc.b"] = tensor([4]) { 0.1 * r() }
    nodes.append(Node(name: "fc", opType: "Gemm", inputs: ["flat", "fc.w", "fc.b"], outputs: ["logits"], attributes: ["transB": .int(1)]))
    return Graph(inputs: [ValueInfo(name: "image", shape: [.symbolic("N"), .fixed(3), .fixed(12), .fixed(12)])],
                 outputs: [ValueInfo(name: "logits", shape: nil)], nodes: nodes, initializers: initializers)
}

/// NHWC batches of deterministic pseudo-random images with labels.
func tinyBatches(_ count: Int, batch: Int = 8, seed: UInt64 = 5) -> [LabeledBatch] {
    var s = seed
    func r() -> Float {
        s = s &* 6364136223846793005 &+ 1442695040888963407
        return Float(Double(s >> 40) / Double(1 << 24)) * 2 - 1
    }
    return (0..<count).map { _ in
        LabeledBatch(images: Tensor(shape: [batch, 12, 12, 3], scalars: (0..<(batch * 432)).map { _ in r() }, layout: .nhwc),
                     labels: (0..<batch).map { _ in Int((r() + 1) * 1.999) })
    }
}

final class SwitchableModelTests: XCTestCase {
    func lowRankBank(_ base: Graph) throws -> OperatorBank {
        var options = BankBuildOptions()
        options.operators = [.lowRank, .depthwise]
        options.betas = [0.25]
        options.distillationSteps = 0
        options.latencyRuns = 2
        options.precision = .float32   // exactness checks need the unrounded factors
        return try BankBuilder(base: base, imageShape: [3, 12, 12], options: options)
            .build(calibration: tinyBatches(2), evaluation: [])
    }

    /// The identity check: swapping in an operator that reproduces its unit exactly changes nothing.
    func testExactOperatorLeavesTheOutputUnchanged() throws {
        let base = tinyBase()
        let bank = try lowRankBank(base)
        XCTAssertEqual(bank.slots.count, 3)
        let model = try SwitchableModel(base: base, bank: bank)
        let x = tinyBatches(1)[0].images
        let reference = try InferenceEngine(graph: base).runNHWC(x)
        XCTAssertEqual(try model.runNHWC(x).scalars, reference.scalars, "the base configuration is the base")

        let exact = bank.entries.firstIndex { $0.op.slot.index == 1 && $0.op.kind == .lowRank }!
        XCTAssertEqual(PluggableOperator.innerChannels(kind: .lowRank, beta: 0.25, slot: bank.slots[1]), 2)
        var configuration = OperatorConfiguration.base(slotCount: 3)
        configuration.choices[1] = exact
        try model.apply(configuration)
        let swapped = try model.runNHWC(x)
        let scale = reference.scalars.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(swapped.scalars, reference.scalars).map { abs($0 - $1) }.max()!, 1e-4 * scale)
        let plain = try InferenceEngine(graph: model.configuredGraph()).runNHWC(x)
        XCTAssertLessThanOrEqual(zip(plain.scalars, reference.scalars).map { abs($0 - $1) }.max()!, 1e-4 * scale)

        // The same operator on slot 0 (a random kernel of full rank) is not exact: the check can fail.
        let inexact = bank.entries.firstIndex { $0.op.slot.index == 0 && $0.op.kind == .lowRank }!
        configuration = OperatorConfiguration.base(slotCount: 3)
        configuration.choices[0] = inexact
        try model.apply(configuration)
        let changed = try model.runNHWC(x)
        XCTAssertGreaterThan(zip(changed.scalars, reference.scalars).map { abs($0 - $1) }.max()!, 1e-3 * scale)
    }

    func testConfiguredGraphDropsReplacedWeightsAndMatchesTheSwitchableRun() throws {
        let base = tinyBase()
        let bank = try lowRankBank(base)
        let model = try SwitchableModel(base: base, bank: bank)
        var configuration = OperatorConfiguration.base(slotCount: 3)
        configuration.choices[0] = bank.entries.firstIndex { $0.op.slot.index == 0 && $0.op.kind == .depthwise }!
        configuration.choices[2] = bank.entries.firstIndex { $0.op.slot.index == 2 && $0.op.kind == .lowRank }!
        try model.apply(configuration)
        XCTAssertEqual(model.configuration, configuration)
        let graph = try model.configuredGraph()
        XCTAssertNil(graph.initializers["stem.w"])
        XCTAssertNil(graph.initializers["down.v"])
        XCTAssertNotNil(graph.initializers["mid.w"])
        XCTAssertFalse(graph.nodes.contains { $0.domain == alternativesDomain })
        let predicted = OperatorSelection.predict(configuration, bank: bank)
        XCTAssertEqual(predicted.multiplyAdds, try StructuredPruning.multiplyAdds(graph, imageShape: [3, 12, 12]))
        XCTAssertEqual(predicted.parameters, StructuredPruning.parameterCount(graph))
        let x = tinyBatches(1, seed: 9)[0].images
        let a = try model.runNHWC(x), b = try InferenceEngine(graph: graph).runNHWC(x)
        let scale = b.scalars.map(abs).max()!
        XCTAssertLessThanOrEqual(zip(a.scalars, b.scalars).map { abs($0 - $1) }.max()!, 1e-5 * scale)
    }

    func testSwitchingUnderConcurrentInferenceNeverMixesConfigurations() throws {
        let base = tinyBase()
        let bank = try lowRankBank(base)
        let model = try SwitchableModel(base: base, bank: bank)
        let x = tinyBatches(1)[0].images
        let light = OperatorConfiguration(choices: (0..<3).map { s in bank.entries.firstIndex { $0.op.slot.index == s && $0.op.kind == .depthwise } })
        let configurations = [OperatorConfiguration.base(slotCount: 3), light]
        let references = try configurations.map { c -> [Float] in
            try model.apply(c)
            return try model.runNHWC(x).scalars
        }
        XCTAssertNotEqual(references[0], references[1])
        let (counts, _) = try Tally.runWhileSwitching(
            iterations: 200, references: references, matches: { $0 == $1 }, run: { try model.runNHWC(x).scalars },
            pause: 100, minimumSwitches: 10, switchTo: { try model.apply(configurations[$0]) })
        XCTAssertEqual(counts.failures, 0)
        XCTAssertEqual(counts.torn, 0, "a run mixed two configurations")
        XCTAssertGreaterThanOrEqual(counts.seen.reduce(0, +), 400, "every run matched a reference")
        XCTAssertGreaterThan(counts.seen[0], 0)
        XCTAssertGreaterThan(counts.seen[1], 0)
    }

    func testLatencyCalibrationTimesEveryOperatorInTheRunningNetwork() throws {
        let base = tinyBase()
        let model = try SwitchableModel(base: base, bank: try lowRankBank(base))
        var stale = model.bank
        for e in stale.entries.indices { stale.entries[e].measurement.latencyMs = nil }
        try model.calibrateLatency(runs: 3)
        let bank = model.bank
        XCTAssertEqual(bank.entries.count, stale.entries.count)
        XCTAssertTrue(bank.entries.allSatisfy { ($0.measurement.latencyMs ?? 0) > 0 }, "every operator was timed")
        XCTAssertTrue(bank.base.slotLatencyMs!.allSatisfy { $0 > 0 })
        XCTAssertGreaterThan(bank.base.latencyMs!, bank.base.slotLatencyMs!.reduce(0, +), "the units are part of the network")
        XCTAssertEqual(model.engine.selection, [0, 0, 0], "calibration leaves the selection as it was")
        // A latency budget between the cheapest and the base configuration is now predicted with these figures.
        let cheapest = OperatorSelection.predict(OperatorConfiguration(choices: (0..<3).map { s in
            bank.entries.indices.filter { bank.entries[$0].op.slot.index == s }.min { bank.entries[$0].measurement.latencyMs! < bank.entries[$1].measurement.latencyMs! } }),
            bank: bank).latencyMs!
        let budget = (cheapest + bank.base.latencyMs!) / 2
        let chosen = try model.configure(budget: .latencyMs(budget))
        XCTAssertLessThanOrEqual(chosen.prediction.latencyMs!, budget)
    }

    func testABankForAnotherBaseIsRefused() throws {
        let bank = try lowRankBank(tinyBase())
        XCTAssertThrowsError(try SwitchableModel(base: tinyBase(seed: 4), bank: bank)) { error in
            XCTAssertTrue("\(error)".contains("fingerprint"), "\(error)")
        }
        var wrongEntry = OperatorConfiguration.base(slotCount: 3)
        wrongEntry.choices[0] = bank.entries.firstIndex { $0.op.slot.index == 2 }!
        let model = try SwitchableModel(base: tinyBase(), bank: bank)
        XCTAssertThrowsError(try model.apply(wrongEntry)) { XCTAssertTrue("\($0)".contains("slot 0"), "\($0)") }
        XCTAssertEqual(model.configuration, .base(slotCount: 3), "a refused configuration changes nothing")
    }
}
