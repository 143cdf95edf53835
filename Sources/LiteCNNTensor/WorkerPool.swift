import Foundation
import Synchronization
import CLiteCNNKernels
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A persistent pool of worker threads that splits a loop across cores.
///
/// `DispatchQueue.concurrentPerform` needs ~20 µs to wake a second thread on this machine, longer than many
/// MobileNet layers take; these workers spin briefly on an atomic generation counter before sleeping, so a split
/// costs well under a microsecond while the pool is warm. The calling thread always takes part.
///
/// A `parallelFor` issued while another is running (from a worker or from a second caller thread) runs serially on
/// its caller, so kernels can call it freely without deadlock.
public final class WorkerPool: @unchecked Sendable {
    /// The process-wide pool. Its size is `LITECNN_THREADS` when set, otherwise the number of active processors.
    public static let shared: WorkerPool = {
        let env = ProcessInfo.processInfo.environment["LITECNN_THREADS"].flatMap(Int.init)
        return WorkerPool(maximumThreads: max(1, env ?? ProcessInfo.processInfo.activeProcessorCount))
    }()

    /// Threads the pool may use including the caller (1…maximumThreads). Change it between calls, not during one.
    public var threadCount: Int {
        get { activeThreads.load(ordering: .relaxed) }
        set { activeThreads.store(min(max(1, newValue), maximumThreads), ordering: .relaxed) }
    }

    public let maximumThreads: Int
    /// The processor the workers left free for the thread that created the pool, or -1 when they are not bound.
    private let callerProcessor: Int

    private let activeThreads: Atomic<Int>
    private let generation = Atomic<Int>(0)
    /// Per participant, the next chunk of its own range (`ownedChunks`), claimed by its owner first and by the other
    /// participants once they have finished theirs.
    private let cursors: [Cursor]
    private let pendingWorkers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private let sleepers = Atomic<Int>(0)
    private let participants = Atomic<Int>(0)
    private var job: Job?
    private var mutex = pthread_mutex_t()
    private var condition = pthread_cond_t()

    private struct Job {
        let body: (Int) -> Void
        let chunks: Int
        let threads: Int
    }

    /// An atomic chunk index alone on its cache line (the participants' cursors are claimed from different cores).
    private final class Cursor {
        let next = Atomic<Int>(0)
        private let padding: (Int, Int, Int, Int, Int, Int, Int) = (0, 0, 0, 0, 0, 0, 0)
    }

