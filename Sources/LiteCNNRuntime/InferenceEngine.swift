import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// Options of an `InferenceEngine`.
public struct InferenceOptions: Sendable {
    /// How a batch of several images uses several threads.
    public enum BatchParallelism: Sendable, Equatable {
        /// Time both ways on the first runs of each input shape and keep the faster (the default).
        case automatic
        /// Every operator splits its own work over the threads (one plan, one arena).
        case withinOperators
        /// The batch is cut into one sub-batch per thread, each run by its own plan and arena on its own thread, with
        /// single-threaded kernels: no synchronization between layers and a per-thread working set that stays in
        /// cache. Used only when every operator keeps the images apart (`Plan.batchSplittable`).
        case acrossImages
    }

    /// Threads for every run (sets `WorkerPool.shared.threadCount` before running); nil keeps the pool's setting.
    public var threads: Int?
    public var batchParallelism: BatchParallelism
    public init(threads: Int? = nil, batchParallelism: BatchParallelism = .automatic) {
        self.threads = threads
        self.batchParallelism = batchParallelism
    }
}

/// Compiles a `Graph` once and runs it many times on the CPU (the XNNPACK/ncnn lifecycle).
///
/// - **Create** (`init`): validates the graph (unsupported operators or attributes throw a `GraphError` naming the
///   node, operator and opset), folds constants, folds BatchNormalization into the preceding Conv's weights and bias,
///   and fuses into the convolution's epilogue its activation (Relu, Clip, Sigmoid, HardSigmoid, HardSwish, SiLU as
///   `Mul(x, Sigmoid(x))`) and a residual `Add` with the activation after it; a Gemm with constant weights becomes a
///   packed 1×1 convolution (docs/RUNTIME.md lists the fusions).
/// - **Plan** (`prepare`, or automatically on the first run of a new input shape; plans are cached per shape):
///   evaluates shape arithmetic (Shape/Gather/Unsqueeze/Concat/Reshape/Slice…) with the real shapes, so a dynamic
///   batch works; lays 4-D activations out NHWC (converting to NCHW order only for layout-dependent operators such as
///   Reshape, Transpose, Flatten of a non-1×1 map); recognizes PyTorch's channel shuffle
///   (Reshape [N,g,C/g,H,W] → Transpose [0,2,1,3,4] → Reshape [N,C,H,W]) and runs it as one NHWC shuffle; and gives
///   every activation an offset in one arena by liveness (`peakActivationBytes`).
/// - **Run**: executes the steps over the arena; the only allocation is the returned tensor. A batch of several images
///   on several threads runs either with every operator split over the threads, or as one sub-batch per thread with
///   its own plan (`InferenceOptions.BatchParallelism`); by default the first runs of a shape time both and the
///   faster is kept.
///
/// Runs are serialized by a lock (one arena per plan). Input and output shapes are ONNX's logical NCHW.
public final class InferenceEngine: @unchecked Sendable {
    let graph: CompiledGraph
    public let options: InferenceOptions
    private var plans: [[Int]: Plan] = [:]
    private let lock = NSLock()
    /// Sub-batch plans: one per (shape of the whole batch, thread).
    private var replicas: [[Int]: [Plan]] = [:]
    /// How each whole-batch shape runs once decided, and the timings of the trial runs before.
    private var chosen: [[Int]: Bool] = [:]
    private var trials: [[Int]: [(split: Bool, seconds: Double)]] = [:]
    private var lastPeak = 0
    private var lastWay: [[Int]: Bool] = [:]

    /// How the last run of an input shape (NCHW) shared its threads: `.acrossImages` (one sub-batch per thread) or
    /// `.withinOperators`; nil before any run of that shape. With `.automatic` the first four runs try both ways.
    public func batchParallelismUsed(forInputShape shape: [Int]) -> InferenceOptions.BatchParallelism? {
        lock.lock(); defer { lock.unlock() }
        return lastWay[shape].map { $0 ? .acrossImages : .withinOperators }
    }

