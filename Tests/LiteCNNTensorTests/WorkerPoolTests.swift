import Foundation
import LiteCNNTensor
import Synchronization
import XCTest
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

final class WorkerPoolTests: XCTestCase {
    func testParallelForVisitsEveryIndexOnceOverManyCalls() {
        let pool = WorkerPool(maximumThreads: 2)
        for call in 0..<500 {
            let count = call % 37 + 1
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
            defer { hits.deallocate() }
            hits.initialize(repeating: 0)
            pool.parallelFor(count) { i in hits[i] += 1 }
            for i in 0..<count where hits[i] != 1 {
                XCTFail("call \(call): index \(i) ran \(hits[i]) times")
                return
            }
        }
    }

    func testParallelRangesCoverTheRangeExactlyOnce() {
        let pool = WorkerPool(maximumThreads: 2)
        for count in [0, 1, 2, 3, 17, 1000] {
            let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
            defer { hits.deallocate() }
            hits.initialize(repeating: 0)
            pool.parallelRanges(count, minimumChunk: 4) { r in for i in r { hits[i] += 1 } }
            XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "count \(count)")
        }
    }

    /// Participant p of t first runs chunks `count·p/t ..< count·(p+1)/t`. Of 4 chunks on 2 threads, chunks 0 and 2
    /// wait for each other: chunk 0 runs on the caller, chunk 2 on the worker, and chunk 1 (the caller's second)
    /// starts only after chunk 2 — handed out first come, first served, the worker would have taken chunk 1 while
    /// the caller waited in chunk 0. Oversubscribed pools (4 threads on this machine) still run every chunk exactly
    /// once, stealing from late owners.
    func testChunksGoToTheirOwnersFirst() {
        let pool = WorkerPool(maximumThreads: 2)
        for _ in 0..<20 {
            let caller = pthread_self(), clock = Atomic<Int>(0), arrived = Atomic<Int>(0), timedOut = Atomic<Bool>(false)
            let startedAt = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
            let onCaller = UnsafeMutableBufferPointer<Bool>.allocate(capacity: 4)
            defer { startedAt.deallocate(); onCaller.deallocate() }
            pool.parallelFor(4) { i in
                startedAt[i] = clock.add(1, ordering: .sequentiallyConsistent).oldValue
                onCaller[i] = pthread_equal(caller, pthread_self()) != 0
                guard i == 0 || i == 2 else { return }
                arrived.add(1, ordering: .sequentiallyConsistent)
                let deadline = Date().addingTimeInterval(5)
                while arrived.load(ordering: .sequentiallyConsistent) < 2 {
                    if Date() > deadline { timedOut.store(true, ordering: .relaxed); return }
                }
            }
            XCTAssertFalse(timedOut.load(ordering: .relaxed), "chunks 0 and 2 never ran at the same time")
            XCTAssertTrue(onCaller[0], "chunk 0 belongs to the caller")
            XCTAssertFalse(onCaller[2], "chunk 2 belongs to the worker")
            XCTAssertLessThan(startedAt[2], startedAt[1], "the worker started its own chunk before the caller's second")
        }
        let crowded = WorkerPool(maximumThreads: 4)
        for count in [1, 3, 4, 5, 7, 64, 257] {
            for _ in 0..<20 {
                let hits = UnsafeMutableBufferPointer<Int>.allocate(capacity: count)
                defer { hits.deallocate() }
                hits.initialize(repeating: 0)
                crowded.parallelFor(count) { i in hits[i] += 1 }
                XCTAssertTrue(hits.allSatisfy { $0 == 1 }, "4 threads, \(count) chunks")
            }
        }
    }

    func testNestedCallsRunSeriallyOnTheirCaller() {
        let pool = WorkerPool(maximumThreads: 2)
        let total = Atomic<Int>(0), foreignInner = Atomic<Int>(0)
        pool.parallelFor(8) { outer in
            let caller = pthread_self()
            pool.parallelFor(10) { inner in
                if pthread_equal(caller, pthread_self()) == 0 { foreignInner.add(1, ordering: .relaxed) }
                total.add(outer * 10 + inner + 1, ordering: .relaxed)
            }
        }
        XCTAssertEqual(total.load(ordering: .relaxed), (1...80).reduce(0, +))
        XCTAssertEqual(foreignInner.load(ordering: .relaxed), 0, "a nested call must run on its caller's thread")
    }

    func testThreadCountChanges() {
        let pool = WorkerPool(maximumThreads: 2)
        XCTAssertEqual(pool.threadCount, 2)
        pool.threadCount = 0
        XCTAssertEqual(pool.threadCount, 1)
        pool.threadCount = 100
        XCTAssertEqual(pool.threadCount, 2)
        pool.threadCount = 1
        let caller = pthread_self(), elsewhere = Atomic<Int>(0), sum = Atomic<Int>(0)
        pool.parallelFor(50) { i in
            if pthread_equal(caller, pthread_self()) == 0 { elsewhere.add(1, ordering: .relaxed) }
            sum.add(i, ordering: .relaxed)
        }
        XCTAssertEqual(elsewhere.load(ordering: .relaxed), 0, "threadCount 1 must run everything on the caller")
        XCTAssertEqual(sum.load(ordering: .relaxed), 49 * 50 / 2)
        pool.threadCount = 2
        sum.store(0, ordering: .relaxed)
        pool.parallelFor(50) { i in sum.add(i, ordering: .relaxed) }
        XCTAssertEqual(sum.load(ordering: .relaxed), 49 * 50 / 2)
    }
}
