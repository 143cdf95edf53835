import Foundation
import LiteCNN
import _TestSupport
import XCTest

/// The cloud side end to end on a tiny network: every applicable operator prepared, distilled, measured, stored.
final class BankBuilderTests: XCTestCase {
    func testBuildDistillsMeasuresAndRoundTrips() throws {
        let base = tinyBase()
        var options = BankBuildOptions()
        options.betas = [0.5]
        options.latencyRuns = 3
        options.precision = .float32
        func build(steps: Int) throws -> OperatorBank {
            options.distillationSteps = steps
            return try BankBuilder(base: base, imageShape: [3, 12, 12], options: options)
                .build(calibration: tinyBatches(4), evaluation: tinyBatches(2, seed: 77))
        }
        let initial = try build(steps: 0)
        let bank = try build(steps: 80)
        // Every operator fits these same-padded 3×3 slots: 3 slots × 5 operators.
        XCTAssertEqual(bank.entries.count, 15)
        XCTAssertEqual(Set(bank.entries.map(\.op.kind)), Set(OperatorKind.allCases))
        XCTAssertEqual(bank.base.slotLatencyMs?.count, 3)
        XCTAssertEqual(bank.base.multiplyAdds, try StructuredPruning.multiplyAdds(base, imageShape: [3, 12, 12]))
        XCTAssertNotNil(bank.base.top1)
        for (e, before) in zip(bank.entries, initial.entries) {
            XCTAssertEqual(e.op.kind, before.op.kind)
            XCTAssertEqual(e.measurement.multiplyAdds, e.op.multiplyAdds)
            XCTAssertEqual(e.measurement.parameters, e.op.parameterCount)
            XCTAssertLessThan(e.measurement.multiplyAdds, e.op.slot.multiplyAdds)
            XCTAssertNotNil(e.measurement.latencyMs)
            XCTAssertNotNil(e.measurement.top1)
            XCTAssertGreaterThanOrEqual(try XCTUnwrap(e.measurement.outputDivergence), 0)
            let error = try XCTUnwrap(e.measurement.distillationError), start = try XCTUnwrap(before.measurement.distillationError)
            XCTAssertLessThanOrEqual(error, start + 1e-9, "\(e.op.kind) on slot \(e.op.slot.index): distillation made it worse")
        }
        // Fire starts from scratch: distillation must really train it.
        let fire = zip(bank.entries, initial.entries).filter { $0.0.op.kind == .fire }
        let after = fire.map { $0.0.measurement.distillationError! }.reduce(0, +)
        let before = fire.map { $0.1.measurement.distillationError! }.reduce(0, +)
        XCTAssertLessThan(after, 0.7 * before, "fire: \(before) → \(after)")
        // The exact low-rank initialization of slot 1 stays (near) exact.
        let exact = bank.entries.first { $0.op.slot.index == 1 && $0.op.kind == .lowRank }!
        XCTAssertLessThan(exact.measurement.distillationError!, 1e-6)
        XCTAssertLessThan(exact.measurement.outputDivergence!, 1e-6, "an exact operator leaves the output distribution alone")
        XCTAssertGreaterThan(bank.entries.map { $0.measurement.outputDivergence! }.max()!, 1e-4, "the divergence can be non-zero")

        let bytes = OperatorBankFile.serialize(bank)
        XCTAssertEqual(try OperatorBankFile.parse(bytes), bank)
        // Parameter separation: the bank holds the operators only, the base's weights stay out of it.
        let operatorFloats = bank.entries.reduce(0) { $0 + $1.op.tensors.values.reduce(0) { $0 + $1.count } }
        XCTAssertLessThan(bytes.count, 4 * operatorFloats + 64 * 1024)
    }

    func testAHalfPrecisionBankIsMeasuredWithTheValuesItStores() throws {
        var options = BankBuildOptions()
        options.operators = [.lowRank, .bottleneck]
        options.distillationSteps = 10
        options.latencyRuns = 1
        let bank = try BankBuilder(base: tinyBase(), imageShape: [3, 12, 12], options: options)
            .build(calibration: tinyBatches(3), evaluation: tinyBatches(1, seed: 8))
        XCTAssertEqual(bank.precision, .float16)
        for e in bank.entries {
            for (name, t) in e.op.tensors {
                XCTAssertTrue(t.scalars.allSatisfy(HalfPrecision.isExactlyRepresentable), "\(e.op.kind) \(name) is not rounded")
            }
        }
        let bytes = OperatorBankFile.serialize(bank)
        XCTAssertEqual(try OperatorBankFile.parse(bytes), bank, "the file holds exactly what was measured")
        var single = bank
        single.precision = .float32
        let floats = bank.entries.reduce(0) { $0 + $1.op.tensors.values.reduce(0) { $0 + $1.count } }
        XCTAssertEqual(OperatorBankFile.serialize(single).count - bytes.count, 2 * floats, "2 bytes per value instead of 4")
        // The exact low-rank operator of slot 1 stays close: float16 rounds its factors, nothing more.
        let exact = bank.entries.first { $0.op.slot.index == 1 && $0.op.kind == .lowRank }!
        XCTAssertLessThan(exact.measurement.distillationError!, 1e-4)
    }

    func testAGraphWithoutSlotsIsRefused() throws {
        let w = Tensor(shape: [4, 3, 1, 1], scalars: Array(repeating: 0.5, count: 12))
        let graph = Graph(inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(3), .fixed(8), .fixed(8)])],
                          outputs: [ValueInfo(name: "y", shape: nil)],
                          nodes: [Node(name: "c", opType: "Conv", inputs: ["x", "w"], outputs: ["y"])],
                          initializers: ["w": .float(w)])
        XCTAssertThrowsError(try BankBuilder(base: graph, imageShape: [3, 8, 8])) { XCTAssertTrue("\($0)".contains("no slot"), "\($0)") }
    }
}
