// SGD, RMSProp and Adam/AdamW against torch.optim (fixture by scripts/make_training_goldens.py), their state
// save/restore and its error messages, the name-based factory, update speed; gradient clipping.
import Foundation
import LiteCNN
import _TestSupport
import XCTest

final class OptimizerTests: XCTestCase {
    /// Builds the optimizer of one fixture case over `parameters`.
    private func makeCaseOptimizer(_ kind: String, _ options: [String: Any], parameters: [(name: String, parameter: Parameter)],
                               learningRate: Float) throws -> any Optimizer {
        func number(_ key: String, _ fallback: Float) -> Float { (options[key] as? Double).map(Float.init) ?? fallback }
        let betas = (options["betas"] as? [Double])?.map(Float.init) ?? [0.9, 0.999]
        switch kind {
        case "sgd":
            return SGD(parameters: parameters, learningRate: learningRate, momentum: number("momentum", 0),
                       dampening: number("dampening", 0), nesterov: options["nesterov"] as? Bool ?? false,
                       weightDecay: number("weight_decay", 0))
        case "rmsprop":
            return RMSProp(parameters: parameters, learningRate: learningRate, alpha: number("alpha", 0.99),
                           epsilon: number("eps", 1e-8), momentum: number("momentum", 0),
                           centered: options["centered"] as? Bool ?? false, weightDecay: number("weight_decay", 0))
        case "adam":
            return Adam(parameters: parameters, learningRate: learningRate, beta1: betas[0], beta2: betas[1],
                        epsilon: number("eps", 1e-8), weightDecay: number("weight_decay", 0))
        case "adamw":
            return Adam.adamW(parameters: parameters, learningRate: learningRate, weightDecay: number("weight_decay", 0.01),
                              beta1: betas[0], beta2: betas[1], epsilon: number("eps", 1e-8))
        default:
            throw Fixture.Missing(what: "optimizer \(kind)")
        }
    }

    func testEveryOptimizerMatchesTorchOptimOverFiveSteps() throws {
        let golden = try Fixture.object("optimizer_goldens.json")
        let initial = try Fixture.tensor(golden["initial"], "initial")
        let gradients = try XCTUnwrap(golden["gradients"] as? [Any]).map { try Fixture.tensor($0, "gradient") }
        let rates = try XCTUnwrap(golden["learning_rates"] as? [Double]).map(Float.init)
        let cases = try XCTUnwrap(golden["cases"] as? [[String: Any]])
        XCTAssertEqual(cases.count, 15)
        for testCase in cases {
            let kind = try XCTUnwrap(testCase["optimizer"] as? String)
            let options = try Fixture.dictionary(testCase["options"], "options")
            let after = try XCTUnwrap(testCase["after"] as? [Any]).map { try Fixture.tensor($0, "after") }
            let parameter = Parameter(initial)
            let optimizer = try makeCaseOptimizer(kind, options, parameters: [("p", parameter)], learningRate: rates[0])
            for step in 0..<5 {
                optimizer.learningRate = rates[step]
                parameter.gradient = gradients[step]
                optimizer.step()
                assertClose(parameter.value, after[step], tolerance: 2e-6, "\(kind) \(options) after step \(step + 1)")
            }
        }
    }

    func testBuffersAreNeverUpdatedAndStateIsLazy() throws {
        let norm = BatchNorm2D(3)
        let parameters = norm.namedParameters()
        for (_, p) in parameters where p.isTrainable { p.gradient = Tensor(shape: [3], scalars: [1, -2, 3]) }
        let optimizers: [any Optimizer] = [
            SGD(parameters: parameters, learningRate: 0.1, momentum: 0.9, weightDecay: 0.1),
            RMSProp(parameters: parameters, learningRate: 0.1, momentum: 0.9, centered: true),
            Adam(parameters: parameters, learningRate: 0.1, weightDecay: 0.1),
        ]
        for optimizer in optimizers {
            XCTAssertTrue(optimizer.state().isEmpty, "\(type(of: optimizer)): no state before the first step")
            optimizer.step()
            XCTAssertEqual(norm.runningMean.value.scalars, [0, 0, 0], "running mean is a buffer")
            XCTAssertEqual(norm.runningVariance.value.scalars, [1, 1, 1], "running variance is a buffer")
            let keys = Set(optimizer.state().keys)
            XCTAssertFalse(keys.contains { $0.hasSuffix("running_mean") || $0.hasSuffix("running_var") }, "\(keys)")
            for key in keys where !key.hasPrefix("step.") { XCTAssertEqual(optimizer.state()[key]?.shape, [3], key) }
        }
        XCTAssertNotEqual(norm.weight.value.scalars, [1, 1, 1], "weights moved")
        XCTAssertEqual(Set(optimizers[0].state().keys), ["momentum.weight", "momentum.bias"])
        XCTAssertEqual(Set(optimizers[1].state().keys), ["square_avg.weight", "square_avg.bias", "grad_avg.weight",
                                                         "grad_avg.bias", "momentum.weight", "momentum.bias"])
        XCTAssertEqual(Set(optimizers[2].state().keys), ["exp_avg.weight", "exp_avg.bias", "exp_avg_sq.weight",
                                                         "exp_avg_sq.bias", "step.weight", "step.bias"])
        XCTAssertEqual(optimizers[2].state()["step.weight"]?.scalars, [1])
        XCTAssertTrue(SGD(parameters: parameters, learningRate: 0.1).state().isEmpty, "plain SGD keeps no state")
    }

