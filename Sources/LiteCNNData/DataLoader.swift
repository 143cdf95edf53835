// The batch loader (`torch.utils.data.DataLoader`): seeded shuffling, per-sample seeded augmentation, batching into
// NHWC tensors, and prefetching on a background thread through a bounded queue. Everything a batch contains depends
// only on (seed, epoch, sample index), never on timing, threads or where an epoch was resumed.
import Foundation
import LiteCNNTensor
import Synchronization

/// Combines seed parts into one well-mixed 64-bit seed (SplitMix64's finaliser applied after each part), so that
/// `SeededGenerator(seed: mixSeeds(seed, epoch))` streams for neighbouring epochs or indices are unrelated.
public func mixSeeds(_ parts: UInt64...) -> UInt64 {
    @inline(__always) func finalize(_ value: UInt64) -> UInt64 {
        var z = value
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    var state: UInt64 = 0x243F_6A88_85A3_08D3
    for part in parts { state = finalize(state &+ 0x9E37_79B9_7F4A_7C15 &+ finalize(part &+ 0x9E37_79B9_7F4A_7C15)) }
    return state
}

/// A problem found while assembling a batch (a sample whose shape after the transforms differs from the others', a
/// label out of range, transforms that do not fit the images), naming the sample index.
public struct DataLoaderError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Batches of a data set, shuffled and augmented reproducibly, prepared ahead of time on a background thread.
///
/// - An epoch visits every index in `0..<dataset.count` exactly once (the last `count % batchSize` are dropped when
///   `dropLast`). With `shuffle`, the order is a Fisher–Yates permutation drawn from
///   `SeededGenerator(seed: mixSeeds(seed, epoch))`; without, it is `0, 1, 2, …`.
/// - Sample `i` of epoch `e` is transformed with its own `SeededGenerator(seed: mixSeeds(seed, e, i))`, so a batch is
///   a pure function of (seed, epoch, batch number): `epoch(e, startingAt: k)` yields exactly the batches `k…` of an
///   uninterrupted `epoch(e)` — which makes a resumed run identical to one never interrupted.
/// - `Batch.images` is `[B, H, W, C]` (layout `.nhwc`) where `[H, W, C]` is what the transforms produce; every
///   sample of a batch must come out with the same shape (add `Resize`/`CenterCrop` for folders of mixed sizes).
/// - With `prefetch ≥ 1`, one background thread per epoch iterator decodes and transforms samples serially and keeps
///   up to `prefetch` finished batches queued; it never uses `WorkerPool.shared`, so it does not compete with the
///   training step's threads. With `prefetch == 0`, batches are made on the caller's thread inside `next()`.
public final class DataLoader: @unchecked Sendable {
    public let dataset: any Dataset
    public let batchSize: Int
    public let shuffle: Bool
    public let dropLast: Bool
    public let transforms: [any ImageTransform]
    public let seed: UInt64
    public let prefetch: Int

    private static let liveThreads = Atomic<Int>(0)

    /// The number of loader background threads currently alive in the process (for tests and diagnostics).
    public static var activeBackgroundThreads: Int { liveThreads.load(ordering: .acquiring) }

    /// Preconditions: `batchSize ≥ 1`, `prefetch ≥ 0` (validate user input before).
    public init(dataset: any Dataset, batchSize: Int, shuffle: Bool, dropLast: Bool = false,
                transforms: [any ImageTransform], seed: UInt64 = 0, prefetch: Int = 2) {
        precondition(batchSize >= 1, "DataLoader: batchSize must be at least 1, got \(batchSize)")
        precondition(prefetch >= 0, "DataLoader: prefetch must be ≥ 0, got \(prefetch)")
        self.dataset = dataset
        self.batchSize = batchSize
        self.shuffle = shuffle
        self.dropLast = dropLast
        self.transforms = transforms
        self.seed = seed
        self.prefetch = prefetch
    }

    /// Batches in one epoch: `⌊count / batchSize⌋` with `dropLast`, else `⌈count / batchSize⌉`.
    public var batchesPerEpoch: Int {
        dropLast ? dataset.count / batchSize : (dataset.count + batchSize - 1) / batchSize
    }

    /// The order in which epoch `epoch` visits the data set's indices (all of them, even those `dropLast` skips).
    public func order(forEpoch epoch: Int) -> [Int] {
        var order = Array(0..<dataset.count)
        guard shuffle, order.count > 1 else { return order }
        var generator = SeededGenerator(seed: mixSeeds(seed, UInt64(bitPattern: Int64(epoch))))
        for i in stride(from: order.count - 1, to: 0, by: -1) {
            let j = Int(generator.next() % UInt64(i + 1))
            order.swapAt(i, j)
        }
        return order
    }

    /// Builds batch `batch` of epoch `epoch` on the calling thread (what the background thread runs).
    /// Throws what `Dataset.sample(at:)` throws, or `DataLoaderError` for an inconsistent sample.
    public func makeBatch(_ batch: Int, ofEpoch epoch: Int) throws -> Batch {
        try makeBatch(batch, epoch: epoch, order: order(forEpoch: epoch))
    }

    func makeBatch(_ batch: Int, epoch: Int, order: [Int]) throws -> Batch {
        precondition(batch >= 0 && batch < batchesPerEpoch, "DataLoader: batch \(batch) out of 0..<\(batchesPerEpoch)")
        let indices = Array(order[(batch * batchSize)..<min(order.count, (batch + 1) * batchSize)])
        var labels: [Int] = []
        labels.reserveCapacity(indices.count)
        var scalars: [Float] = []
        var shape: [Int] = []
        let classes = dataset.classCount
        let epochPart = UInt64(bitPattern: Int64(epoch))
        for index in indices {
            let sample = try dataset.sample(at: index)
            guard sample.label >= 0, sample.label < classes else {
                throw DataLoaderError("sample \(index): label \(sample.label) is outside 0..<\(classes)")
            }
            guard sample.image.rank == 3 else {
                throw DataLoaderError("sample \(index): image shape \(sample.image.shape) is not [H, W, C]")
            }
            if shape.isEmpty {
                do { try validateTransforms(transforms, inputShape: sample.image.shape) } catch {
                    throw DataLoaderError("sample \(index): the transforms do not fit an image of shape \(sample.image.shape): \(error)")
                }
            }
            var generator = SeededGenerator(seed: mixSeeds(seed, epochPart, UInt64(index)))
            var image = sample.image
            for transform in transforms { image = transform.apply(image, generator: &generator) }
            if shape.isEmpty {
                shape = image.shape
                scalars.reserveCapacity(indices.count * image.count)
            } else if image.shape != shape {
                throw DataLoaderError("sample \(index): shape \(image.shape) after the transforms differs from " +
                                      "\(shape) of sample \(indices[0]) in the same batch; add a Resize or CenterCrop")
            }
            scalars.append(contentsOf: image.scalars)
            labels.append(sample.label)
        }
        return Batch(images: Tensor(shape: [indices.count] + shape, scalars: scalars, layout: .nhwc),
                     labels: labels, indices: indices)
    }

    /// The batches of `epoch` (order and augmentation depend only on seed, epoch and sample index), from batch
    /// `startingAt` on (clamped to `0...batchesPerEpoch`), prefetched on a background thread when `prefetch ≥ 1`.
    public func epoch(_ epoch: Int, startingAt batch: Int = 0) -> DataLoader.EpochIterator {
        EpochIterator(loader: self, epoch: epoch, range: max(0, min(batch, batchesPerEpoch))..<batchesPerEpoch)
    }

    /// One pass over an epoch's batches. `next()` returns the next batch, `nil` at the end, or throws the error that
    /// stopped the background thread (after which it returns `nil`). Dropping the iterator early stops and joins its
    /// thread (waiting at most for the batch in progress).
    public final class EpochIterator {
        private let loader: DataLoader
        private let epoch: Int
        private let queue: PrefetchQueue?
        // Synchronous mode (prefetch == 0).
        private var order: [Int] = []
        private var remaining: Range<Int>
        private var failed = false

        init(loader: DataLoader, epoch: Int, range: Range<Int>) {
            self.loader = loader
            self.epoch = epoch
            self.remaining = range
            guard loader.prefetch > 0, !range.isEmpty else {
                queue = nil
                if !range.isEmpty { order = loader.order(forEpoch: epoch) }
                return
            }
            let queue = PrefetchQueue(capacity: loader.prefetch, batches: range.count)
            self.queue = queue
            DataLoader.liveThreads.add(1, ordering: .acquiringAndReleasing)
            let thread = Thread {
                let order = loader.order(forEpoch: epoch)
                queue.produce(range) { try loader.makeBatch($0, epoch: epoch, order: order) }
                DataLoader.liveThreads.subtract(1, ordering: .acquiringAndReleasing)
                queue.markExited()
            }
            thread.name = "litecnn-data-loader"
            thread.start()
        }

        /// The number of batches this iterator has left to return (including queued ones).
        public var remainingBatches: Int { queue?.remaining ?? remaining.count }

        public func next() throws -> Batch? {
            if let queue {
                guard let result = queue.take() else { return nil }
                return try result.get()
            }
            guard !failed, let batch = remaining.first else { return nil }
            remaining = remaining.dropFirst()
            do { return try loader.makeBatch(batch, epoch: epoch, order: order) } catch {
                failed = true
                throw error
            }
        }

        deinit { queue?.cancelAndJoin() }
    }
}

/// The bounded hand-off between the loader's background thread (producer) and `EpochIterator.next()` (consumer).
final class PrefetchQueue: @unchecked Sendable {
    private let condition = NSCondition()
    private let capacity: Int
    private var buffer: [Result<Batch, any Error>] = []
    private var cancelled = false
    private var producing = true
    private var exited = false
    private var pending = 0

    init(capacity: Int, batches: Int) {
        self.capacity = max(1, capacity)
        self.pending = batches
    }

    var remaining: Int {
        condition.lock(); defer { condition.unlock() }
        return pending + buffer.count
    }

    /// Runs on the background thread: makes each batch of `range` in turn, waiting while `capacity` are queued;
    /// stops after the first error or when cancelled.
    func produce(_ range: Range<Int>, _ make: (Int) throws -> Batch) {
        for batch in range {
            condition.lock()
            while buffer.count >= capacity && !cancelled { condition.wait() }
            let stop = cancelled
            condition.unlock()
            if stop { break }
            let result = Result { try make(batch) }
            condition.lock()
            pending -= 1
            let keep = !cancelled
            if keep { buffer.append(result) }
            condition.broadcast()
            condition.unlock()
            guard keep, case .success = result else { break }
        }
        condition.lock()
        producing = false
        pending = 0
        condition.broadcast()
        condition.unlock()
    }

    func markExited() {
        condition.lock()
        exited = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next result, waiting for the producer; `nil` once it has stopped and the queue is empty.
    func take() -> Result<Batch, any Error>? {
        condition.lock(); defer { condition.unlock() }
        while buffer.isEmpty && producing { condition.wait() }
        guard !buffer.isEmpty else { return nil }
        let result = buffer.removeFirst()
        condition.broadcast()
        return result
    }

    /// Stops the producer after its current batch, drops queued batches and waits until the thread has exited.
    func cancelAndJoin() {
        condition.lock()
        cancelled = true
        buffer.removeAll()
        condition.broadcast()
        while !exited { condition.wait() }
        condition.unlock()
    }
}
