// The reference test: three training steps (forward, cross-entropy, backward, SGD with momentum and weight
// decay) of a small network with BatchNorm equal PyTorch's, loss by loss and weight by weight. Fixture made by
// scripts/make_training_goldens.py. Also the JSON fixture helpers the other golden tests share.
import Foundation
import LiteCNN
import _TestSupport
import XCTest

final class TrainingStepGoldenTests: XCTestCase {
    func testThreeSGDMomentumStepsMatchPyTorch() throws {
        let golden = try Fixture.object("training_step_golden.json")
        // Conv2d(3,4,3,padding=1) BatchNorm2d(4) ReLU MaxPool2d(2) Flatten Linear(36,5), named "0" … "5" like nn.Sequential.
        let network = Sequential(Conv2D(3, 4, kernelSize: 3, padding: 1), BatchNorm2D(4), ReLU(), MaxPool2D(kernelSize: 2),
                                 Flatten(), Linear(36, 5))
        let parameters = network.namedParameters()
        let initial = try Fixture.dictionary(golden["initial"], "initial")
        XCTAssertEqual(Set(parameters.map(\.name)), Set(initial.keys), "parameter names follow the state_dict")
        for (name, parameter) in parameters {
            let value = try Fixture.tensor(initial[name], name)
            XCTAssertEqual(parameter.shape, value.shape, name)
            parameter.value = value   // OIHW convolution and [out, in] linear weights: PyTorch's layouts
        }
        let images = try Fixture.tensor(golden["images_nchw"], "images_nchw")
        let input = Tensor(shape: images.shape, scalars: images.scalars, layout: .nchw).nchwToNHWC()
        XCTAssertEqual(input.shape, [4, 6, 6, 3])
        let labels = try XCTUnwrap(golden["labels"] as? [Int])
        let optimizer = SGD(parameters: parameters, learningRate: try Fixture.float(golden["learning_rate"]),
                            momentum: try Fixture.float(golden["momentum"]), weightDecay: try Fixture.float(golden["weight_decay"]))
        let criterion = SoftmaxCrossEntropy()
        let expectedLosses = try XCTUnwrap(golden["losses"] as? [Double])
        network.train()
        for step in 0..<3 {
            network.zeroGradients()
            let loss = criterion.loss(logits: network.forward(input), labels: labels)
            _ = network.backward(criterion.gradient())
            optimizer.step()
            XCTAssertEqual(Double(loss), expectedLosses[step], accuracy: 1e-5 * max(1, expectedLosses[step]), "loss of step \(step + 1)")
        }
        let final = try Fixture.dictionary(golden["final"], "final")
        for (name, parameter) in parameters {
            let expected = try Fixture.tensor(final[name], name)
            // Conv biases are the one place where float rounding differences grow (BatchNorm cancels them, so their
            // gradient is pure rounding noise, ~1e-9): they are compared with the same tolerance all the same.
            assertClose(parameter.value, expected, tolerance: 1e-5, "\(name) after 3 steps")
        }
    }
}

// MARK: Shared helpers

/// Loads the JSON fixtures written by scripts/make_training_goldens.py.
enum Fixture {
    struct Missing: Error, CustomStringConvertible {
        let what: String
        var description: String { "fixture: \(what) is missing or malformed" }
    }

    static func object(_ fileName: String) throws -> [String: Any] {
        let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(fileName)")
        let data = try Data(contentsOf: url)
        guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw Missing(what: fileName) }
        return object
    }

    static func dictionary(_ any: Any?, _ what: String) throws -> [String: Any] {
        guard let value = any as? [String: Any] else { throw Missing(what: what) }
        return value
    }

    static func float(_ any: Any?) throws -> Float {
        guard let value = any as? Double else { throw Missing(what: "number") }
        return Float(value)
    }

    /// `{"shape": [...], "data": [...]}` → Tensor (row-major, plain layout).
    static func tensor(_ any: Any?, _ what: String) throws -> Tensor {
        guard let object = any as? [String: Any], let shape = object["shape"] as? [Int],
              let data = object["data"] as? [Double], data.count == shape.reduce(1, *) else { throw Missing(what: what) }
        return Tensor(shape: shape, scalars: data.map { Float($0) }, layout: .plain)
    }
}

/// Element-wise `|a − b| ≤ tolerance · max(1, |b|)`, reporting the worst element.
func assertClose(_ actual: Tensor, _ expected: Tensor, tolerance: Float, _ message: String,
                 file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(actual.shape, expected.shape, "\(message): shape", file: file, line: line)
    guard actual.count == expected.count else { return }
    var worst: (error: Float, index: Int) = (0, 0)
    for i in 0..<actual.count {
        let error = abs(actual.scalars[i] - expected.scalars[i]) / max(1, abs(expected.scalars[i]))
        if !(error <= worst.error) { worst = (error, i) }
    }
    XCTAssert(worst.error <= tolerance,
              "\(message): element \(worst.index) is \(actual.scalars[worst.index]), expected \(expected.scalars[worst.index]) (relative error \(worst.error))",
              file: file, line: line)
}