    /// Saving after two steps and restoring into a fresh optimizer continues exactly as the original would.
    func testStateRoundTripContinuesBitIdentically() throws {
        func run(_ make: ([(name: String, parameter: Parameter)]) -> any Optimizer, name: String) throws {
            let model = Sequential(Linear(5, 4), BatchNorm2D(4))
            let copy = Sequential(Linear(5, 4), BatchNorm2D(4))
            for ((_, a), (_, b)) in zip(model.namedParameters(), copy.namedParameters()) { b.value = a.value }
            let original = make(model.namedParameters())
            for step in 0..<2 {
                for (i, p) in model.trainableParameters.enumerated() {
                    p.gradient = randomTensor(p.shape, seed: UInt64(10 * step + i))
                }
                original.step()
            }
            for ((_, a), (_, b)) in zip(model.namedParameters(), copy.namedParameters()) { b.value = a.value }
            let restored = make(copy.namedParameters())
            try restored.loadState(original.state())
            XCTAssertEqual(restored.state(), original.state(), name)
            for (i, (a, b)) in zip(model.trainableParameters, copy.trainableParameters).enumerated() {
                a.gradient = randomTensor(a.shape, seed: UInt64(100 + i))
                b.gradient = a.gradient
            }
            original.step()
            restored.step()
            for ((n, a), (_, b)) in zip(model.namedParameters(), copy.namedParameters()) {
                XCTAssertEqual(a.value, b.value, "\(name): \(n) after the restored step")
            }
        }
        try run({ SGD(parameters: $0, learningRate: 0.1, momentum: 0.9, dampening: 0.2, weightDecay: 1e-3) }, name: "SGD")
        try run({ RMSProp(parameters: $0, learningRate: 0.01, momentum: 0.9, centered: true) }, name: "RMSProp")
        try run({ Adam(parameters: $0, learningRate: 0.01) }, name: "Adam")
        try run({ Adam.adamW(parameters: $0, learningRate: 0.01) }, name: "AdamW")
    }

    func testLoadStateRejectsMissingUnknownAndMisshapenEntries() throws {
        let model = Sequential(Linear(3, 2))
        let adam = Adam(parameters: model.namedParameters(), learningRate: 0.1)
        for p in model.trainableParameters { p.gradient = Tensor(shape: p.shape, repeating: 0.5) }
        adam.step()
        let good = adam.state()
        XCTAssertEqual(good.count, 6)
        try adam.loadState(good)
        try adam.loadState([:])   // a fresh optimizer's state
        XCTAssertTrue(adam.state().isEmpty)

        func expectError(_ state: [String: Tensor], key: String, mentioning words: String, _ message: String,
                         line: UInt = #line) {
            XCTAssertThrowsError(try adam.loadState(state), message, line: line) { error in
                let error = error as? OptimizerStateError
                XCTAssertEqual(error?.key, key, message, line: line)
                XCTAssert(error?.description.contains(words) == true, "\(String(describing: error))", line: line)
            }
        }
        var missing = good
        missing["exp_avg_sq.0.bias"] = nil
        expectError(missing, key: "exp_avg_sq.0.bias", mentioning: "missing", "a missing key")
        var misshapen = good
        misshapen["exp_avg.0.weight"] = Tensor(shape: [3, 2])
        expectError(misshapen, key: "exp_avg.0.weight", mentioning: "[3, 2]", "a transposed tensor")
        var unknownName = good
        unknownName["exp_avg.1.weight"] = Tensor(shape: [2, 3])
        expectError(unknownName, key: "exp_avg.1.weight", mentioning: "no trainable parameter", "an unknown parameter")
        var unknownKind = good
        unknownKind["momentum.0.weight"] = Tensor(shape: [2, 3])
        expectError(unknownKind, key: "momentum.0.weight", mentioning: "not a state", "another optimizer's state")
        var badStep = good
        badStep["step.0.weight"] = Tensor(shape: [1], scalars: [1.5])
        expectError(badStep, key: "step.0.weight", mentioning: "step count", "a fractional step count")
        var nan = good
        nan["exp_avg.0.bias"] = Tensor(shape: [2], scalars: [0, .nan])
        expectError(nan, key: "exp_avg.0.bias", mentioning: "nan", "a NaN moment")
        XCTAssertTrue(adam.state().isEmpty, "a refused state changes nothing")

        let plain = SGD(parameters: model.namedParameters(), learningRate: 0.1)
        XCTAssertThrowsError(try plain.loadState(good)) { error in
            XCTAssert("\(error)".contains("keeps no state"), "\(error)")
        }
    }

