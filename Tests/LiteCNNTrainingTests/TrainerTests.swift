// Tests of the training loop's pieces: configuration JSON and validation, classification metrics (top-k, confusion,
// per-class), the SVG plot (well-formed XML with both panels), the metrics files, and the NaN stop that names the
// step and keeps the last good checkpoint.
import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import LiteCNNData
import LiteCNNIO
import LiteCNNLayers
import LiteCNNTensor
import LiteCNNTraining
import XCTest

/// A fresh temporary directory, removed at the end of the test.
func makeTemporaryDirectory(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-training-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

/// A tiny, fast configuration: MobileNet V2 ×0.25 on 16×16 shapes (its classifier has Dropout, so resumption must
/// restore the masks too).
func tinyConfiguration(samples: Int = 160, epochs: Int = 2, batch: Int = 16) -> TrainingConfiguration {
    var c = TrainingConfiguration(model: "mobilenet_v2", data: "shapes", samples: samples, resolution: 16, epochs: epochs,
                                  batchSize: batch, learningRate: 0.01, optimizer: .sgd, seed: 3)
    c.width = 0.25
    c.testSamples = 100
    c.threads = 2
    c.augmentation = Augmentation.crop.rawValue
    return c
}

final class TrainerTests: XCTestCase {
    func testConfigurationRoundTripsThroughJSONAndHashIgnoresEpochsAndThreads() throws {
        var c = tinyConfiguration()
        c.teacher = "runs/teacher"
        c.clipNorm = 2.5
        c.mean = [0.4, 0.5, 0.6]
        c.std = [0.2, 0.2, 0.2]
        let decoded = try JSONDecoder().decode(TrainingConfiguration.self, from: Data(try c.encodedJSON()))
        XCTAssertEqual(decoded, c)
        let text = String(decoding: try c.encodedJSON(), as: UTF8.self)
        XCTAssertTrue(text.contains("\"lr\""), text)
        XCTAssertTrue(text.contains("\"batch_size\" : 16"), text)

        var extended = c
        extended.epochs = 50
        extended.threads = 1
        extended.maxSteps = 7
        extended.checkpointEvery = 3
        XCTAssertEqual(extended.identityHash, c.identityHash)
        var changed = c
        changed.learningRate = 0.02
        XCTAssertNotEqual(changed.identityHash, c.identityHash)
    }

    func testConfigurationValidationNamesTheFlag() {
        func message(_ edit: (inout TrainingConfiguration) -> Void) -> String {
            var c = tinyConfiguration()
            edit(&c)
            do { try c.validate(); return "" } catch { return "\(error)" }
        }
        XCTAssertEqual(message { _ in }, "")
        XCTAssertTrue(message { $0.learningRate = -1 }.contains("--lr"))
        XCTAssertTrue(message { $0.learningRate = .nan }.contains("--lr"))
        XCTAssertTrue(message { $0.batchSize = 0 }.contains("--batch"))
        XCTAssertTrue(message { $0.optimizer = "lbfgs" }.contains("--optimizer"))
        XCTAssertTrue(message { $0.schedule = "poly" }.contains("--schedule"))
        XCTAssertTrue(message { $0.augmentation = "mixup" }.contains("--augment"))
        XCTAssertTrue(message { $0.momentum = 1 }.contains("--momentum"))
        XCTAssertTrue(message { $0.warmupEpochs = 5 }.contains("--warmup-epochs"))
        XCTAssertTrue(message { $0.std = [0] }.contains("--std"))
        XCTAssertTrue(message { $0.clipNorm = 0 }.contains("--clip-norm"))
    }

    func testMetricsCountTopOneTopFiveAndConfusion() {
        // 3 samples, 6 classes.
        let logits = Tensor(shape: [3, 6], scalars: [
            5, 1, 0, 0, 0, 0,      // label 0: top-1 correct
            0, 1, 2, 3, 4, 5,      // label 1: rank 5 (4 larger) → top-5 correct, predicted 5
            9, 8, 7, 6, 5, 4,      // label 5: rank 6 → neither, predicted 0
        ])
        var metrics = ClassificationMetrics(classCount: 6)
        metrics.add(logits: logits, labels: [0, 1, 5], meanLoss: 2)
        XCTAssertEqual(metrics.count, 3)
        XCTAssertEqual(metrics.top1Correct, 1)
        XCTAssertEqual(metrics.top5Correct, 2)
        XCTAssertEqual(metrics.top1, 100.0 / 3, accuracy: 1e-9)
        XCTAssertEqual(metrics.meanLoss, 2, accuracy: 1e-12)
        XCTAssertEqual(metrics.confusion[0][0], 1)
        XCTAssertEqual(metrics.confusion[1][5], 1)
        XCTAssertEqual(metrics.confusion[5][0], 1)
        XCTAssertEqual(metrics.confusion.flatMap { $0 }.reduce(0, +), 3)
        XCTAssertEqual(metrics.perClassAccuracy[0], 100)
        XCTAssertEqual(metrics.perClassAccuracy[1], 0)
        XCTAssertNil(metrics.perClassAccuracy[2])
        metrics.add(logits: Tensor(shape: [1, 6], scalars: [0, 0, 0, 1, 0, 0]), labels: [3], meanLoss: 6)
        XCTAssertEqual(metrics.meanLoss, (2 * 3 + 6) / 4, accuracy: 1e-12)
    }

    func testPlotIsWellFormedSVGWithBothPanelsAndEscapedTitle() throws {
        var history: [EpochMetrics] = []
        for e in 1...4 {
            let x = Double(e)
            let trainLoss: Double = 2.3 / x, testLoss: Double = 2.4 / x, trainTop1: Double = 20 * x, testTop1: Double = 18 * x
            history.append(EpochMetrics(epoch: e, steps: 10, trainLoss: trainLoss, trainTop1: trainTop1, testLoss: testLoss,
                                        testTop1: testTop1, testTop5: 60, imagesPerSecond: 500, learningRate: 0.1, elapsedSeconds: x))
        }
        let svg = TrainingPlot.svg(history, title: "mobilenet_v2 <α & β>")
        final class Counter: NSObject, XMLParserDelegate {
            var elements: [String: Int] = [:]
            var texts: [String] = []
            func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?,
                        attributes: [String: String] = [:]) { elements[name, default: 0] += 1 }
            func parser(_ parser: XMLParser, foundCharacters string: String) { texts.append(string) }
        }
        let parser = XMLParser(data: Data(svg.utf8))
        let counter = Counter()
        parser.delegate = counter
        XCTAssertTrue(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        XCTAssertEqual(counter.elements["svg"], 1)
        XCTAssertEqual(counter.elements["polyline"], 4, "train and test curves in both panels")
        XCTAssertEqual(counter.elements["circle"], 16)
        let allText = counter.texts.joined()
        XCTAssertTrue(allText.contains("mobilenet_v2 <α & β>"))
        for label in ["Loss", "Top-1 accuracy", "epoch", "train", "test", "percent"] {
            XCTAssertTrue(allText.contains(label), label)
        }
        // An empty history still draws valid axes.
        XCTAssertTrue(XMLParser(data: Data(TrainingPlot.svg([], title: "empty").utf8)).parse())
    }

    func testMetricsFilesAreWrittenAndReadBack() throws {
        let directory = try makeTemporaryDirectory(self)
        let history = [EpochMetrics(epoch: 1, steps: 5, trainLoss: 1.5, trainTop1: 40, testLoss: 1.25, testTop1: 45.5,
                                    testTop5: 90, imagesPerSecond: 321.5, learningRate: 0.01, elapsedSeconds: 3.5)]
        let csv = directory.appendingPathComponent("metrics.csv"), json = directory.appendingPathComponent("metrics.json")
        try EpochMetrics.write(history, csv: csv, json: json)
        let lines = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, 2)
        XCTAssertEqual(String(lines[0]), EpochMetrics.csvHeader)
        XCTAssertTrue(lines[1].hasPrefix("1,5,1.500000,40.000,1.250000,45.500,90.000,321.50,0.01,3.50"), String(lines[1]))
        XCTAssertEqual(try EpochMetrics.decodeHistory(Array(try Data(contentsOf: json))), history)
        let line = history[0].jsonLine
        for key in ["\"epoch\":1", "\"loss\":1.5", "\"top1\":40", "\"test_top1\":45.5", "\"images_per_s\":321.5"] {
            XCTAssertTrue(line.contains(key), "\(key) in \(line)")
        }
    }

    func testNonFiniteLossStopsNamingTheStepAndKeepsTheLastCheckpoint() throws {
        let directory = try makeTemporaryDirectory(self)
        var c = tinyConfiguration(samples: 160, epochs: 3, batch: 16)
        c.checkpointEvery = 2
        let shapes = ShapesDataset.splits(samples: 160, testSamples: 100, resolution: 16, channels: 3, seed: 0)
        // The sample the loader puts at position 3 of batch 6 (0-based 5) of the first epoch gets a NaN pixel.
        let order = DataLoader(dataset: shapes.train, batchSize: 16, shuffle: true, dropLast: true, transforms: [],
                               seed: c.seed).order(forEpoch: 0)
        let poisoned = PoisonedDataset(base: shapes.train, index: order[5 * 16 + 3])
        let data = DatasetSplits(train: poisoned, test: shapes.test, description: "poisoned shapes")
        let run = RunDirectory(directory.appendingPathComponent("run"))
        let trainer = try Trainer(configuration: c, data: data, runDirectory: run, resume: false)
        var losses: [Float] = []
        trainer.onStep = { losses.append($0.loss) }
        XCTAssertThrowsError(try trainer.run()) { error in
            guard case let .nonFiniteLoss(epoch, step, globalStep, loss, checkpoint) = error as? TrainingError else {
                return XCTFail("unexpected error \(error)")
            }
            XCTAssertTrue(loss.isNaN)
            XCTAssertEqual(epoch, 1)
            XCTAssertEqual(step, 6)
            XCTAssertEqual(globalStep, 6)
            XCTAssertEqual(checkpoint, run.checkpoint.path)
            let message = "\(error)"
            XCTAssertTrue(message.contains("epoch 1, step 6"), message)
            XCTAssertTrue(message.contains("--resume"), message)
        }
        XCTAssertEqual(losses.count, 5)
        XCTAssertTrue(losses.allSatisfy(\.isFinite))
        // The last checkpoint (step 4) is intact and finite; nothing half-written is left.
        let (header, file) = try Checkpoint.read(from: run.checkpoint)
        XCTAssertEqual(header.state.globalStep, 4)
        for name in file.names {
            XCTAssertTrue(try file.tensor(named: name).scalars.allSatisfy(\.isFinite), name)
        }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: run.url.path).filter { $0.contains(".tmp-") }
        XCTAssertEqual(leftovers, [])
    }
}

/// A data set whose sample `index` has a NaN pixel.
struct PoisonedDataset: Dataset {
    let base: any Dataset
    let index: Int
    var count: Int { base.count }
    var classNames: [String] { base.classNames }
    var channels: Int { base.channels }
    var imageSize: (height: Int, width: Int)? { base.imageSize }
    func sample(at i: Int) throws -> LabeledImage {
        var sample = try base.sample(at: i)
        if i == index { sample.image.scalars[7] = .nan }
        return sample
    }
}
