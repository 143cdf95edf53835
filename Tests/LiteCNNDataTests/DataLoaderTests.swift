// Tests of the batch loader: batch shapes and labels, every index exactly once per epoch, seeded shuffling,
// augmentation independent of prefetch and of resuming mid-epoch, error propagation from the background thread,
// clean shutdown when an iterator is abandoned, and a throughput measurement on the shapes set.
import Foundation
import LiteCNNData
import LiteCNNTensor
import XCTest

/// `count` images of `[2, 2, 1]` whose pixels all equal the index; label `index % 3`. Throws at `failingIndex`;
/// sleeps `delay` seconds per sample.
private struct IndexDataset: Dataset {
    struct Failure: Error, Equatable { var index: Int }
    var count: Int
    var failingIndex: Int? = nil
    var delay: Double = 0
    var varyingSize = false
    var classNames: [String] { ["a", "b", "c"] }
    var channels: Int { 1 }
    var imageSize: (height: Int, width: Int)? { varyingSize ? nil : (2, 2) }

    func sample(at index: Int) throws -> LabeledImage {
        if index == failingIndex { throw Failure(index: index) }
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        let side = varyingSize ? 2 + index % 2 : 2
        return LabeledImage(image: Tensor(shape: [side, side, 1], repeating: Float(index), layout: .plain), label: index % 3)
    }
}

private func collect(_ iterator: DataLoader.EpochIterator) throws -> [Batch] {
    var batches: [Batch] = []
    while let batch = try iterator.next() { batches.append(batch) }
    return batches
}

