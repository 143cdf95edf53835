// End-to-end fine-tuning of a bank's operators inside the frozen base, across random configurations.
import Foundation
import LiteCNNGraph
import LiteCNNRuntime
import LiteCNNTensor
import LiteCNNTraining

/// How `OperatorFineTuning` trains.
public struct OperatorFineTuningOptions: Sendable, Equatable {
    /// Optimizer steps (one calibration batch each); 0 turns fine-tuning off.
    public var steps = 1200
    /// Adam's learning rate, decayed to 0 by a cosine.
    public var learningRate: Float = 5e-4
    /// Distillation from the base's logits (`DistillationLoss`): temperature and the weight of the soft term
    /// (`1 − alpha` weights the cross-entropy on the labels).
    public var temperature: Float = 4
    public var alpha: Float = 0.9
    /// Budgets (shares of the base's multiply-adds) whose selected configurations (`OperatorSelection.select` on the
    /// bank's measurements before fine-tuning) are trained: each step draws one of them. Empty: random
    /// configurations only.
    public var budgetShares: [Double] = [0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.55, 0.6, 0.7, 0.8, 0.9]
    /// The share of steps that train a random configuration instead (all of them when `budgetShares` is empty):
    /// every slot swapped with probability q, q drawn uniformly from `swapShare`, the operator uniform among the
    /// slot's alternatives.
    public var randomShare = 0.0
    public var swapShare: ClosedRange<Double> = 0.25...1
    public var seed: UInt64 = 0
    /// Whether the operators of fully connected slots are trained too. Off by default: with VGG-16's classifier
    /// operators (4–15 M parameters each) trained end to end on the 4,000 training images of the shapes set, the
    /// distillation loss fell (7.1 → 1.1) while the configuration at 50 % of the multiply-adds fell from 36.5 % to
    /// 17.2 % top-1 on the test images — they fit the training images, not the layer; layer-wise distillation alone
    /// keeps them close to their units.
    public var trainsFullyConnected = false

    public init() {}
}

/// What fine-tuning did: the loss over the first and the last tenth of the steps, and the wall time.
public struct OperatorFineTuningReport: Sendable, Equatable {
    public var steps: Int
    public var initialLoss: Double
    public var finalLoss: Double
    public var seconds: Double
}