    func testFactoryUsesRecipeDefaultsAndNamesBadArguments() throws {
        let parameters = Sequential(Linear(3, 2)).namedParameters()
        let sgd = try XCTUnwrap(try makeOptimizer(kind: .sgd, parameters: parameters, learningRate: 0.1) as? SGD)
        XCTAssertEqual(sgd.momentum, 0.9)
        XCTAssertEqual(sgd.weightDecay, 1e-4)
        XCTAssertFalse(sgd.nesterov)
        let nesterov = try XCTUnwrap(try makeOptimizer(kind: .nesterov, parameters: parameters, learningRate: 0.1) as? SGD)
        XCTAssertTrue(nesterov.nesterov)
        let rmsprop = try XCTUnwrap(try makeOptimizer(kind: .rmsprop, parameters: parameters, learningRate: 0.1,
                                                      weightDecay: 1e-5) as? RMSProp)
        XCTAssertEqual([rmsprop.alpha, rmsprop.momentum, rmsprop.epsilon, rmsprop.weightDecay], [0.9, 0.9, 1e-3, 1e-5])
        XCTAssertTrue(rmsprop.epsilonInsideSquareRoot)
        let adam = try XCTUnwrap(try makeOptimizer(kind: .adam, parameters: parameters, learningRate: 0.1) as? Adam)
        XCTAssertEqual([adam.beta1, adam.beta2, adam.weightDecay], [0.9, 0.999, 0])
        XCTAssertFalse(adam.decoupledWeightDecay)
        let adamw = try XCTUnwrap(try makeOptimizer(kind: .adamw, parameters: parameters, learningRate: 0.1,
                                                    momentum: 0.8) as? Adam)
        XCTAssertEqual([adamw.beta1, adamw.weightDecay], [0.8, 0.01])
        XCTAssertTrue(adamw.decoupledWeightDecay)
        XCTAssertEqual(OptimizerKind.allCases.map(\.rawValue), ["sgd", "nesterov", "rmsprop", "adam", "adamw"])
        for (lr, momentum, decay, flag) in [(Float(-1), Float?.none, Float?.none, "--lr"), (.nan, nil, nil, "--lr"),
                                            (0.1, 1, nil, "--momentum"), (0.1, nil, -1e-4, "--weight-decay")] {
            XCTAssertThrowsError(try makeOptimizer(kind: .sgd, parameters: parameters, learningRate: lr, momentum: momentum,
                                                   weightDecay: decay)) { error in
                XCTAssertEqual((error as? TrainingArgumentError)?.argument, flag, "\(error)")
            }
        }
        XCTAssertThrowsError(try makeOptimizer(kind: .nesterov, parameters: parameters, learningRate: 0.1, momentum: 0))
    }

