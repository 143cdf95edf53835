import Foundation
import LiteCNN
import _TestSupport
import XCTest

/// End-to-end fine-tuning of a bank: the switchable graph as a trainable network, and the stage itself.
final class OperatorFineTuningTests: XCTestCase {
    func bank(steps: Int = 20, precision: BankPrecision = .float32) throws -> OperatorBank {
        var options = BankBuildOptions()
        options.operators = [.lowRank, .fire, .depthwise]
        options.betas = [0.25]
        options.distillationSteps = steps
        options.latencyRuns = 1
        options.precision = precision
        return try BankBuilder(base: tinyBase(), imageShape: [3, 12, 12], options: options)
            .build(calibration: tinyBatches(3), evaluation: [])
    }

    /// A `GraphNetwork` of the switchable graph computes, for every selection, what a network of that configuration's
    /// ordinary graph computes — forward, input gradient and the selected operators' parameter gradients — and only
    /// the selected alternatives' multiply-adds count.
    func testSwitchableNetworkEqualsTheConfiguredGraphForEverySelection() throws {
        let base = tinyBase(), bank = try bank(steps: 0)
        let (graph, groups) = try SwitchableGraph.switchable(base: base, bank: bank)
        let network = try GraphNetwork(graph: graph, imageShape: [3, 12, 12])
        XCTAssertEqual(network.alternativeCounts, groups.map { $0.entries.count + 1 })
        let x = tinyBatches(1, batch: 3)[0].images
        let dy = randomTensor([3, 4], seed: 9)
        var random = SeededGenerator(seed: 4)
        for trial in 0..<6 {
            let selection = groups.map { trial == 0 ? 0 : Int(random.next() % UInt64($0.entries.count + 1)) }
            var configuration = OperatorConfiguration.base(slotCount: bank.slots.count)
            for (g, group) in groups.enumerated() where selection[g] > 0 { configuration.choices[group.slot] = group.entries[selection[g] - 1] }
            let reference = try GraphNetwork(graph: SwitchableGraph.configured(configuration, base: base, bank: bank),
                                             imageShape: [3, 12, 12])
            network.selection = selection
            for n in [network, reference] {
                n.freezesBatchNormStatistics = true
                n.train()
                n.zeroGradients()
            }
            let y = network.forward(x), expected = reference.forward(x)
            XCTAssertEqual(y.scalars, expected.scalars, "selection \(selection)")
            let dx = network.backward(dy), expectedDx = reference.backward(dy)
            XCTAssertEqual(dx.scalars, expectedDx.scalars, "input gradient, selection \(selection)")
            for (name, p) in reference.namedParameters() where p.isTrainable {
                let q = try XCTUnwrap(network.parameter(named: name), name)
                XCTAssertEqual(q.gradient.scalars, p.gradient.scalars, "\(name), selection \(selection)")
            }
            // Unselected operators receive nothing.
            for (g, group) in groups.enumerated() {
                for (j, e) in group.entries.enumerated() where j + 1 != selection[g] {
                    for name in bank.entries[e].op.tensors.keys {
                        let p = try XCTUnwrap(network.parameter(named: "bank/\(e)/" + name))
                        XCTAssertTrue(p.gradient.count == 0 || p.gradient.scalars.allSatisfy { $0 == 0 }, "bank/\(e)/\(name)")
                    }
                }
            }
            XCTAssertEqual(network.localMultiplyAdds(for: [1, 12, 12, 3]), reference.localMultiplyAdds(for: [1, 12, 12, 3]))
        }
    }

    /// An ordinary graph has no groups; a switchable graph whose tags name no `Select` input is refused, naming the node.
    func testGroupsOfOrdinaryAndMalformedGraphs() throws {
        let network = try GraphNetwork(graph: tinyBase(), imageShape: [3, 12, 12])
        XCTAssertEqual(network.alternativeCounts, [])
        XCTAssertEqual(network.selection, [])
        var (graph, _) = try SwitchableGraph.switchable(base: tinyBase(), bank: try bank(steps: 0))
        let i = try XCTUnwrap(graph.nodes.firstIndex { $0.attributes[alternativeAttribute] != nil })
        graph.nodes[i].attributes[alternativeAttribute] = .ints([0, 99])
        XCTAssertThrowsError(try GraphNetwork(graph: graph, imageShape: [3, 12, 12])) {
            XCTAssertTrue("\($0)".contains(graph.nodes[i].name), "\($0)")
        }
    }

