import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class ModelWeightsTests: XCTestCase {
    private var directory: URL!

    override func setUpWithError() throws { directory = try makeTemporaryDirectory() }
    override func tearDownWithError() throws { try FileManager.default.removeItem(at: directory) }

    func testShapeMismatchNamesTheTensorAndChangesNothing() throws {
        let url = directory.appendingPathComponent("a.safetensors")
        try saveWeights(makeSmallModel(convOutput: 4), to: url)
        let other = makeSmallModel(convOutput: 6)
        let before = bitPatterns(other)
        XCTAssertThrowsError(try loadWeights(into: other, from: url)) { error in
            guard case let WeightLoadingError.shapeMismatch(_, tensor, modelShape, fileShape) = error else {
                return XCTFail("unexpected \(error)")
            }
            XCTAssertEqual(tensor, "0.weight")
            XCTAssertEqual(modelShape, [6, 3, 3, 3])
            XCTAssertEqual(fileShape, [4, 3, 3, 3])
            XCTAssertTrue("\(error)".contains("'0.weight'"))
        }
        XCTAssertEqual(bitPatterns(other), before, "a failed load must not modify the model")
    }

    func testMissingAndUnexpectedNamesAreListed() throws {
        let url = directory.appendingPathComponent("b.safetensors")
        let saved = Sequential(named: [("stem", Conv2D(3, 4, kernelSize: 3)), ("old", Linear(2, 2))])
        try saveWeights(saved, to: url)
        let model = Sequential(named: [("stem", Conv2D(3, 4, kernelSize: 3)), ("bn", BatchNorm2D(4))])
        XCTAssertThrowsError(try loadWeights(into: model, from: url)) { error in
            guard case let WeightLoadingError.namesDiffer(_, missing, unexpected) = error else { return XCTFail("unexpected \(error)") }
            XCTAssertEqual(missing, ["bn.weight", "bn.bias", "bn.running_mean", "bn.running_var"])
            XCTAssertEqual(Set(unexpected), ["old.weight", "old.bias"])
            XCTAssertTrue("\(error)".contains("bn.running_var"))
            XCTAssertTrue("\(error)".contains("old.weight"))
        }
        // Not strict: the common tensors load.
        randomize(saved, seed: 4)
        try saveWeights(saved, to: url)
        try loadWeights(into: model, from: url, strict: false)
        XCTAssertEqual(bitPatterns(model)["stem.weight"], bitPatterns(saved)["stem.weight"])
    }

    func testPyTorchBatchNormCountersAreIgnored() throws {
        let model = Sequential(named: [("bn", BatchNorm2D(2))])
        randomize(model, seed: 8)
        var tensors = model.namedParameters().map { (name: $0.name, tensor: $0.parameter.value) }
        tensors.append(("bn.num_batches_tracked", Tensor(42)))
        let url = directory.appendingPathComponent("c.safetensors")
        try Safetensors.write(tensors, to: url)
        let target = Sequential(named: [("bn", BatchNorm2D(2))])
        try loadWeights(into: target, from: url)
        XCTAssertEqual(bitPatterns(target), bitPatterns(model))
    }

    func testOptionsMetadataRoundTrip() throws {
        for options in [ModelOptions(), ModelOptions(classCount: 10, inputChannels: 1, width: 0.35, groups: 8),
                        ModelOptions(classCount: 7, width: 1e-3)] {
            XCTAssertEqual(try ModelOptions(metadataJSON: options.metadataJSON), options)
        }
        XCTAssertThrowsError(try ModelOptions(metadataJSON: #"{"classCount":10,"colour":1}"#))
        XCTAssertThrowsError(try ModelOptions(metadataJSON: #"{"classCount":-1}"#))
        XCTAssertThrowsError(try ModelOptions(metadataJSON: "not json"))
    }

    func testZooModelRebuildsFromItsMetadata() throws {
        guard let entry = ModelZoo.entries.min(by: { parameterEstimate($0) < parameterEstimate($1) }) else {
            throw XCTSkip("the zoo registry is empty")
        }
        let options = ModelOptions(classCount: 7)
        let model = try ModelZoo.build(entry.name, options: options)
        randomize(model, seed: 21)
        let url = directory.appendingPathComponent("zoo.safetensors")
        try saveZooModel(model, name: entry.name, options: options, to: url)
        let rebuilt = try loadZooModel(from: url)
        XCTAssertEqual(rebuilt.name, entry.name)
        XCTAssertEqual(rebuilt.options, options)
        XCTAssertEqual(bitPatterns(rebuilt.model), bitPatterns(model))
    }

    /// Orders zoo entries so the test picks a small one without building them all.
    private func parameterEstimate(_ entry: ModelZooEntry) -> Int {
        let small = ["mobilenet_v3_small", "shufflenet_v2_x0_5", "squeezenet1_1"]
        return small.firstIndex(of: entry.name) ?? small.count
    }
}