    public init(maximumThreads: Int) {
        precondition(maximumThreads >= 1, "WorkerPool needs at least one thread")
        self.maximumThreads = maximumThreads
        self.activeThreads = Atomic(maximumThreads)
        self.cursors = (0..<maximumThreads).map { _ in Cursor() }
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&condition, nil)
        // Each worker is bound to a processor of its own, other than the one the creating thread runs on, which
        // `bindCallingThread` can claim for the caller (`LITECNN_PIN_THREADS=0`: nothing is bound).
        let pins = ProcessInfo.processInfo.environment["LITECNN_PIN_THREADS"] != "0"
        let processors = (0..<maximumThreads).map { pins && $0 > 0 ? Int(lcnn_worker_processor(Int32($0))) : -1 }
        callerProcessor = pins && processors.dropFirst().allSatisfy({ $0 >= 0 }) ? Int(lcnn_current_processor()) : -1
        for index in 1..<maximumThreads {
            let processor = processors[index]
            let thread = Thread { [unowned self] in
                if processor >= 0 { _ = lcnn_pin_current_thread(Int32(processor)) }
                self.workerLoop(index: index)
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
    }

    /// Binds the calling thread to the processor the workers left free (the one the pool was created on); returns
    /// whether it did. For a process that runs its inferences from one thread, such as the `litecnn` command: left
    /// unbound, the caller and a worker shared one processor for the first ~100 ms of a process (the scheduler is
    /// slow to separate a spinning pair), and SqueezeNet's first runs at two threads took 7–8 ms instead of 2 with
    /// ~50 context switches per run. A library leaves its caller's threads alone unless asked.
    @discardableResult
    public func bindCallingThread() -> Bool {
        callerProcessor >= 0 && lcnn_pin_current_thread(Int32(callerProcessor)) == 0
    }

    /// Runs `body(i)` for every `i` in `0..<count`, spread over the pool's threads. Returns when all are done.
    ///
    /// Participant `p` of `t` (the caller is 0) runs the chunks `count·p/t ..< count·(p+1)/t` in order, then helps with
    /// whatever the others have not started. So a layer's chunks go to the same threads as the previous layer's: a
    /// 1×1 convolution's pixel tiles and the depthwise rows that read them run on the core whose cache holds them
    /// (with chunks handed out first come, first served, the two threads' tiles interleaved and every depthwise
    /// layer of MobileNet V1 ran slower on two threads than on one), while a thread that is late to wake still has
    /// its work done by the others.
    public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
        if count <= 0 { return }
        let threads = min(threadCount, count)
        if threads <= 1 || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            for i in 0..<count { body(i) }
            return
        }
        withoutActuallyEscaping(body) { escapable in
            job = Job(body: escapable, chunks: count, threads: threads)
            for p in 0..<threads { cursors[p].next.store(count * p / threads, ordering: .relaxed) }
            pendingWorkers.store(threads - 1, ordering: .relaxed)
            participants.store(threads - 1, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&condition)
                pthread_mutex_unlock(&mutex)
            }
            runChunks(escapable, count: count, threads: threads, participant: 0)
            // Spin briefly (workers finish within microseconds when they have a core), then yield the core: when the
            // machine is oversubscribed a descheduled worker must get to run instead of this thread burning its slice.
            var waited = 0
            while pendingWorkers.load(ordering: .acquiring) > 0 {
                waited += 1
                if waited < 4_000 { spinHint() } else { sched_yield() }
            }
            job = nil
        }
        busy.store(false, ordering: .releasing)
    }

    /// Splits `0..<count` into at most `threadCount` contiguous ranges of near-equal size and runs them in parallel.
    public func parallelRanges(_ count: Int, minimumChunk: Int = 1, _ body: (Range<Int>) -> Void) {
        let parts = max(1, min(threadCount, count / max(1, minimumChunk)))
        if parts == 1 { if count > 0 { body(0..<count) }; return }
        parallelFor(parts) { p in
            let lo = count * p / parts, hi = count * (p + 1) / parts
            if lo < hi { body(lo..<hi) }
        }
    }

    /// Runs participant `participant`'s own chunks, then the unstarted chunks of the others.
    private func runChunks(_ body: (Int) -> Void, count: Int, threads: Int, participant: Int) {
        for q in 0..<threads {
            let owner = (participant + q) % threads, end = count * (owner + 1) / threads
            while true {
                let i = cursors[owner].next.add(1, ordering: .relaxed).oldValue
                if i >= end { break }
                body(i)
            }
        }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var current = generation.load(ordering: .acquiring)
            while current == seen {
                spins += 1
                if spins < 20_000 {
                    spinHint()
                    if spins % 1_024 == 0 { sched_yield() }  // let an oversubscribed core run someone else
                } else {
                    pthread_mutex_lock(&mutex)
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    while generation.load(ordering: .sequentiallyConsistent) == seen {
                        pthread_cond_wait(&condition, &mutex)
                    }
                    sleepers.subtract(1, ordering: .relaxed)
                    pthread_mutex_unlock(&mutex)
                    spins = 0
                }
                current = generation.load(ordering: .acquiring)
            }
            seen = current
            // Only participants read `job`: the caller keeps it alive until every participant has finished.
            if index <= participants.load(ordering: .relaxed) {
                runCurrentJob(participant: index)
                pendingWorkers.subtract(1, ordering: .releasing)
            }
        }
    }

    /// Runs the current job's chunks. A function of its own so that the worker's reference to the job's closure is
    /// released before it reports completion (the caller's `withoutActuallyEscaping` checks nothing kept it).
    @inline(never)
    private func runCurrentJob(participant: Int) {
        guard let job else { return }
        runChunks(job.body, count: job.chunks, threads: job.threads, participant: participant)
    }

    @inline(__always)
    private func spinHint() { lcnn_cpu_relax() }
}