    /// The update of MobileNet V2's 3.5 M parameters is a few memory passes: single-digit milliseconds.
    func testUpdateOfMobileNetV2IsFast() throws {
        let model = try ModelZoo.build("mobilenet_v2")
        let parameters = model.namedParameters()
        for p in model.trainableParameters { p.gradient = Tensor(shape: p.shape, repeating: 1e-3) }
        XCTAssertEqual(model.parameterCount, 3_504_872)
        var report: [String] = []
        for (name, optimizer) in [("SGD momentum", SGD(parameters: parameters, learningRate: 0.01, momentum: 0.9, weightDecay: 4e-5)),
                                  ("RMSProp TF", RMSProp(parameters: parameters, learningRate: 0.01, alpha: 0.9, epsilon: 1e-3,
                                                         momentum: 0.9, epsilonInsideSquareRoot: true)),
                                  ("AdamW", Adam.adamW(parameters: parameters, learningRate: 0.01))] as [(String, any Optimizer)] {
            optimizer.step()   // allocates the state
            var times: [Double] = []
            for _ in 0..<9 {
                let start = DispatchTime.now().uptimeNanoseconds
                optimizer.step()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            let median = times.sorted()[times.count / 2]
            report.append("\(name) \(String(format: "%.2f", median)) ms")
            // Generous bound: the machine is shared; a per-element closure or double math would take ~10× longer.
            XCTAssertLessThan(median, 60, "\(name) update of 3.5 M parameters")
        }
        print("Optimizer step, MobileNet V2 (3.5 M parameters, \(WorkerPool.shared.threadCount) threads): \(report.joined(separator: ", "))")
    }
}

final class GradientClippingTests: XCTestCase {
    private func parameters(_ gradients: [Tensor]) -> [Parameter] {
        gradients.map { g in
            let p = Parameter(Tensor(shape: g.shape))
            p.gradient = g
            return p
        }
    }

    func testGlobalNormClippingMatchesTorchFormula() {
        // ‖(3, 4)‖ and ‖(12)‖ → global norm 13.
        let ps = parameters([Tensor(shape: [2], scalars: [3, 4]), Tensor(shape: [1, 1], scalars: [12])])
        let buffer = Parameter(Tensor(shape: [2], scalars: [100, 100]), kind: .buffer)
        let norm = clipGradientNorm(ps + [buffer], maxNorm: 6.5)
        XCTAssertEqual(norm, 13, accuracy: 1e-5)
        let factor: Float = 6.5 / (13 + 1e-6)
        XCTAssertEqual(ps[0].gradient.scalars[0], 3 * factor, accuracy: 1e-6)
        XCTAssertEqual(ps[0].gradient.scalars[1], 4 * factor, accuracy: 1e-6)
        XCTAssertEqual(ps[1].gradient.scalars[0], 12 * factor, accuracy: 1e-6)
        XCTAssertEqual(clipGradientNorm(ps, maxNorm: 100), 6.5, accuracy: 1e-5, "norm after clipping")
        XCTAssertEqual(ps[1].gradient.scalars[0], 12 * factor, accuracy: 1e-6, "below maxNorm nothing changes")
    }

    func testLargeGradientsUseTheParallelPathAccurately() {
        let g = randomTensor([300_001], seed: 3)
        let ps = parameters([g, randomTensor([17], seed: 4)])
        var reference = 0.0
        for p in ps { for x in p.gradient.scalars { reference += Double(x) * Double(x) } }
        let norm = clipGradientNorm(ps, maxNorm: 1)
        XCTAssertEqual(Double(norm), reference.squareRoot(), accuracy: 1e-5 * reference.squareRoot())
        var after = 0.0
        for p in ps { for x in p.gradient.scalars { after += Double(x) * Double(x) } }
        XCTAssertEqual(after.squareRoot(), 1, accuracy: 1e-5)
    }

    func testNonFiniteNormIsReportedAndGradientsKept() {
        let ps = parameters([Tensor(shape: [3], scalars: [1, .nan, 2]), Tensor(shape: [1], scalars: [5])])
        XCTAssertTrue(clipGradientNorm(ps, maxNorm: 1).isNaN)
        XCTAssertEqual(ps[1].gradient.scalars, [5])
        // Each element is finite but the norm, √2 · 3.4e38, is not representable.
        let overflow = parameters([Tensor(shape: [2], scalars: [.greatestFiniteMagnitude, .greatestFiniteMagnitude])])
        XCTAssertEqual(clipGradientNorm(overflow, maxNorm: 1), .infinity)
        XCTAssertEqual(overflow[0].gradient.scalars, [.greatestFiniteMagnitude, .greatestFiniteMagnitude])
    }

    func testValueClipping() {
        let ps = parameters([Tensor(shape: [5], scalars: [-3, -0.5, 0, 0.25, 7])])
        clipGradientValue(ps, maxValue: 0.5)
        XCTAssertEqual(ps[0].gradient.scalars, [-0.5, -0.5, 0, 0.25, 0.5])
    }
}