final class DataLoaderTests: XCTestCase {
    func testBatchShapesLabelsAndPartialLastBatch() throws {
        let loader = DataLoader(dataset: IndexDataset(count: 10), batchSize: 4, shuffle: false, transforms: [])
        XCTAssertEqual(loader.batchesPerEpoch, 3)
        let batches = try collect(loader.epoch(0))
        XCTAssertEqual(batches.map(\.images.shape), [[4, 2, 2, 1], [4, 2, 2, 1], [2, 2, 2, 1]])
        XCTAssertTrue(batches.allSatisfy { $0.images.layout == .nhwc })
        XCTAssertEqual(batches.map(\.indices), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]])
        for batch in batches {
            XCTAssertEqual(batch.labels, batch.indices.map { $0 % 3 })
            for (position, index) in batch.indices.enumerated() {
                XCTAssertEqual(Array(batch.images.scalars[(position * 4)..<(position * 4 + 4)]), [Float](repeating: Float(index), count: 4))
            }
        }
        let dropping = DataLoader(dataset: IndexDataset(count: 10), batchSize: 4, shuffle: true, dropLast: true, transforms: [])
        XCTAssertEqual(dropping.batchesPerEpoch, 2)
        XCTAssertEqual(try collect(dropping.epoch(0)).map(\.images.shape), [[4, 2, 2, 1], [4, 2, 2, 1]])
        XCTAssertEqual(try collect(DataLoader(dataset: IndexDataset(count: 0), batchSize: 4, shuffle: true, transforms: []).epoch(0)).count, 0)
    }

    func testShuffleVisitsEveryIndexOnceDiffersPerEpochAndIsReproducible() throws {
        let data = IndexDataset(count: 103)
        let loader = DataLoader(dataset: data, batchSize: 8, shuffle: true, transforms: [], seed: 9, prefetch: 3)
        let again = DataLoader(dataset: data, batchSize: 8, shuffle: true, transforms: [], seed: 9, prefetch: 0)
        var orders: [[Int]] = []
        for epoch in 0..<3 {
            let order = try collect(loader.epoch(epoch)).flatMap(\.indices)
            XCTAssertEqual(order.sorted(), Array(0..<103), "epoch \(epoch) must visit every index exactly once")
            XCTAssertEqual(try collect(again.epoch(epoch)).flatMap(\.indices), order, "same seed and epoch, same order")
            XCTAssertEqual(loader.order(forEpoch: epoch), order)
            orders.append(order)
        }
        XCTAssertNotEqual(orders[0], orders[1])
        XCTAssertNotEqual(orders[1], orders[2])
        XCTAssertNotEqual(orders[0], Array(0..<103))
        let otherSeed = DataLoader(dataset: data, batchSize: 8, shuffle: true, transforms: [], seed: 10)
        XCTAssertNotEqual(otherSeed.order(forEpoch: 0), orders[0])
    }

    func testResumingMidEpochAndPrefetchDepthGiveIdenticalAugmentedBatches() throws {
        let data = ShapesDataset(samples: 90, resolution: 16, channels: 3, seed: 4)
        let transforms: [any ImageTransform] = [try RandomCrop(size: 16, padding: 2), try RandomHorizontalFlip(),
                                                 try RandomResizedCrop(size: 12), Normalize.imageNet]
        func loader(prefetch: Int) -> DataLoader {
            DataLoader(dataset: data, batchSize: 16, shuffle: true, transforms: transforms, seed: 77, prefetch: prefetch)
        }
        let full = try collect(loader(prefetch: 2).epoch(5))
        XCTAssertEqual(full.count, 6)
        XCTAssertEqual(full.map(\.images.shape).last, [10, 12, 12, 3])
        for prefetch in [0, 1, 4] {
            let resumed = try collect(loader(prefetch: prefetch).epoch(5, startingAt: 3))
            XCTAssertEqual(resumed.count, 3)
            for (a, b) in zip(resumed, full[3...]) {
                XCTAssertEqual(a.indices, b.indices)
                XCTAssertEqual(a.labels, b.labels)
                XCTAssertEqual(a.images.scalars.map(\.bitPattern), b.images.scalars.map(\.bitPattern), "prefetch \(prefetch)")
            }
        }
        // The same sample is augmented differently in another epoch.
        let other = try collect(loader(prefetch: 2).epoch(6))
        let sample = full[0].indices[0]
        let position = other.flatMap(\.indices).firstIndex(of: sample)!
        let a = Array(full[0].images.scalars[0..<(12 * 12 * 3)])
        let b = Array(other[position / 16].images.scalars[(position % 16) * 432..<((position % 16) + 1) * 432])
        XCTAssertNotEqual(a, b)
        XCTAssertEqual(try collect(loader(prefetch: 2).epoch(5, startingAt: 6)).count, 0)
        XCTAssertEqual(loader(prefetch: 2).epoch(5, startingAt: 4).remainingBatches, 2)
    }

    func testErrorsFromTheDataSetSurfaceFromNextAndStopTheThread() throws {
        let baseline = DataLoader.activeBackgroundThreads
        for prefetch in [0, 2] {
            let loader = DataLoader(dataset: IndexDataset(count: 40, failingIndex: 13), batchSize: 5, shuffle: false,
                                    transforms: [], prefetch: prefetch)
            let iterator = loader.epoch(0)
            var delivered = 0
            do {
                while try iterator.next() != nil { delivered += 1 }
                XCTFail("the failing sample must surface as an error")
            } catch let error as IndexDataset.Failure {
                XCTAssertEqual(error, IndexDataset.Failure(index: 13))
            }
            XCTAssertEqual(delivered, 2, "batches before the failing one are delivered")
            XCTAssertNil(try iterator.next(), "after the error the epoch is over")
        }
        waitForThreads(toReach: baseline)
        // A shape that differs inside a batch is an error naming the sample.
        let mixed = DataLoader(dataset: IndexDataset(count: 4, varyingSize: true), batchSize: 4, shuffle: false, transforms: [])
        XCTAssertThrowsError(try collect(mixed.epoch(0))) { error in
            XCTAssertTrue("\(error)".contains("sample 1"), "\(error)")
        }
        // Transforms that do not fit the images: an error, not a trap.
        let wrong = DataLoader(dataset: IndexDataset(count: 4), batchSize: 2, shuffle: false, transforms: [Normalize.imageNet])
        XCTAssertThrowsError(try collect(wrong.epoch(0))) { error in XCTAssertTrue(error is DataLoaderError, "\(error)") }
        waitForThreads(toReach: baseline)
    }

    func testAbandoningAnIteratorStopsItsThread() throws {
        let baseline = DataLoader.activeBackgroundThreads
        let loader = DataLoader(dataset: IndexDataset(count: 400, delay: 0.001), batchSize: 4, shuffle: true,
                                transforms: [], prefetch: 3)
        for _ in 0..<5 {
            var iterator: DataLoader.EpochIterator? = loader.epoch(0)
            XCTAssertEqual(DataLoader.activeBackgroundThreads, baseline + 1)
            XCTAssertNotNil(try iterator?.next())
            iterator = nil      // deinit cancels and joins
            XCTAssertEqual(DataLoader.activeBackgroundThreads, baseline)
        }
        // Never consumed at all: also stops.
        do { _ = loader.epoch(1) }
        XCTAssertEqual(DataLoader.activeBackgroundThreads, baseline)
    }

    /// Throughput of the prefetching loader on shapes 32×32×3, batch 64, CIFAR augmentation: the rate at which a
    /// training loop that does nothing else could consume batches (one background thread, serial decoding).
    func testThroughputOnShapes() throws {
        let data = ShapesDataset(samples: 64 * 40, resolution: 32, channels: 3)
        let transforms = StandardTransforms.training(resolution: 32, channels: 3, mean: Normalize.imageNet.mean,
                                                     std: Normalize.imageNet.std, augmentation: .crop)
        let loader = DataLoader(dataset: data, batchSize: 64, shuffle: true, transforms: transforms, seed: 1, prefetch: 2)
        let start = Date()
        var images = 0
        for batch in try collect(loader.epoch(0)) { images += batch.labels.count }
        let seconds = Date().timeIntervalSince(start)
        print("DataLoader: shapes 32×32×3, batch 64, crop+flip+normalize: \(images) images in " +
              "\(String(format: "%.3f", seconds)) s = \(Int(Double(images) / seconds)) images/s")
        XCTAssertEqual(images, 2560)
        XCTAssertGreaterThan(Double(images) / seconds, 2000)
    }

    private func waitForThreads(toReach count: Int) {
        let deadline = Date().addingTimeInterval(5)
        while DataLoader.activeBackgroundThreads != count && Date() < deadline { Thread.sleep(forTimeInterval: 0.001) }
        XCTAssertEqual(DataLoader.activeBackgroundThreads, count)
    }
}
