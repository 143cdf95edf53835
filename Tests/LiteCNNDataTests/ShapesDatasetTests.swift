// Tests of the built-in procedural data set: determinism by (seed, split, index), split disjointness, class balance,
// value range, argument validation, generation speed, and the hardness check (a linear softmax classifier on raw
// pixels stays far from solving it).
import Foundation
import LiteCNNData
import LiteCNNTensor
import Synchronization
import XCTest

final class ShapesDatasetTests: XCTestCase {
    func testSameSeedSameIndexGivesIdenticalPixelsInAnyOrder() throws {
        let a = ShapesDataset(samples: 200, resolution: 32, channels: 3, seed: 7)
        let b = ShapesDataset(samples: 200, resolution: 32, channels: 3, seed: 7)
        // b is read backwards: random access, no hidden state.
        let forward = try (0..<20).map { try a.sample(at: $0 * 9) }
        let backward = try (0..<20).reversed().map { try b.sample(at: $0 * 9) }.reversed()
        for (x, y) in zip(forward, backward) {
            XCTAssertEqual(x.image.scalars.map(\.bitPattern), y.image.scalars.map(\.bitPattern))
            XCTAssertEqual(x.label, y.label)
        }
        // Concurrent generation gives the same pixels as serial.
        let serial = try (0..<64).map { try a.sample(at: $0).image.scalars }
        let results = Mutex<[[Float]]>(Array(repeating: [], count: 64))
        DispatchQueue.concurrentPerform(iterations: 64) { i in
            let pixels = try! b.sample(at: i).image.scalars
            results.withLock { $0[i] = pixels }
        }
        XCTAssertEqual(results.withLock { $0 }, serial)
    }

    func testDifferentIndexOrSeedGivesDifferentImages() throws {
        let a = ShapesDataset(samples: 100, resolution: 24, channels: 3, seed: 1)
        let other = ShapesDataset(samples: 100, resolution: 24, channels: 3, seed: 2)
        var seen: [[Float]] = []
        for i in 0..<30 {
            let image = try a.sample(at: i).image.scalars
            XCTAssertFalse(seen.contains(image), "sample \(i) repeats an earlier one")
            seen.append(image)
            XCTAssertNotEqual(image, try other.sample(at: i).image.scalars, "seed must change sample \(i)")
        }
    }

    func testTrainAndTestSplitsAreDisjoint() throws {
        let splits = ShapesDataset.splits(samples: 300, testSamples: 300, resolution: 16, channels: 1, seed: 3)
        let train = try Set((0..<300).map { try splits.train.sample(at: $0).image.scalars.map(\.bitPattern) })
        let test = try Set((0..<300).map { try splits.test.sample(at: $0).image.scalars.map(\.bitPattern) })
        XCTAssertEqual(train.count, 300)
        XCTAssertEqual(test.count, 300)
        XCTAssertTrue(train.isDisjoint(with: test))
        XCTAssertEqual(ShapesDataset.splits(samples: 1000).test.count, 200)
        XCTAssertEqual(ShapesDataset.splits(samples: 50).test.count, 100)
        XCTAssertEqual(splits.train.classNames, ShapesDataset.classNames)
    }

    func testClassesAreBalancedAndLabelsMatchIndex() throws {
        let data = ShapesDataset(samples: 1000, resolution: 16, channels: 1)
        var histogram = [Int](repeating: 0, count: 10)
        for i in 0..<data.count {
            let label = try data.sample(at: i).label
            XCTAssertEqual(label, i % 10)
            histogram[label] += 1
        }
        XCTAssertEqual(histogram, [Int](repeating: 100, count: 10))
        XCTAssertEqual(ShapesDataset.classNames.count, 10)
        XCTAssertEqual(Set(ShapesDataset.classNames).count, 10)
    }

    func testShapeValueRangeAndContrastAtSeveralResolutions() throws {
        for (resolution, channels) in [(16, 1), (16, 3), (33, 3), (64, 1), (96, 3)] {
            let data = ShapesDataset(samples: 20, resolution: resolution, channels: channels, seed: 11)
            XCTAssertEqual(data.imageSize?.height, resolution)
            XCTAssertEqual(data.imageSize?.width, resolution)
            for i in 0..<20 {
                let image = try data.sample(at: i).image
                XCTAssertEqual(image.shape, [resolution, resolution, channels])
                XCTAssertTrue(image.scalars.allSatisfy { $0 >= 0 && $0 <= 1 }, "values leave [0, 1] at \(resolution)")
                let mean = image.scalars.reduce(0, +) / Float(image.count)
                let variance = image.scalars.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Float(image.count)
                XCTAssertGreaterThan(variance.squareRoot(), 0.04, "image \(i) at \(resolution) is nearly flat")
            }
        }
    }

    func testGrayIsTheLuminanceOfTheSameScene() throws {
        let rgb = ShapesDataset(samples: 10, resolution: 32, channels: 3, seed: 5)
        let gray = ShapesDataset(samples: 10, resolution: 32, channels: 1, seed: 5)
        for i in 0..<10 {
            let c = try rgb.sample(at: i).image.scalars, g = try gray.sample(at: i).image.scalars
            var difference: Float = 0
            for p in 0..<g.count { difference += abs(g[p] - (0.299 * c[3 * p] + 0.587 * c[3 * p + 1] + 0.114 * c[3 * p + 2])) }
            XCTAssertLessThan(difference / Float(g.count), 0.08, "sample \(i): gray differs from RGB luma by more than noise")
        }
    }

