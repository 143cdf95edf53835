// Concurrency tests: runs that must each match one of two references while the main thread keeps switching.
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

    /// Runs `run` `iterations` times on each of `threads` threads, recording which reference each result equals
    /// (`matches(result, reference)`, references 0 and 1; a run that throws is a failure), while the calling thread
    /// calls `switchTo(0)`, `switchTo(1)`, `switchTo(0)`, … with a pause of `pause` µs until every run has finished.
    /// The threads go on running past `iterations` until `minimumSwitches` switches were made, so that a loaded
    /// machine, where the switching thread is rarely scheduled, still tests switching under concurrent runs.
    /// Returns the counts (at least `threads · iterations` runs) and the number of switches made.
    public static func runWhileSwitching(threads: Int = 2, iterations: Int, references: [[Float]],
                                         matches: @escaping @Sendable ([Float], [Float]) -> Bool,
                                         run: @escaping @Sendable () throws -> [Float],
                                         pause: UInt32 = 50, minimumSwitches: Int = 0,
                                         switchTo: (Int) throws -> Void) rethrows -> (Counts, switches: Int) {
        let tally = Tally()
        let done = DispatchGroup()
        let switched = SwitchCount()
        for _ in 0..<threads {
            DispatchQueue.global().async(group: done) {
                var i = 0
                while i < iterations || switched.value < minimumSwitches {
                    i += 1
                    guard let y = try? run() else { tally.add { $0.failures += 1 }; continue }
                    let match = references.firstIndex { matches($0, y) }
                    tally.add { if let match { $0.seen[match] += 1 } else { $0.torn += 1 } }
                }
            }
        }
        var switches = 0
        while done.wait(timeout: .now()) == .timedOut {
            try switchTo(switches % 2)
            switches += 1
            switched.value = switches
            usleep(pause)
        }
        return (tally.counts, switches)
    }
}

/// The number of switches `runWhileSwitching` made so far, read by the running threads.
private final class SwitchCount: @unchecked Sendable {
    private let lock = NSLock()
    private var stored = 0
    var value: Int {
        get { lock.lock(); defer { lock.unlock() }; return stored }
        set { lock.lock(); stored = newValue; lock.unlock() }
    }
}
