import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

final class MobileNetV1Tests: XCTestCase {
    // Reference numbers computed once with torch 2.15 from /work/shared/bench/models.py's `MobileNetV1(alpha)`:
    // `sum(p.numel() for p in m.parameters())` and /work/shared/bench/macs.py's forward hook.

    func testParameterCountAndMultiplyAdds() {
        let model = MobileNetV1()
        XCTAssertEqual(model.parameterCount, 4_231_976)
        XCTAssertEqual(model.multiplyAdds(for: [1, 224, 224, 3]), 568_740_352)  // 568.7 M, the paper's 569 M
        XCTAssertEqual(model.multiplyAdds(for: [1, 100, 100, 3]), 139_938_112)
    }

    func testWidthMultiplierMatchesReference() throws {
        // models.py MobileNetV1(alpha) for α = 0.75, 0.5, 0.25: channels int(c · α).
        for (width, count) in [(0.75, 2_585_560), (0.5, 1_331_592), (0.25, 470_072)] {
            let model = try ArchitectureChecks.build(MobileNetV1.zooEntries, "mobilenet_v1", ModelOptions(width: width))
            XCTAssertEqual(model.parameterCount, count, "α = \(width)")
        }
        // 0.5-MobileNet-160 (ρ = 5/7): 76.5 M multiply-adds (the paper's Table 7 lists 76 M).
        XCTAssertEqual(MobileNetV1(width: 0.5).multiplyAdds(for: [1, 160, 160, 3]), 76_524_800)
        XCTAssertEqual(MobileNetV1.channels(1024, width: 0.3), 307)
        XCTAssertEqual(MobileNetV1.channels(32, width: 0.01), 1, "never below one channel")
        XCTAssertEqual(MobileNetV1(width: 0.75).fc.inFeatures, 768)
    }

    func testResolutionMultiplier() {
        XCTAssertEqual([1, 6.0 / 7, 5.0 / 7, 4.0 / 7].map { MobileNetV1.inputResolution(multiplier: $0) }, [224, 192, 160, 128])
    }

    func testParameterNamesAndShapesMatchReference() {
        ArchitectureChecks.assertStateDict(MobileNetV1(), equals: "mobilenet_v1")
    }

    func testShapesAtTwoResolutions() {
        // models.py features output: 1×1024×7×7 at 224, 1×1024×4×4 at 100.
        let model = MobileNetV1()
        for (side, last) in [(224, 7), (100, 4)] {
            let shapes = ArchitectureChecks.tracedShapes(model, input: [1, side, side, 3])
            XCTAssertEqual(shapes["features.0.2"], [1, (side + 1) / 2, (side + 1) / 2, 32])
            XCTAssertEqual(shapes["features.26.2"], [1, last, last, 1024])
            XCTAssertEqual(shapes["avgpool"], [1, 1024])
            XCTAssertEqual(shapes["fc"], [1, 1000])
        }
    }

    func testForwardOnSmallImage() {
        ArchitectureChecks.assertForward(MobileNetV1(classCount: 10), input: [1, 32, 32, 3], expected: [1, 10])
    }

    func testClassCountAndGrayscaleInput() throws {
        // models.py MobileNetV1(num_classes=10) with a 1-channel first conv.
        let model = try ArchitectureChecks.build(MobileNetV1.zooEntries, "mobilenet_v1", ModelOptions(classCount: 10, inputChannels: 1))
        XCTAssertEqual(model.parameterCount, 3_216_650)
        XCTAssertEqual(model.outputShape(for: [2, 128, 128, 1]), [2, 10])
        XCTAssertEqual(model.namedParameters().first { $0.name == "features.0.0.weight" }?.parameter.shape, [32, 1, 3, 3])
        XCTAssertEqual(model.namedParameters().first { $0.name == "fc.weight" }?.parameter.shape, [10, 1024])
    }

    func testTrainingBackward() {
        let model = MobileNetV1(width: 0.25, classCount: 4)
        model.train()
        model.zeroGradients()
        let input = randomTensor([2, 32, 32, 3], seed: 8)
        XCTAssertEqual(model.forward(input).shape, [2, 4])
        XCTAssertEqual(model.backward(randomTensor([2, 4], seed: 9)).shape, input.shape)
        let stem = model.namedParameters().first { $0.name == "features.0.0.weight" }!.parameter
        XCTAssertGreaterThan(stem.gradient.scalars.map(abs).max() ?? 0, 0)
    }
}
