import Foundation
import LiteCNN
import XCTest

final class ModelSummaryTests: XCTestCase {
    /// conv 3→8 k3 s2 p1, BN, ReLU, depthwise k3 p1, global pool, linear 8→10.
    private func makeNetwork() -> Sequential {
        Sequential(named: [
            ("stem", Conv2D(3, 8, kernelSize: 3, stride: 2, padding: 1)),
            ("bn", BatchNorm2D(8)),
            ("act", ReLU()),
            ("dw", Conv2D(8, 8, kernelSize: 3, padding: 1, groups: 8)),
            ("pool", GlobalAvgPool()),
            ("fc", Linear(8, 10)),
        ])
    }

    func testRowsAndTotals() throws {
        let summary = ModelSummary(model: makeNetwork(), inputShape: [2, 32, 32, 3], name: "tiny")
        XCTAssertEqual(summary.rows.map(\.path), ["stem", "bn", "act", "dw", "pool", "fc"])
        XCTAssertEqual(summary.rows.map(\.type), ["Conv2D", "BatchNorm2D", "ReLU", "Conv2D", "GlobalAvgPool", "Linear"])
        XCTAssertEqual(summary.rows[0].outputShape, [2, 8, 16, 16], "4-D shapes are shown as [N, C, H, W]")
        XCTAssertEqual(summary.rows[4].outputShape, [2, 8])
        XCTAssertEqual(summary.rows.map(\.parameters), [3 * 8 * 9 + 8, 16, 0, 8 * 9 + 8, 0, 8 * 10 + 10])
        XCTAssertEqual(summary.rows.map(\.multiplyAdds), [2 * 16 * 16 * 8 * 27, 0, 0, 2 * 16 * 16 * 8 * 9, 0, 2 * 80])
        XCTAssertEqual(summary.inputShape, [2, 3, 32, 32])
        XCTAssertEqual(summary.outputShape, [2, 10])
        XCTAssertEqual(summary.parameters, 224 + 16 + 80 + 90)
        XCTAssertEqual(summary.buffers, 16)
        XCTAssertEqual(summary.multiplyAdds, 110_592 + 36_864 + 160)
        XCTAssertEqual(summary.fp32Bytes, (410 + 16) * 4)

        let table = summary.renderTable()
        XCTAssertTrue(table.contains("Total params:   410"), table)
        XCTAssertTrue(table.contains("[2, 8, 16, 16]"), table)
        XCTAssertTrue(table.contains("110,592"), table)
    }

    func testJSONHasIntegerTotalsAndRoundTrips() throws {
        let summary = ModelSummary(model: makeNetwork(), inputShape: [1, 16, 16, 3], name: "tiny")
        let data = try JSONEncoder().encode(summary)
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        XCTAssertEqual(object["params"] as? Int, 410)
        XCTAssertEqual(object["macs"] as? Int, summary.multiplyAdds)
        XCTAssertEqual((object["layers"] as? [[String: Any]])?.count, 6)
        XCTAssertEqual((object["layers"] as? [[String: Any]])?.first?["output_shape"] as? [Int], [1, 8, 8, 8])
        XCTAssertEqual(try JSONDecoder().decode(ModelSummary.self, from: data), summary)
    }

    func testNumberFormatting() {
        XCTAssertEqual(ModelSummary.grouped(2_542_856), "2,542,856")
        XCTAssertEqual(ModelSummary.grouped(-1000), "-1,000")
        XCTAssertEqual(ModelSummary.grouped(999), "999")
        XCTAssertEqual(ModelSummary.scaled(56_510_000), "56.51 M")
        XCTAssertEqual(ModelSummary.scaled(1_830_000_000), "1.83 G")
        XCTAssertEqual(ModelSummary.scaled(12), "12")
        XCTAssertEqual(ModelSummary.formatFixed(0.005, decimals: 2), "0.01")
        XCTAssertEqual(ModelSummary.formatFixed(9.999, decimals: 2), "10.00")
        XCTAssertEqual(ModelSummary.megabytes(10_171_424), "9.70")
    }

    // MARK: Resolution checks

