// Counts that the threads of a concurrency test update together.
import Foundation

/// Which of two reference results each run produced, how many matched neither (a torn run) and how many failed.
public final class Tally: @unchecked Sendable {
    public struct Counts: Sendable {
        public var seen = [0, 0]
        public var torn = 0
        public var failures = 0
    }
    private let lock = NSLock()
    private var value = Counts()
    public init() {}
    public func add(_ change: (inout Counts) -> Void) { lock.lock(); change(&value); lock.unlock() }
    public var counts: Counts { lock.lock(); defer { lock.unlock() }; return value }
}