    /// Activation memory (arena bytes, inputs and outputs included) of the last run's plan — of all its sub-batch
    /// plans together when the batch ran split across threads; 0 before any plan.
    public var peakActivationBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return lastPeak
    }

    public init(graph: Graph, options: InferenceOptions = .init()) throws {
        self.graph = try GraphCompiler.compile(graph)
        self.options = options
    }

    /// Plans for an NCHW input shape ahead of time (throws if the graph cannot run on it).
    public func prepare(inputShape: [Int]) throws {
        lock.lock(); defer { lock.unlock() }
        if let t = options.threads { WorkerPool.shared.threadCount = t }
        _ = try plan(for: inputShape)
    }

    private func plan(for shape: [Int]) throws -> Plan {
        if let p = plans[shape] { lastPeak = p.peakActivationBytes; return p }
        guard shape.allSatisfy({ $0 > 0 }) else { throw GraphError("input shape \(shape) has a non-positive dimension", opset: graph.opset) }
        if let dims = graph.inputDims {
            guard dims.count == shape.count else {
                throw GraphError("input '\(graph.inputName)' has rank \(dims.count) (\(dims)), got shape \(shape)", opset: graph.opset)
            }
            for (d, s) in zip(dims, shape) {
                if let v = d.value, v > 0, v != s {
                    throw GraphError("input '\(graph.inputName)' expects shape \(dims), got \(shape)", opset: graph.opset)
                }
            }
        }
        let p = try PlanBuilder(graph: graph).build(inputShape: shape)
        plans[shape] = p
        lastPeak = p.peakActivationBytes
        return p
    }

    /// The sub-batches (ranges of images) to run on separate threads for a whole-batch `shape`, or nil to run it as
    /// one plan. Decides on the first runs of a shape (`automatic`): one warm-up run each way, then one timed run
    /// each way; splitting is kept when it is at least 3 % faster, and the other way's plans are released.
    private func batchParts(for shape: [Int], whole: Plan) throws -> [Range<Int>]? {
        let threads = WorkerPool.shared.threadCount
        guard options.batchParallelism != .withinOperators, whole.batchSplittable, shape[0] >= 2, threads >= 2 else { return nil }
        if let decided = chosen[shape], options.batchParallelism == .automatic { return decided ? parts(shape[0], threads) : nil }
        if options.batchParallelism == .acrossImages { return parts(shape[0], threads) }
        let done = trials[shape, default: []]
        // Runs 0, 2: whole; 1, 3: split. Runs 0 and 1 warm up; 2 and 3 are compared.
        return done.count % 2 == 1 ? parts(shape[0], threads) : nil
    }

    private func parts(_ batch: Int, _ threads: Int) -> [Range<Int>] {
        let t = min(threads, batch)
        return (0..<t).map { batch * $0 / t ..< batch * ($0 + 1) / t }
    }

    /// Records a trial run of `shape` and decides once both ways have a timed run.
    private func recordTrial(_ shape: [Int], split: Bool, seconds: Double) {
        guard options.batchParallelism == .automatic, chosen[shape] == nil else { return }
        trials[shape, default: []].append((split, seconds))
        let runs = trials[shape]!
        guard runs.count >= 4 else { return }
        let whole = runs[2].seconds, across = runs[3].seconds
        let useSplit = across < whole * 0.97
        chosen[shape] = useSplit
        trials[shape] = nil
        if useSplit {
            plans[shape] = nil
        } else {
            replicas[shape] = nil
        }
    }

    /// Plans for the sub-batches of `shape`: one per part, built on first use (weights are packed once, shared).
    private func replicaPlans(for shape: [Int], parts: [Range<Int>]) throws -> [Plan] {
        if let existing = replicas[shape], existing.count == parts.count { return existing }
        let made = try parts.map { part -> Plan in
            var s = shape
            s[0] = part.count
            return try PlanBuilder(graph: graph).build(inputShape: s)
        }
        replicas[shape] = made
        return made
    }

    /// Runs on an NCHW input (`[N, C, H, W]` row-major whatever `layout` says; other ranks as given). Returns the
    /// first graph output in ONNX logical order: NCHW (layout `.nchw`) for 4-D, plain otherwise.
    public func run(_ input: Tensor) throws -> Tensor {
        try execute(input, inputIsNHWC: false, outputNHWC: false)
    }

    /// Runs on an NHWC input `[N, H, W, C]` without a layout copy; 4-D outputs come back NHWC, others plain.
    public func runNHWC(_ input: Tensor) throws -> Tensor {
        precondition(input.rank == 4, "runNHWC needs a 4-D NHWC tensor, got \(input.shape)")
        return try execute(input, inputIsNHWC: true, outputNHWC: true)
    }

    /// Time spent in one planned step, from `profile`.
    public struct StepTime: Sendable, Codable {
        /// Position in execution order.
        public var index: Int
        /// The ONNX operator the step runs (fused activations ride along with their Conv), or a layout copy
        /// (`NCHW→NHWC`, `NHWC→NCHW`).
        public var op: String
        /// The node's name in the graph.
        public var node: String
        /// Median wall time over the profiled runs, in milliseconds.
        public var milliseconds: Double
        /// Median CPU time of the calling thread, in milliseconds: the step's whole cost at one thread, and a measure
        /// that a busy machine disturbs far less than wall time.
        public var cpuMilliseconds: Double

        enum CodingKeys: String, CodingKey {
            case index, op, node, milliseconds
            case cpuMilliseconds = "cpu_milliseconds"
        }
    }

    /// Runs `input` (NCHW) `runs` times with a clock around every step and returns each step's median time, in
    /// execution order (ONNX Runtime's `enable_profiling`, without the trace file). The sum is close to, and slightly
    /// above, a plain run's latency (the clock reads add about 50 ns per step).
    public func profile(_ input: Tensor, runs: Int = 10) throws -> [StepTime] {
        precondition(runs >= 1, "profile: runs must be at least 1")
        var samples: [[Double]] = [], cpuSamples: [[Double]] = []
        _ = try execute(input, inputIsNHWC: false, outputNHWC: false) { plan in
            samples = Array(repeating: [], count: plan.steps.count)
            cpuSamples = samples
        }
        func threadCPUNanoseconds() -> Double {
            var t = timespec()
            clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t)
            return Double(t.tv_sec) * 1e9 + Double(t.tv_nsec)
        }
        var labels: [(op: String, node: String)] = []
        for _ in 0..<runs {
            _ = try execute(input, inputIsNHWC: false, outputNHWC: false) { plan in
                labels = plan.stepLabels
                for (i, step) in plan.steps.enumerated() {
                    let c0 = threadCPUNanoseconds(), t0 = DispatchTime.now().uptimeNanoseconds
                    step()
                    samples[i].append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                    cpuSamples[i].append((threadCPUNanoseconds() - c0) / 1e6)
                }
            }
        }
        func median(_ v: [Double]) -> Double { v.sorted()[v.count / 2] }
        return samples.indices.map { i in
            StepTime(index: i, op: labels[i].op, node: labels[i].node, milliseconds: median(samples[i]),
                     cpuMilliseconds: median(cpuSamples[i]))
        }
    }

    private func execute(_ input: Tensor, inputIsNHWC: Bool, outputNHWC: Bool,
                         steps runSteps: ((Plan) -> Void)? = nil) throws -> Tensor {
        lock.lock(); defer { lock.unlock() }
        if let t = options.threads { WorkerPool.shared.threadCount = t }
        let s = input.shape
        let logical = inputIsNHWC ? [s[0], s[3], s[1], s[2]] : s
        // A shape decided for sub-batches keeps no whole-batch plan.
        if runSteps == nil, chosen[logical] == true, options.batchParallelism == .automatic {
            return try executeSplit(input, logical: logical, parts: parts(logical[0], WorkerPool.shared.threadCount),
                                    inputIsNHWC: inputIsNHWC, outputNHWC: outputNHWC)
        }
        let plan = try plan(for: logical)
        if runSteps == nil, let split = try batchParts(for: logical, whole: plan) {
            let start = DispatchTime.now().uptimeNanoseconds
            let result = try executeSplit(input, logical: logical, parts: split, inputIsNHWC: inputIsNHWC, outputNHWC: outputNHWC)
            recordTrial(logical, split: true, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            return result
        }
        let start = DispatchTime.now().uptimeNanoseconds
        input.scalars.withUnsafeBufferPointer {
            Self.load($0, images: 0..<logical[0], logical: logical, into: plan, inputIsNHWC: inputIsNHWC)
        }
        if let runSteps { runSteps(plan) } else { for step in plan.steps { step() } }
        lastPeak = plan.peakActivationBytes
        lastWay[logical] = false
        let result = Self.output(plan.outputs[0], plan: plan, nhwc: outputNHWC)
        if runSteps == nil, plan.batchSplittable, logical[0] >= 2, WorkerPool.shared.threadCount >= 2 {
            recordTrial(logical, split: false, seconds: Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
        }
        return result
    }

    /// Runs each part of the batch on its own thread with its own plan, and joins the outputs along axis 0.
    private func executeSplit(_ input: Tensor, logical: [Int], parts: [Range<Int>], inputIsNHWC: Bool,
                              outputNHWC: Bool) throws -> Tensor {
        let plans = try replicaPlans(for: logical, parts: parts)
        lastPeak = plans.reduce(0) { $0 + $1.peakActivationBytes }
        lastWay[logical] = true
        let outputs = UnsafeMutableBufferPointer<Tensor>.allocate(capacity: parts.count)
        outputs.initialize(repeating: Tensor(shape: [0]))
        defer { outputs.deinitialize(); outputs.deallocate() }
        input.scalars.withUnsafeBufferPointer { scalars in
            WorkerPool.shared.parallelFor(parts.count) { t in
                let plan = plans[t]
                Self.load(scalars, images: parts[t], logical: logical, into: plan, inputIsNHWC: inputIsNHWC)
                // Kernels called from inside this loop find the pool busy and run on this thread alone.
                for step in plan.steps { step() }
                outputs[t] = Self.output(plan.outputs[0], plan: plan, nhwc: outputNHWC)
            }
        }
        let first = outputs[0]
        guard first.rank >= 1 else { return first }
        var shape = first.shape
        shape[0] = outputs.reduce(0) { $0 + $1.shape[0] }
        var joined: [Float] = []
        joined.reserveCapacity(shape.reduce(1, *))
        for part in outputs { joined += part.scalars }
        return Tensor(shape: shape, scalars: joined, layout: first.layout)
    }

    /// Copies images `images` of the whole input (`logical` NCHW shape of the whole batch) into `plan`'s input.
    private static func load(_ source: UnsafeBufferPointer<Float>, images: Range<Int>, logical: [Int], into plan: Plan,
                             inputIsNHWC: Bool) {
        let inAct = plan.input!
        let dst = plan.frame[inAct.slot]
        let perImage = logical.dropFirst().reduce(1, *)
        let p = source.baseAddress! + images.lowerBound * perImage
        if inAct.nhwc == inputIsNHWC || !(inAct.shape.count == 4) || inAct.layoutFree {
            dst.update(from: p, count: inAct.count)
        } else if inputIsNHWC {
            let (n, c, h, w) = (images.count, logical[1], logical[2], logical[3])
            stridedCopy(dims: [n, c, h, w], src: p, srcStrides: [h * w * c, 1, w * c, c], dst: dst, dstStrides: [c * h * w, h * w, w, 1])
        } else {
            let (n, c, h, w) = (images.count, logical[1], logical[2], logical[3])
            stridedCopy(dims: [n, h, w, c], src: p, srcStrides: [c * h * w, w, 1, h * w], dst: dst, dstStrides: [h * w * c, w * c, c, 1])
        }
    }

    private static func output(_ v: PlanValue, plan: Plan, nhwc: Bool) -> Tensor {
        switch v {
        case let .constant(c):
            return Tensor(shape: c.shape, scalars: c.floats, layout: c.shape.count == 4 ? .nchw : .plain)
        case .shuffle: preconditionFailure("unresolved channel shuffle at the output")
        case let .activation(a):
            let src = UnsafePointer(plan.frame[a.slot])
            if a.shape.count != 4 {
                return Tensor(shape: a.shape, scalars: Array(UnsafeBufferPointer(start: src, count: a.count)), layout: .plain)
            }
            let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
            let ls = a.logicalStrides
            if nhwc {
                return Tensor(shape: [n, h, w, c], layout: .nhwc) { out in
                    stridedCopy(dims: [n, h, w, c], src: src, srcStrides: [ls[0], ls[2], ls[3], ls[1]], dst: out.baseAddress!,
                                dstStrides: [h * w * c, w * c, c, 1])
                }
            }
            return Tensor(shape: a.shape, layout: .nchw) { out in
                stridedCopy(dims: a.shape, src: src, srcStrides: ls, dst: out.baseAddress!, dstStrides: contiguousStrides(a.shape))
            }
        }
    }
}
