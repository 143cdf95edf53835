import Foundation
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor
import XCTest
import _TestSupport

/// Whole networks against torchvision (and the papers' MobileNet V1 / ShuffleNet V1 in ../shared/bench/models.py).
///
/// `scripts/make_model_goldens.py` fills every parameter and buffer of the PyTorch model with a closed-form function
/// of its state_dict name and element index, runs it in eval mode on a closed-form input and commits only the logits.
/// This test fills LiteCNN's model by the same formula (`ClosedFormWeights` in _TestSupport), through the same names, and must reproduce those logits.
/// A wrong name, layer order, padding, pooling mode, flatten order or shuffle shows up here.
///
/// Tolerance: |a − b| ≤ 1e-4 + 1e-3 · max|b| (float32 through 20–50 layers, summation order differs from PyTorch's).
final class ModelGoldenTests: XCTestCase {
    struct Case: Decodable {
        var model: String
        var classes: Int
        var input_nchw: [Int]
        var output: [Float]
        var output_shape: [Int]
    }

    static let cases: [Case] = {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/model_goldens.json")
        struct Root: Decodable { var cases: [Case] }
        guard let data = try? Data(contentsOf: url), let root = try? JSONDecoder().decode(Root.self, from: data) else { return [] }
        return root.cases
    }()

    func testFixtureIsPresent() {
        XCTAssertGreaterThanOrEqual(Self.cases.count, 13, "model_goldens.json missing or truncated")
    }

    func testEveryModelReproducesPyTorchLogits() throws {
        for c in Self.cases {
            let model = try ModelZoo.build(c.model, options: ModelOptions(classCount: c.classes))
            ClosedFormWeights.fill(model)
            model.eval()
            let y = model.forward(ClosedFormWeights.inputNCHW(c.input_nchw).nchwToNHWC())
            XCTAssertEqual(y.shape, c.output_shape, c.model)
            guard y.shape == c.output_shape else { continue }
            let scale = c.output.map(abs).max() ?? 1
            let expected = Tensor(shape: c.output_shape, scalars: c.output)
            assertClose(y, expected, absolute: 1e-4 + 1e-3 * scale, relative: 0, "\(c.model) logits")
        }
    }
}
