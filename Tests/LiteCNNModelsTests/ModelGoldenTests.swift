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
/// This test fills LiteCNN's model by the same formula, through the same names, and must reproduce those logits.
/// A wrong name, layer order, padding, pooling mode, flatten order or shuffle shows up here.
///
/// Tolerance: |a − b| ≤ 1e-4 + 1e-3 · max|b| (float32 through 20–50 layers, summation order differs from PyTorch's).
final class ModelGoldenTests: XCTestCase {
    /// Σ byte·(position+1) mod 1009, as a phase in [0, 2π).
    static func phase(_ name: String) -> Double {
        var sum = 0
        for (i, b) in name.utf8.enumerated() { sum += Int(b) * (i + 1) }
        return Double(sum % 1009) / 1009.0 * 2.0 * Double.pi
    }

    /// The formula of `formula_tensor` in the script.
    static func formulaTensor(name: String, shape: [Int]) -> Tensor {
        let phase = phase(name)
        let fanIn = shape.dropFirst().reduce(1, *)
        return Tensor(shape: shape, unsafeUninitialized: { out in
            for i in 0..<out.count {
                let s = sin(phase + 0.7 * Double(i % 8963) + 2.0 * Double.pi * Double((i * i) % 10007) / 10007.0)
                let v: Double
                if name.hasSuffix("running_var") { v = 1.0 + 0.25 * (1.0 + s) }
                else if name.hasSuffix("running_mean") { v = 0.1 * s }
                else if shape.count == 1 && name.hasSuffix("weight") { v = 1.0 + 0.1 * s }
                else if shape.count == 1 { v = 0.1 * s }
                else { v = (4.0 / Double(fanIn)).squareRoot() * s }
                out[i] = Float(v)
            }
        })
    }

    static func formulaInput(nchw shape: [Int]) -> Tensor {
        Tensor(shape: shape, unsafeUninitialized: { out in
            for i in 0..<out.count { out[i] = Float(sin(0.05 * Double(i % 7919) + Double((i * i) % 101))) }
        }).reshaped(to: shape, layout: .nchw).nchwToNHWC()
    }

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
            for (name, p) in model.namedParameters() {
                p.value = Self.formulaTensor(name: name, shape: p.value.shape)
            }
            model.eval()
            let y = model.forward(Self.formulaInput(nchw: c.input_nchw))
            XCTAssertEqual(y.shape, c.output_shape, c.model)
            guard y.shape == c.output_shape else { continue }
            let scale = c.output.map(abs).max() ?? 1
            let expected = Tensor(shape: c.output_shape, scalars: c.output)
            assertClose(y, expected, absolute: 1e-4 + 1e-3 * scale, relative: 0, "\(c.model) logits")
        }
    }
}