/// The optional second stage of building a bank: after layer-wise distillation, every operator's parameters are
/// trained end to end, inside the network, with the base frozen.
///
/// Layer-wise distillation trains each operator on the base's own inputs to its slot. Once several slots are
/// swapped, each operator sees the inputs the operators before it produce, and their errors add up (on ResNet-18, the
/// losses measured one slot at a time summed to less than the loss of the configuration). Here the operators learn
/// in the configurations they will serve:
/// - the configurations `OperatorSelection.select` picks from the bank's measurements for a grid of budgets
///   (`budgetShares`, 20–90 % of the base's multiply-adds), optionally mixed with random ones (`randomShare`);
///   training random configurations alone made every configuration worse on ResNet-18 / shapes (operators learn to
///   compensate for neighbours that are never chosen together);
/// - one `GraphNetwork` of the switchable graph (`SwitchableGraph.switchable`): the base's nodes once, every
///   operator beside its unit, one `Select` per slot;
/// - each step draws one of them, runs a calibration batch through it and minimizes `DistillationLoss` between its logits and the base's on that batch (computed once, before training);
/// - only the operators' parameters (`bank/<entry>/…` initializers: convolution weights, BatchNorm scale and bias)
///   are updated, by Adam — those of fully connected slots only with `trainsFullyConnected`; the base's weights receive gradients but are never stepped, every BatchNorm normalizes with
///   its running statistics and keeps them (`GraphNetwork.freezesBatchNormStatistics`), so the base is untouched —
///   "parameter sharing" holds — and an operator's statistics stay those its distillation measured;
/// - with a float16 bank, the tensors are rounded again afterwards, so measurements use what the file holds.
///
/// The bank's one-slot measurements (top-1, divergence, distillation error) are left as they were, so the selection
/// keeps choosing the configurations that were trained; they describe the operators as distilled. (Measured again
/// after fine-tuning, they rise — each operator now expects its trained neighbours — and steer the selection to
/// configurations that were not trained: `litecnn operators finetune --remeasure`.)
public enum OperatorFineTuning {
    public static func fineTune(_ bank: inout OperatorBank, base: Graph, batches: [LabeledBatch],
                                options: OperatorFineTuningOptions = OperatorFineTuningOptions(),
                                onProgress: ((_ step: Int, _ total: Int, _ loss: Double) -> Void)? = nil) throws
        -> OperatorFineTuningReport {
        let start = DispatchTime.now().uptimeNanoseconds
        guard options.steps > 0 else { return OperatorFineTuningReport(steps: 0, initialLoss: 0, finalLoss: 0, seconds: 0) }
        guard !batches.isEmpty else { throw OperatorConfigurationError("fine-tuning needs calibration images") }
        guard options.swapShare.lowerBound >= 0, options.swapShare.upperBound <= 1 else {
            throw OperatorConfigurationError("swap share \(options.swapShare) is not within 0…1")
        }
        try bank.validate(against: base)
        let (graph, groups) = try SwitchableGraph.switchable(base: base, bank: bank)
        guard !groups.isEmpty else { throw OperatorConfigurationError("the bank has no operators to fine-tune") }
        var served: [[Int]] = []
        for share in options.budgetShares {
            let budget = Budget.multiplyAdds(Int(Double(bank.base.multiplyAdds) * share))
            guard let configuration = try? OperatorSelection.select(bank: bank, budget: budget) else { continue }
            let selection = try SwitchableGraph.selection(for: configuration, groups: groups, bank: bank)
            if !served.contains(selection) { served.append(selection) }
        }
        let network = try GraphNetwork(graph: graph, imageShape: bank.imageShape)
        network.freezesBatchNormStatistics = true

        // The teacher: the base configuration, in inference mode.
        network.eval()
        network.selection = Array(repeating: 0, count: groups.count)
        let teacher = batches.map { network.forward($0.images) }

        let frozenPrefixes = options.trainsFullyConnected ? [] : bank.entries.indices
            .filter { bank.entries[$0].op.slot.isFullyConnected }.map(SwitchableGraph.entryPrefix)
        let trainable = network.namedParameters().filter { p in
            p.parameter.isTrainable && p.name.hasPrefix("bank/") && !frozenPrefixes.contains { p.name.hasPrefix($0) }
        }
        let optimizer = Adam(parameters: trainable, learningRate: options.learningRate)
        let loss = DistillationLoss(temperature: options.temperature, alpha: options.alpha)
        var random = SeededGenerator(seed: options.seed)
        network.train()
        let tenth = max(1, options.steps / 10)
        var first = 0.0, last = 0.0
        for step in 0..<options.steps {
            let b = step % batches.count
            var selection = [Int](repeating: 0, count: groups.count)
            if !served.isEmpty && Double(random.nextUnit()) >= options.randomShare {
                selection = served[Int(random.next() % UInt64(served.count))]
            } else {
                let share = options.swapShare
                let q = share.lowerBound + (share.upperBound - share.lowerBound) * Double(random.nextUnit())
                for (g, group) in groups.enumerated() where Double(random.nextUnit()) < q {
                    selection[g] = 1 + Int(random.next() % UInt64(group.entries.count))
                }
            }
            network.selection = selection
            network.zeroGradients()
            let logits = network.forward(batches[b].images)
            let value = Double(loss.loss(studentLogits: logits, teacherLogits: teacher[b], labels: batches[b].labels))
            _ = network.backward(loss.gradient())
            optimizer.learningRate = options.learningRate * Float(0.5 * (1 + cos(Double.pi * Double(step) / Double(options.steps))))
            optimizer.step()
            if step < tenth { first += value / Double(tenth) }
            if step >= options.steps - tenth { last += value / Double(tenth) }
            onProgress?(step + 1, options.steps, value)
        }

        // Write the operators' parameters back into the bank.
        let tuned = network.exportGraph()
        for e in bank.entries.indices {
            let prefix = SwitchableGraph.entryPrefix(e)
            for name in Array(bank.entries[e].op.tensors.keys) {
                guard case let .float(t)? = tuned.initializers[prefix + name] else { continue }
                bank.entries[e].op.tensors[name] = t
            }
        }
        if bank.precision == .float16 { bank = bank.roundedToHalfPrecision() }
        bank.metadata["finetune_steps"] = String(options.steps)
        bank.metadata["finetune_images"] = String(batches.reduce(0) { $0 + $1.labels.count })
        bank.metadata["finetune_configurations"] = String(served.count)
        return OperatorFineTuningReport(steps: options.steps, initialLoss: first, finalLoss: last,
                                        seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
}