    func testSmallestResolutionOfConvThenPool() throws {
        // conv k3 s2 (no padding) needs 3 pixels; its output (R−3)/2+1 must reach the pool's kernel 3: R ≥ 7.
        let model = Sequential(named: [("conv", Conv2D(3, 4, kernelSize: 3, stride: 2)),
                                       ("pool", MaxPool2D(kernelSize: 3, stride: 2)),
                                       ("head", GlobalAvgPool())])
        XCTAssertEqual(ModelSummary.smallestResolution(of: model, inputChannels: 3, probeResolution: 64), 7)
        XCTAssertThrowsError(try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: 6, probeResolution: 64)) { error in
            let text = "\(error)"
            XCTAssertTrue(text.contains("pool (MaxPool2D"), text)
            XCTAssertTrue(text.contains("smallest resolution that works is 7"), text)
        }
        XCTAssertThrowsError(try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: 2, probeResolution: 64)) { error in
            XCTAssertTrue("\(error)".contains("conv (Conv2D"), "\(error)")
        }
        for resolution in 7...40 {
            try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: resolution, probeResolution: 64)
            let output = ModelSummary(model: model, inputShape: [1, resolution, resolution, 3]).outputShape
            XCTAssertEqual(output, [1, 4])
        }
    }

    func testResidualBranchesThatWouldDisagreeAreCaught() throws {
        // Body k3 s2 p1 gives ⌈R/2⌉, the shortcut's 2×2 average pool ⌊R/2⌋: odd resolutions would trap in trace.
        let block = Residual(Conv2D(4, 4, kernelSize: 3, stride: 2, padding: 1), shortcut: AvgPool2D(kernelSize: 2))
        let model = Sequential(named: [("stem", Conv2D(3, 4, kernelSize: 1)), ("block", block), ("head", GlobalAvgPool())])
        for resolution in 2...24 {
            let result = Result { try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: resolution, probeResolution: 32) }
            if resolution % 2 == 0 {
                XCTAssertNoThrow(try result.get(), "resolution \(resolution)")
                _ = ModelSummary(model: model, inputShape: [1, resolution, resolution, 3])
            } else {
                XCTAssertThrowsError(try result.get(), "resolution \(resolution)") { error in
                    XCTAssertTrue("\(error)".contains("must match"), "\(error)")
                }
            }
        }
    }

    func testConcatBranchesAndSqueezeExcitationAreFollowed() throws {
        let fire = Concat([("a", Conv2D(4, 2, kernelSize: 1)), ("b", Conv2D(4, 2, kernelSize: 3, padding: 1))])
        let model = Sequential(named: [
            ("stem", Conv2D(3, 4, kernelSize: 3, stride: 2)),
            ("fire", fire),
            ("se", SqueezeExcitation(inputChannels: 4, squeezeChannels: 2)),
            ("pool", MaxPool2D(kernelSize: 3, stride: 2, ceilMode: true)),
            ("head", Sequential(Conv2D(4, 5, kernelSize: 1), AdaptiveAvgPool2D(outputSize: (1, 1)), Flatten())),
        ])
        // stem: (R−3)/2+1 ≥ 3 for the pool (ceil mode) ⇒ R ≥ 7.
        XCTAssertEqual(ModelSummary.smallestResolution(of: model, inputChannels: 3, probeResolution: 64), 7)
        for resolution in 7...50 {
            try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: resolution, probeResolution: 64)
            XCTAssertEqual(ModelSummary(model: model, inputShape: [1, resolution, resolution, 3]).outputShape, [1, 5])
        }
    }

    func testFixedSizeClassifierAcceptsOnlyItsResolution() throws {
        let model = Sequential(Conv2D(3, 2, kernelSize: 3, stride: 2, padding: 1), Flatten(), Linear(2 * 8 * 8, 3))
        XCTAssertNoThrow(try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: 16, probeResolution: 16))
        XCTAssertThrowsError(try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: 32, probeResolution: 16)) { error in
            XCTAssertTrue("\(error)".contains("fixed-size"), "\(error)")
        }
        // After an adaptive pooling the classifier no longer fixes the size.
        let adaptive = Sequential(Conv2D(3, 2, kernelSize: 3), AdaptiveAvgPool2D(outputSize: (2, 2)), Flatten(), Linear(8, 3))
        XCTAssertNoThrow(try ModelSummary.checkResolution(of: adaptive, inputChannels: 3, resolution: 5, probeResolution: 16))
        XCTAssertThrowsError(try ModelSummary.checkResolution(of: adaptive, inputChannels: 3, resolution: 2, probeResolution: 16))
    }

    /// Every registered zoo model: whatever resolution the check accepts, tracing must not trap, and the
    /// smallest accepted resolution is accepted. (Runs over `ModelZoo.entries`; skips while the registry is empty.)
    func testZooResolutionChecksNeverLetATrapThrough() throws {
        let entries = ModelZoo.entries.filter { !$0.name.hasPrefix("vgg") && !$0.name.hasPrefix("resnet1") && !$0.name.hasPrefix("wide") }
        guard !entries.isEmpty else { throw XCTSkip("the zoo registry is empty") }
        for entry in entries {
            let model = try ModelZoo.build(entry.name, options: ModelOptions(classCount: 10))
            let smallest = try XCTUnwrap(ModelSummary.smallestResolution(of: model, inputChannels: 3,
                                                                         probeResolution: entry.defaultResolution), entry.name)
            for resolution in [1, 2, 3, 5, 8, 13, 16, 21, 31, 32, 33, 47, 64, 65, 97, 128, 161, smallest] {
                do {
                    try ModelSummary.checkResolution(of: model, inputChannels: 3, resolution: resolution,
                                                     probeResolution: entry.defaultResolution)
                } catch {
                    XCTAssertNotEqual(resolution, smallest, "\(entry.name): \(error)")
                    continue
                }
                let summary = ModelSummary(model: model, inputShape: [1, resolution, resolution, 3])
                XCTAssertEqual(summary.outputShape, [1, 10], "\(entry.name) at \(resolution)")
            }
        }
    }
}