    /// The stage trains the operators, nothing else: the base's weights and every BatchNorm's statistics are
    /// unchanged, the loss falls, a float16 bank stays exactly representable, and the bank still matches its base.
    func testFineTuningTrainsOnlyTheOperatorsAndLowersTheLoss() throws {
        let base = tinyBase()
        let before = try bank(steps: 5, precision: .float16)
        var tuned = before
        var options = OperatorFineTuningOptions()
        options.steps = 60
        options.learningRate = 3e-3
        options.alpha = 1
        options.budgetShares = []  // random configurations: every operator is trained
        let report = try OperatorFineTuning.fineTune(&tuned, base: base, batches: tinyBatches(4), options: options)
        XCTAssertEqual(report.steps, 60)
        XCTAssertLessThan(report.finalLoss, report.initialLoss, "\(report)")
        XCTAssertNoThrow(try tuned.validate(against: base))
        XCTAssertEqual(tuned.precision, .float16)
        var changed = 0
        for (e, (a, b)) in zip(tuned.entries, before.entries).enumerated() {
            for (name, t) in a.op.tensors {
                XCTAssertTrue(t.scalars.allSatisfy(HalfPrecision.isExactlyRepresentable), "entry \(e) \(name)")
                let old = try XCTUnwrap(b.op.tensors[name])
                if name.hasSuffix(".mean") || name.hasSuffix(".var") {
                    XCTAssertEqual(t.scalars, old.scalars, "entry \(e) \(name): BatchNorm statistics must stay")
                } else if t.scalars != old.scalars {
                    changed += 1
                }
            }
        }
        XCTAssertGreaterThan(changed, 0)
        XCTAssertEqual(tuned.metadata["finetune_steps"], "60")
        // The fine-tuned bank measured through the runtime: the operators now do what was trained.
        let model = try SwitchableModel(base: base, bank: tuned)
        XCTAssertNoThrow(try model.apply(.base(slotCount: tuned.slots.count)))
    }

    /// Fine-tuning inside `BankBuilder` comes after the one-slot measurements, which it leaves as they were (so the
    /// selection keeps choosing the configurations that were trained), and changes the operators.
    func testBuilderFineTunesAfterMeasuringAndKeepsTheMeasurements() throws {
        var options = BankBuildOptions()
        options.operators = [.fire]
        options.betas = [0.25]
        options.distillationSteps = 5
        options.latencyRuns = 1
        options.fineTuning.steps = 10
        let builder = try BankBuilder(base: tinyBase(), imageShape: [3, 12, 12], options: options)
        let bank = try builder.build(calibration: tinyBatches(2), evaluation: tinyBatches(1, seed: 7),
                                     fineTuningImages: tinyBatches(3, seed: 12))
        XCTAssertEqual(builder.fineTuningReport?.steps, 10)
        XCTAssertEqual(bank.metadata["finetune_steps"], "10")
        XCTAssertEqual(bank.metadata["finetune_images"], "24")
        options.fineTuning.steps = 0
        let untuned = try BankBuilder(base: tinyBase(), imageShape: [3, 12, 12], options: options)
            .build(calibration: tinyBatches(2), evaluation: tinyBatches(1, seed: 7))
        for (a, b) in zip(bank.entries, untuned.entries) {  // (latencies are timed anew in each build)
            XCTAssertEqual(a.measurement.top1, b.measurement.top1)
            XCTAssertEqual(a.measurement.outputDivergence, b.measurement.outputDivergence)
            XCTAssertEqual(a.measurement.distillationError, b.measurement.distillationError)
        }
        XCTAssertNotEqual(bank.entries.map(\.op.tensors), untuned.entries.map(\.op.tensors))
    }

    func testBadOptionsAreRefused() throws {
        var tuned = try bank(steps: 0)
        var options = OperatorFineTuningOptions()
        options.steps = 2
        XCTAssertThrowsError(try OperatorFineTuning.fineTune(&tuned, base: tinyBase(), batches: [], options: options)) {
            XCTAssertTrue("\($0)".contains("calibration"), "\($0)")
        }
        XCTAssertThrowsError(try OperatorFineTuning.fineTune(&tuned, base: tinyBase(seed: 11), batches: tinyBatches(1), options: options))
    }
}