    func testValidateNamesTheArgument() {
        func argument(_ body: () throws -> Void) -> String? {
            do { try body(); return nil } catch let error as DataArgumentError { return error.argument } catch { return "?" }
        }
        XCTAssertNil(argument { try ShapesDataset.validate(samples: 10, resolution: 16, channels: 1) })
        XCTAssertEqual(argument { try ShapesDataset.validate(samples: 0, resolution: 32, channels: 3) }, "--samples")
        XCTAssertEqual(argument { try ShapesDataset.validate(samples: 10, testSamples: -1, resolution: 32, channels: 3) }, "--test-samples")
        XCTAssertEqual(argument { try ShapesDataset.validate(samples: 10, resolution: 15, channels: 3) }, "--resolution")
        XCTAssertEqual(argument { try ShapesDataset.validate(samples: 10, resolution: 5000, channels: 3) }, "--resolution")
        XCTAssertEqual(argument { try ShapesDataset.validate(samples: 10, resolution: 32, channels: 2) }, "--channels")
    }

    /// 10 000 samples at 32×32×3 (a CIFAR-sized epoch of shapes) in well under two seconds on one core.
    func testGenerationSpeed() throws {
        let data = ShapesDataset(samples: 10_000, resolution: 32, channels: 3)
        let start = Date()
        var checksum: Float = 0
        for i in 0..<data.count { checksum += try data.sample(at: i).image.scalars[0] }
        let seconds = Date().timeIntervalSince(start)
        print("ShapesDataset: 10000 samples 32×32×3 in \(String(format: "%.3f", seconds)) s (\(Int(10_000 / seconds)) samples/s, one thread)")
        XCTAssertGreaterThan(checksum, 0)
        XCTAssertLessThan(seconds, 4, "generation is too slow")
    }

    /// The hardness bar: multinomial logistic regression on standardised raw pixels (2000 training images, 24×24
    /// gray, 15 epochs of SGD) stays far below solving the set on the held-out split; chance is 10 %.
    /// It must still learn something (above chance on the training set), or the check would prove nothing.
    func testLinearSoftmaxOnRawPixelsStaysWellBelowTheBar() throws {
        let splits = ShapesDataset.splits(samples: 2000, testSamples: 1000, resolution: 24, channels: 1, seed: 0)
        let result = try trainLinearSoftmax(train: splits.train, test: splits.test, epochs: 15, learningRate: 0.01)
        print("ShapesDataset hardness: linear softmax on raw 24×24 gray pixels, 2000 train / 1000 test images: " +
              "train top-1 \(String(format: "%.1f", 100 * result.train)) %, test top-1 \(String(format: "%.1f", 100 * result.test)) % (chance 10 %)")
        XCTAssertLessThan(result.test, 0.6, "a linear classifier on raw pixels nearly solves the set: it is too easy")
        XCTAssertGreaterThan(result.train, 0.2, "the linear classifier failed to fit even its training set")
    }
}

/// Multinomial logistic regression (softmax + cross-entropy, per-sample SGD, features standardised with the training
/// set's per-pixel mean and std). Returns top-1 accuracy on both splits.
func trainLinearSoftmax(train: any Dataset, test: any Dataset, epochs: Int, learningRate: Float) throws -> (train: Float, test: Float) {
    func load(_ data: any Dataset) throws -> ([[Float]], [Int]) {
        var x: [[Float]] = [], y: [Int] = []
        for i in 0..<data.count { let s = try data.sample(at: i); x.append(s.image.scalars); y.append(s.label) }
        return (x, y)
    }
    var (trainX, trainY) = try load(train)
    var (testX, testY) = try load(test)
    let features = trainX[0].count, classes = train.classCount
    var mean = [Float](repeating: 0, count: features), std = mean
    for x in trainX { for f in 0..<features { mean[f] += x[f] } }
    for f in 0..<features { mean[f] /= Float(trainX.count) }
    for x in trainX { for f in 0..<features { std[f] += (x[f] - mean[f]) * (x[f] - mean[f]) } }
    for f in 0..<features { std[f] = max(1e-3, (std[f] / Float(trainX.count)).squareRoot()) }
    func standardise(_ rows: inout [[Float]]) { for r in rows.indices { for f in 0..<features { rows[r][f] = (rows[r][f] - mean[f]) / std[f] } } }
    standardise(&trainX)
    standardise(&testX)
    var weights = [Float](repeating: 0, count: classes * features), bias = [Float](repeating: 0, count: classes)
    func logits(_ x: [Float]) -> [Float] {
        (0..<classes).map { k in
            var s = bias[k]
            for f in 0..<features { s += weights[k * features + f] * x[f] }
            return s
        }
    }
    var generator = SeededGenerator(seed: 1)
    var order = Array(0..<trainX.count)
    for _ in 0..<epochs {
        order.shuffle(using: &generator)
        for i in order {
            let z = logits(trainX[i])
            let top = z.max()!
            let e = z.map { exp($0 - top) }
            let total = e.reduce(0, +)
            for k in 0..<classes {
                let g = e[k] / total - (k == trainY[i] ? 1 : 0)
                bias[k] -= learningRate * g
                for f in 0..<features { weights[k * features + f] -= learningRate * g * trainX[i][f] }
            }
        }
    }
    func accuracy(_ x: [[Float]], _ y: [Int]) -> Float {
        var correct = 0
        for i in x.indices {
            let z = logits(x[i])
            if z.indices.max(by: { z[$0] < z[$1] }) == y[i] { correct += 1 }
        }
        return Float(correct) / Float(x.count)
    }
    return (accuracy(trainX, trainY), accuracy(testX, testY))
}
