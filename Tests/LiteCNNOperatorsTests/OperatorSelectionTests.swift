// Operator selection: predict's formulas on a hand-computed bank, the multiple-choice knapsack against brute-force
// enumeration on random small banks (never over budget, throws when infeasible), loss modes, kinds and uniform.
import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class OperatorSelectionTests: XCTestCase {
    typealias F = BankTestFixtures

    // MARK: Helpers

    private func entry(_ slot: OperatorSlot, _ kind: OperatorKind, beta: Double = 0.5, _ m: OperatorMeasurement) -> BankEntry {
        BankEntry(op: PluggableOperator(kind: kind, beta: beta, slot: slot, tensors: [:]), measurement: m)
    }

    /// The two slots of `tinyBase` (6912 and 3456 multiply-adds, 116 and 228 parameters) and three operators.
    private func handBank() throws -> OperatorBank {
        let slots = try OperatorSlots.find(in: F.tinyBase(), imageShape: [3, 8, 8])
        return OperatorBank(
            baseFingerprint: 0, imageShape: [3, 8, 8], slots: slots,
            base: BaseMeasurement(top1: 0.8, top5: 0.95, multiplyAdds: 20_000, parameters: 1000, latencyMs: 5, slotLatencyMs: [1, 0.5]),
            entries: [
                entry(slots[0], .lowRank, OperatorMeasurement(parameters: 40, multiplyAdds: 2000, latencyMs: 0.4, top1: 0.78, distillationError: 0.1)),
                entry(slots[1], .depthwise, beta: 1, OperatorMeasurement(parameters: 60, multiplyAdds: 1000, latencyMs: 0.3, top1: 0.81, distillationError: 0.2)),
                entry(slots[1], .fire, beta: 0.25, OperatorMeasurement(parameters: 30, multiplyAdds: 500)),
            ])
    }

    private static let fiveSlots: [OperatorSlot] = {
        let g = F.chain([(2, 3, 1, true, true), (3, 3, 1, true, true), (2, 3, 1, false, true), (3, 3, 1, true, false),
                         (2, 3, 1, true, true)], size: 4)
        return try! OperatorSlots.find(in: g, imageShape: [3, 4, 4])
    }()

    /// 3–5 slots with 2–3 operators each, every measurement present.
    private func randomBank(_ r: inout F.Random) -> OperatorBank {
        let slots = Array(Self.fiveSlots.prefix(r.int(3...5)))
        var entries: [BankEntry] = []
        for slot in slots {
            for _ in 0..<r.int(2...3) {
                let kind = OperatorKind.allCases[r.int(0...4)]
                entries.append(entry(slot, kind, beta: [0.25, 0.5, 0.75][r.int(0...2)], OperatorMeasurement(
                    parameters: r.int(0...slot.parameterCount), multiplyAdds: r.int(0...slot.multiplyAdds),
                    latencyMs: r.unit() * 0.8, top1: 0.72 - 0.05 * r.unit(), distillationError: r.unit())))
            }
        }
        let slotLatency = slots.map { _ in 0.2 + 0.8 * r.unit() }
        return OperatorBank(baseFingerprint: 1, imageShape: [3, 4, 4], slots: slots,
                            base: BaseMeasurement(top1: 0.71, multiplyAdds: slots.reduce(500) { $0 + $1.multiplyAdds },
                                                  parameters: slots.reduce(50) { $0 + $1.parameterCount },
                                                  latencyMs: slotLatency.reduce(0.3, +), slotLatencyMs: slotLatency),
                            entries: entries)
    }

    /// Every configuration of the bank.
    private func allConfigurations(_ bank: OperatorBank) -> [OperatorConfiguration] {
        var result = [OperatorConfiguration(choices: [])]
        for s in bank.slots.indices {
            let options: [Int?] = [nil] + bank.entries(forSlot: s).map { $0 }
            result = result.flatMap { c in options.map { OperatorConfiguration(choices: c.choices + [$0]) } }
        }
        return result
    }

    /// Σ max(0, base.top1 − top1) + 10⁻⁶·distillation error over the replaced slots.
    private func objective(_ c: OperatorConfiguration, _ bank: OperatorBank) -> Double {
        c.choices.compactMap { $0 }.reduce(0) { total, e in
            let m = bank.entries[e].measurement
            return total + max(0, bank.base.top1! - m.top1!) + 1e-6 * m.distillationError!
        }
    }

    private func cost(_ c: OperatorConfiguration, _ bank: OperatorBank, _ budget: Budget) -> Double {
        let p = OperatorSelection.predict(c, bank: bank)
        switch budget {
        case .multiplyAdds: return Double(p.multiplyAdds)
        case .weightBytes: return Double(p.weightBytes)
        case .latencyMs: return p.latencyMs!
        }
    }

    private func limit(_ budget: Budget) -> Double {
        switch budget {
        case let .multiplyAdds(v), let .weightBytes(v): return Double(v)
        case let .latencyMs(v): return v
        }
    }

    // MARK: Prediction

    func testPredictFollowsTheFormulasOnAHandComputedBank() throws {
        let bank = try handBank()
        XCTAssertEqual(bank.slots.map(\.multiplyAdds), [6912, 3456])
        XCTAssertEqual(bank.slots.map(\.parameterCount), [116, 228])
        // 20000 − (6912 − 2000) − (3456 − 1000); 1000 − (116 − 40) − (228 − 60); 5 − (1 − 0.4) − (0.5 − 0.3); 0.8 − 0.02 − 0.
        let both = OperatorSelection.predict(OperatorConfiguration(choices: [0, 1]), bank: bank)
        XCTAssertEqual(both.multiplyAdds, 12_632)
        XCTAssertEqual(both.parameters, 756)
        XCTAssertEqual(both.weightBytes, 3024)
        XCTAssertEqual(both.latencyMs!, 4.2, accuracy: 1e-12)
        XCTAssertEqual(both.top1!, 0.78, accuracy: 1e-12)
        // An operator without latency or top-1 measurements leaves those unknown.
        let fire = OperatorSelection.predict(OperatorConfiguration(choices: [nil, 2]), bank: bank)
        XCTAssertEqual(fire, ConfigurationPrediction(multiplyAdds: 17_044, parameters: 802, weightBytes: 3208, latencyMs: nil, top1: nil))
        let base = OperatorSelection.predict(.base(slotCount: 2), bank: bank)
        XCTAssertEqual(base, ConfigurationPrediction(multiplyAdds: 20_000, parameters: 1000, weightBytes: 4000, latencyMs: 5, top1: 0.8))
    }

    // MARK: Selection

    func testKnapsackEqualsBruteForceAndNeverExceedsTheBudget() throws {
        var r = F.Random(state: 42)
        for trial in 0..<50 {
            let bank = randomBank(&r)
            let configurations = allConfigurations(bank)
            for kind in 0..<3 {
                let budget: Budget
                let costs = configurations.map { cost($0, bank, kind == 0 ? .weightBytes(0) : kind == 1 ? .multiplyAdds(0) : .latencyMs(0)) }
                let low = costs.min()!, high = costs.max()!
                let target = low + (high - low) * r.unit()
                switch kind {
                case 0: budget = .weightBytes(Int(target))
                case 1: budget = .multiplyAdds(Int(target))
                default: budget = .latencyMs(target)
                }
                let value = limit(budget)
                guard value >= low else { continue }
                let chosen = try OperatorSelection.select(bank: bank, budget: budget)
                XCTAssertLessThanOrEqual(cost(chosen, bank, budget), value, "trial \(trial) \(budget)")
                for (s, c) in chosen.choices.enumerated() { if let c { XCTAssertEqual(bank.entries[c].op.slot.index, s) } }
                func best(within cap: Double) -> Double? {
                    zip(configurations, costs).filter { $0.1 <= cap }.map { objective($0.0, bank) }.min()
                }
                let optimum = best(within: value)!, found = objective(chosen, bank)
                XCTAssertGreaterThanOrEqual(found, optimum - 1e-12, "trial \(trial)")
                // Exact when the spare capacity fits the buckets in whole units; otherwise at least as good as the
                // optimum of a budget smaller by one bucket per slot.
                let spare = value - low
                if kind == 0 || (kind == 1 && spare <= Double(OperatorSelection.budgetBuckets)) {
                    XCTAssertEqual(found, optimum, accuracy: 1e-12, "trial \(trial) \(budget)")
                } else if let reduced = best(within: value - Double(bank.slots.count + 1) * spare / Double(OperatorSelection.budgetBuckets)) {
                    XCTAssertLessThanOrEqual(found, reduced + 1e-12, "trial \(trial) \(budget)")
                }
            }
        }
    }

    func testABudgetBelowTheCheapestConfigurationThrowsNamingBoth() throws {
        var r = F.Random(state: 7)
        for _ in 0..<10 {
            let bank = randomBank(&r)
            let cheapest = allConfigurations(bank).map { OperatorSelection.predict($0, bank: bank).multiplyAdds }.min()!
            XCTAssertNoThrow(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(cheapest)))
            XCTAssertThrowsError(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(cheapest - 1))) { e in
                XCTAssertTrue(e is SelectionError)
                XCTAssertTrue("\(e)".contains("budget \(cheapest - 1) multiply-adds"), "\(e)")
                XCTAssertTrue("\(e)".contains("cheapest configuration the bank allows: \(cheapest) multiply-adds"), "\(e)")
            }
        }
    }

    func testLooseBudgetsKeepTheBaseAndTightOnesTradeTheSmallestLoss() throws {
        let bank = try handBank()
        let depthwiseOnly = Set([OperatorKind.lowRank, .depthwise])
        // Everything fits: the depthwise operator (better than the base: loss 0, only its 10⁻⁶ tie-break) stays out.
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(20_000), kinds: depthwiseOnly).choices, [nil, nil])
        // 2456 multiply-adds must go: the depthwise operator on slot 1 does it without loss.
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(17_544), kinds: depthwiseOnly).choices, [nil, 1])
        // Slot 0's low rank (loss 0.02) is needed as well below 17 544 − 4912.
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(12_632), kinds: depthwiseOnly).choices, [0, 1])
        XCTAssertThrowsError(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(12_631), kinds: depthwiseOnly))
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .latencyMs(4.25), kinds: depthwiseOnly).choices, [0, 1])
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .weightBytes(4 * 832), kinds: depthwiseOnly).choices, [nil, 1])
        // Only depthwise allowed.
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(18_000), kinds: [.depthwise]).choices, [nil, 1])
    }

    func testOutputDivergenceRanksWhenEveryOperatorHasOne() throws {
        var bank = try handBank()
        // Same cost, same measured top-1 (no loss the test set can see), but different damage to the output: the
        // divergence must decide — top-1 alone would tie and keep the first.
        let slots = bank.slots
        bank.entries = [
            entry(slots[1], .depthwise, beta: 1, OperatorMeasurement(parameters: 60, multiplyAdds: 1000, top1: 0.8,
                                                                     distillationError: 0.1, outputDivergence: 0.3)),
            entry(slots[1], .lowRank, beta: 0.5, OperatorMeasurement(parameters: 60, multiplyAdds: 1000, top1: 0.8,
                                                                     distillationError: 0.2, outputDivergence: 0.01)),
            entry(slots[0], .lowRank, beta: 0.5, OperatorMeasurement(parameters: 40, multiplyAdds: 2000, top1: 0.8,
                                                                     distillationError: 0.3, outputDivergence: 0.5)),
        ]
        // 2456 multiply-adds to save: slot 1's low rank (divergence 0.01) beats its depthwise (0.3) and slot 0 (0.5).
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(17_544)).choices, [nil, 1])
        // Without divergences the same bank ranks by top-1 and the distillation tie-break: depthwise (0.1 < 0.2).
        for e in bank.entries.indices { bank.entries[e].measurement.outputDivergence = nil }
        XCTAssertEqual(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(17_544)).choices, [nil, 0])
    }

    func testMissingMeasurementsAreClearErrorsAndDistillationErrorRanksWithoutTopOne() throws {
        let bank = try handBank()
        // The Fire entry has no latency and no loss measurement.
        XCTAssertThrowsError(try OperatorSelection.select(bank: bank, budget: .latencyMs(10))) { e in
            XCTAssertTrue("\(e)".contains("latency") && "\(e)".contains("entry 2"), "\(e)")
        }
        XCTAssertThrowsError(try OperatorSelection.select(bank: bank, budget: .multiplyAdds(20_000))) { e in
            XCTAssertTrue("\(e)".contains("cannot rank entry 2"), "\(e)")
        }
        var noLatency = bank
        noLatency.base.slotLatencyMs = nil
        XCTAssertThrowsError(try OperatorSelection.select(bank: noLatency, budget: .latencyMs(10), kinds: [.lowRank])) { e in
            XCTAssertTrue("\(e)".contains("per-slot latency"), "\(e)")
        }
        // Without top-1, distillation error is the loss: two operators of equal cost, the more faithful wins.
        var distilled = bank
        distilled.base.top1 = nil
        distilled.entries[0].measurement.distillationError = 0.3
        distilled.entries[2].measurement = OperatorMeasurement(parameters: 60, multiplyAdds: 1000, distillationError: 0.15)
        XCTAssertEqual(try OperatorSelection.select(bank: distilled, budget: .multiplyAdds(18_000)).choices, [nil, 2])
        distilled.entries[2].measurement.distillationError = 0.25
        XCTAssertEqual(try OperatorSelection.select(bank: distilled, budget: .multiplyAdds(18_000)).choices, [nil, 1])
        // Equal top-1 losses: the 10⁻⁶ tie-break picks the lower distillation error.
        var tied = bank
        tied.entries[1].measurement.top1 = 0.7
        tied.entries[2].measurement = OperatorMeasurement(parameters: 60, multiplyAdds: 1000, latencyMs: 0.3, top1: 0.7, distillationError: 0.1)
        XCTAssertEqual(try OperatorSelection.select(bank: tied, budget: .multiplyAdds(18_000), kinds: [.depthwise, .fire]).choices, [nil, 2])
    }

    func testAFiftySlotBankWithFifteenOperatorsPerSlotIsSelectedQuicklyAndWithinBudget() throws {
        var r = F.Random(state: 3)
        let slots = (0..<50).map { i -> OperatorSlot in
            var s = Self.fiveSlots[i % 5]
            s.index = i
            return s
        }
        var entries: [BankEntry] = []
        for slot in slots {
            for k in 0..<15 {
                entries.append(entry(slot, OperatorKind.allCases[k % 5], beta: 0.1 * Double(k + 1), OperatorMeasurement(
                    parameters: r.int(0...slot.parameterCount), multiplyAdds: r.int(0...slot.multiplyAdds),
                    top1: 0.71 - 0.05 * r.unit(), distillationError: r.unit())))
            }
        }
        let total = slots.reduce(0) { $0 + $1.multiplyAdds }
        let bank = OperatorBank(baseFingerprint: 0, imageShape: [3, 4, 4], slots: slots,
                                base: BaseMeasurement(top1: 0.71, multiplyAdds: total, parameters: 10_000), entries: entries)
        let start = Date()
        let chosen = try OperatorSelection.select(bank: bank, budget: .multiplyAdds(total / 2))
        XCTAssertLessThan(Date().timeIntervalSince(start), 2)
        XCTAssertLessThanOrEqual(OperatorSelection.predict(chosen, bank: bank).multiplyAdds, total / 2)
        // At least as good as a greedy choice: replace, by least loss per multiply-add saved, until the budget fits.
        var greedy = OperatorConfiguration.base(slotCount: 50)
        while OperatorSelection.predict(greedy, bank: bank).multiplyAdds > total / 2 {
            var best: (slot: Int, entry: Int, rate: Double)?
            for s in 0..<50 {
                let current = greedy.choices[s].map { bank.entries[$0].measurement } ?? OperatorMeasurement(parameters: 0, multiplyAdds: slots[s].multiplyAdds, top1: 0.71, distillationError: 0)
                for e in bank.entries(forSlot: s) {
                    let m = bank.entries[e].measurement, saved = current.multiplyAdds - m.multiplyAdds
                    guard saved > 0 else { continue }
                    let rate = (max(0, 0.71 - m.top1!) + 1e-6 * m.distillationError! - max(0, 0.71 - current.top1!) - 1e-6 * current.distillationError!) / Double(saved)
                    if rate < best?.rate ?? .infinity { best = (s, e, rate) }
                }
            }
            greedy.choices[best!.slot] = best!.entry
        }
        XCTAssertLessThanOrEqual(objective(chosen, bank), objective(greedy, bank) + 1e-12)
    }

    func testUniformGivesEverySlotItsOperatorOfThatKindAndBeta() throws {
        let bank = try F.tinyBank()
        XCTAssertEqual(OperatorSelection.uniform(bank: bank, kind: .lowRank, beta: 0.5).choices, [0, 3])
        XCTAssertEqual(OperatorSelection.uniform(bank: bank, kind: .fire, beta: 0.25).choices, [2, 5])
        XCTAssertEqual(OperatorSelection.uniform(bank: bank, kind: .fire, beta: 0.5).choices, [nil, nil])
        let hand = try handBank()
        XCTAssertEqual(OperatorSelection.uniform(bank: hand, kind: .depthwise, beta: 1).choices, [nil, 1])
    }
}
