// Classification metrics (loss, top-1, top-5, confusion matrix, per-class accuracy) accumulated batch by batch, and
// the per-epoch record of a training run with its CSV and JSON files.
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// Running loss, top-k accuracy and confusion matrix over batches of logits.
///
/// Logits are `[N, K]` (layout `.plain`), labels `N` integers in `0..<K`. A sample counts as top-k correct when its
/// label is among the first k classes of a stable descending sort of its logits (ties go to the lower index, as
/// `argmax` does, so a network whose logits are all equal scores chance, not 100 %). `confusion[true][predicted]`
/// counts samples, with `predicted` the arg-max (lowest index on ties).
public struct ClassificationMetrics: Sendable, Equatable {
    public let classCount: Int
    /// Samples seen.
    public private(set) var count = 0
    /// Sum over samples of the loss (each batch's mean loss times its size), in Double.
    public private(set) var lossSum = 0.0
    public private(set) var top1Correct = 0
    public private(set) var top5Correct = 0
    /// `confusion[label][prediction]`, `classCount × classCount`.
    public private(set) var confusion: [[Int]]

    public init(classCount: Int) {
        precondition(classCount >= 1, "ClassificationMetrics: classCount must be ≥ 1")
        self.classCount = classCount
        confusion = Array(repeating: Array(repeating: 0, count: classCount), count: classCount)
    }

    /// Adds one batch: `logits` `[N, classCount]`, `labels` (N), and the batch's mean loss.
    public mutating func add(logits: Tensor, labels: [Int], meanLoss: Float) {
        precondition(logits.rank == 2 && logits.shape[1] == classCount && logits.shape[0] == labels.count,
                     "ClassificationMetrics.add: logits \(logits.shape) for \(labels.count) labels and \(classCount) classes")
        let k = classCount
        logits.scalars.withUnsafeBufferPointer { x in
            for (row, label) in labels.enumerated() {
                let base = row * k
                let target = x[base + label]
                var larger = 0
                var best = 0
                for j in 0..<k {
                    let v = x[base + j]
                    // Ranked before the label: larger logits, and equal ones at a lower index (a stable arg-sort).
                    if v > target || (v == target && j < label) { larger += 1 }
                    if v > x[base + best] { best = j }
                }
                if larger < 1 { top1Correct += 1 }
                if larger < 5 { top5Correct += 1 }
                confusion[label][best] += 1
            }
        }
        count += labels.count
        lossSum += Double(meanLoss) * Double(labels.count)
    }

    /// Mean loss per sample (0 before any sample).
    public var meanLoss: Double { count == 0 ? 0 : lossSum / Double(count) }
    /// Top-1 accuracy in percent.
    public var top1: Double { count == 0 ? 0 : 100 * Double(top1Correct) / Double(count) }
    /// Top-5 accuracy in percent (100 when there are at most 5 classes).
    public var top5: Double { count == 0 ? 0 : 100 * Double(top5Correct) / Double(count) }
    /// Accuracy of each class in percent (`nil` for a class without samples).
    public var perClassAccuracy: [Double?] {
        confusion.enumerated().map { label, row in
            let total = row.reduce(0, +)
            return total == 0 ? nil : 100 * Double(row[label]) / Double(total)
        }
    }
}

/// What one epoch of training measured; a row of RUN_DIR/metrics.csv and an element of metrics.json.
///
/// Accuracies are in percent. `trainLoss`/`trainTop1` are running averages over the epoch's (augmented) training
/// batches in training mode; the `test*` values are measured after the epoch in evaluation mode without augmentation.
/// `imagesPerSecond` counts training images over the time spent in training steps; `elapsedSeconds` is the run's
/// wall time so far (across resumptions); `learningRate` is the rate of the epoch's last step.
public struct EpochMetrics: Codable, Sendable, Equatable {
    /// 1-based epoch number.
    public var epoch: Int
    public var steps: Int
    public var trainLoss: Double
    public var trainTop1: Double
    public var testLoss: Double
    public var testTop1: Double
    public var testTop5: Double
    public var imagesPerSecond: Double
    public var learningRate: Double
    public var elapsedSeconds: Double

    public init(epoch: Int, steps: Int, trainLoss: Double, trainTop1: Double, testLoss: Double, testTop1: Double,
                testTop5: Double, imagesPerSecond: Double, learningRate: Double, elapsedSeconds: Double) {
        self.epoch = epoch
        self.steps = steps
        self.trainLoss = trainLoss
        self.trainTop1 = trainTop1
        self.testLoss = testLoss
        self.testTop1 = testTop1
        self.testTop5 = testTop5
        self.imagesPerSecond = imagesPerSecond
        self.learningRate = learningRate
        self.elapsedSeconds = elapsedSeconds
    }

    enum CodingKeys: String, CodingKey {
        case epoch, steps
        case trainLoss = "loss", trainTop1 = "top1", testLoss = "test_loss", testTop1 = "test_top1", testTop5 = "test_top5"
        case imagesPerSecond = "images_per_s", learningRate = "lr", elapsedSeconds = "elapsed_s"
    }

    /// The CSV header, matching `csvRow`.
    public static let csvHeader = "epoch,steps,loss,top1,test_loss,test_top1,test_top5,images_per_s,lr,elapsed_s"

    /// One CSV line (no newline).
    public var csvRow: String {
        func f(_ v: Double, _ digits: Int) -> String { String(format: "%.\(digits)f", v) }
        return [String(epoch), String(steps), f(trainLoss, 6), f(trainTop1, 3), f(testLoss, 6), f(testTop1, 3),
                f(testTop5, 3), f(imagesPerSecond, 2), String(format: "%.6g", learningRate), f(elapsedSeconds, 2)]
            .joined(separator: ",")
    }

    /// The object `litecnn train --json` prints for the epoch: one line, keys sorted.
    public var jsonLine: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    /// Writes `history` as RUN_DIR/metrics.csv and metrics.json, each atomically.
    public static func write(_ history: [EpochMetrics], csv: URL, json: URL) throws {
        let text = ([csvHeader] + history.map(\.csvRow)).joined(separator: "\n") + "\n"
        try writeFileAtomically(Array(text.utf8), to: csv)
        try writeFileAtomically(try encodeHistory(history), to: json)
    }

    /// `history` as a pretty JSON array.
    public static func encodeHistory(_ history: [EpochMetrics]) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try encoder.encode(history)) + [0x0A]
    }

    /// Parses what `encodeHistory` wrote.
    public static func decodeHistory(_ bytes: [UInt8]) throws -> [EpochMetrics] {
        try JSONDecoder().decode([EpochMetrics].self, from: Data(bytes))
    }
}
