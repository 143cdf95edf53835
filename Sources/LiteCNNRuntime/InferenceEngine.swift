import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// Options of an `InferenceEngine`.
public struct InferenceOptions: Sendable {
    /// How a batch of several images is run.
    public enum BatchSplitting: String, Sendable, Equatable, CaseIterable {
        /// Time the ways below on the first runs of each input shape and keep the fastest (the default).
        case automatic
        /// One plan for the whole batch; every operator splits its own work over the threads.
        case never
        /// Cut the batch into one contiguous share per thread (a *lane*: its own plan and arena, single-threaded
        /// kernels, no synchronization between layers), each lane running its share one image at a time, so that its
        /// activations stay in cache. With one thread this runs the images one after another. Needs a graph whose
        /// operators keep the images apart; other graphs run whole.
        case perImage
        /// Like `perImage`, but each lane runs its whole share as one sub-batch (bigger GEMMs, weights read once per
        /// lane). With one thread this is the same as `never`.
        case perThread
    }

    /// Threads for every run (sets `WorkerPool.shared.threadCount` before running); nil keeps the pool's setting.
    public var threads: Int?
    /// How a batch of several images is run (`BatchSplitting`).
    public var batchSplitting: BatchSplitting
    public init(threads: Int? = nil, batchSplitting: BatchSplitting = .automatic) {
        self.threads = threads
        self.batchSplitting = batchSplitting
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
/// - **Run**: executes the steps over the arena; the only allocation is the returned tensor. A batch of several
///   images may instead be cut into sub-batches run by separate plans, one lane per thread
///   (`InferenceOptions.BatchSplitting`): a batch whose activations outgrow the caches then keeps each lane's working
///   set in cache and needs no synchronization between layers. By default the first runs of each input shape time
///   the candidate ways (whole batch, per image, per thread) and keep the fastest; every way gives the same output.
///
/// Runs are serialized by a lock (one arena per plan). Input and output shapes are ONNX's logical NCHW.
///
/// **Switchable graphs.** A graph may hold alternatives: nodes tagged with the attribute `litecnn_alternative =
/// [group, alternative]` run only when `selection[group] == alternative`, and a `Select` node of domain `ai.litecnn`
/// (attribute `group`) passes on its input number `selection[group]`. Every alternative is compiled, packed and planned
/// once; `select(_:)` changes the selection in microseconds without replanning, and a run reads the selection once
/// when it starts, so a run never mixes two selections.
public final class InferenceEngine: @unchecked Sendable {
    let graph: CompiledGraph
    public let options: InferenceOptions
    private var plans: [[Int]: Plan] = [:]
    /// Lane plans: for a sub-batch shape, one plan (and arena) per lane.
    private var lanePlans: [[Int]: [Plan]] = [:]
    /// Per whole-batch input shape: the way chosen, or the trial timings gathered so far (`.automatic`).
    private var chosenWay: [[Int]: InferenceOptions.BatchSplitting] = [:]
    private var trials: [[Int]: [InferenceOptions.BatchSplitting: Double]] = [:]
    private var trialRuns: [[Int]: Int] = [:]
    /// Per whole-batch shape: whether its plan keeps the images apart and ends in one batch-major activation.
    private var splittable: [[Int]: Bool] = [:]
    private let lock = NSLock()
    private var lastPeakBytes = 0
    private let selectionLock = NSLock()
    private var currentSelection: [Int]

    /// How many alternatives each group of a switchable graph has (empty for an ordinary graph).
    public var alternativeCounts: [Int] { graph.alternativeCounts }

    /// The alternative each group runs (all 0 initially). Reading it does not wait for a running inference.
    public var selection: [Int] {
        selectionLock.lock(); defer { selectionLock.unlock() }
        return currentSelection
    }

    /// Chooses the alternative of every group for the runs that start from now on. Runs already started finish with
    /// the selection they began with. Throws when `selection` does not name one alternative per group.
    public func select(_ selection: [Int]) throws {
        let counts = graph.alternativeCounts
        guard selection.count == counts.count else {
            throw GraphError("the selection has \(selection.count) entries, the graph has \(counts.count) groups of alternatives", opset: graph.opset)
        }
        for (g, (choice, n)) in zip(selection, counts).enumerated() where choice < 0 || choice >= n {
            throw GraphError("group \(g) has alternatives 0..<\(n), the selection asks for \(choice)", opset: graph.opset)
        }
        selectionLock.lock(); defer { selectionLock.unlock() }
        currentSelection = selection
    }

    /// Activation memory (arena bytes, inputs and outputs included) of the last planned shape; 0 before any plan.
    public var peakActivationBytes: Int {
        lock.lock(); defer { lock.unlock() }
        return lastPeakBytes
    }

    /// How the runs of an NCHW input shape are executed: the way chosen (`.never`, `.perImage` or `.perThread`), or
    /// `.automatic` while the first runs are still timing the candidates. Batch 1, one-way graphs and graphs whose
    /// operators mix images always say `.never`.
    public func batchSplitting(forInputShape shape: [Int]) -> InferenceOptions.BatchSplitting {
        lock.lock(); defer { lock.unlock() }
        if let way = chosenWay[shape] { return way }
        let ways = candidateWays(shape, threads: options.threads ?? WorkerPool.shared.threadCount)
        return ways.count == 1 ? ways[0] : .automatic
    }

    public init(graph: Graph, options: InferenceOptions = .init()) throws {
        self.graph = try GraphCompiler.compile(graph)
        self.options = options
        self.currentSelection = Array(repeating: 0, count: self.graph.alternativeCounts.count)
    }

    /// Plans for an NCHW input shape ahead of time (throws if the graph cannot run on it).
    public func prepare(inputShape: [Int]) throws {
        lock.lock(); defer { lock.unlock() }
        if let t = options.threads { WorkerPool.shared.threadCount = t }
        _ = try plan(for: inputShape)
    }

    private func plan(for shape: [Int]) throws -> Plan {
        if let p = plans[shape] { lastPeakBytes = p.peakActivationBytes; return p }
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
        if case let .activation(out)? = p.outputs.first, out.shape.first == shape.first {
            splittable[shape] = p.batchSplittable
        } else {
            splittable[shape] = false
        }
        lastPeakBytes = p.peakActivationBytes
        return p
    }

    /// The ways worth trying for a whole-batch shape, `.never` first. A single way means there is nothing to choose.
    private func candidateWays(_ shape: [Int], threads: Int) -> [InferenceOptions.BatchSplitting] {
        let batch = shape.first ?? 1
        guard batch >= 2, shape.count >= 2, splittable[shape] == true else { return [.never] }
        let lanes = min(max(1, threads), batch)
        var ways: [InferenceOptions.BatchSplitting] = [.never, .perImage]
        if lanes > 1 && batch > lanes { ways.append(.perThread) }
        switch options.batchSplitting {
        case .automatic: return ways
        case .never: return [.never]
        case .perImage: return [.perImage]
        case .perThread: return lanes > 1 ? [.perThread] : [.never]
        }
    }

    /// Lanes (one per thread) for a whole-batch `shape`.
    private func laneCount(_ shape: [Int]) -> Int { min(max(1, WorkerPool.shared.threadCount), shape[0]) }

    /// The sub-batch sizes `way` plans for a whole-batch `shape` (per thread, shares differ by at most one image).
    private func subBatchSizes(_ way: InferenceOptions.BatchSplitting, _ shape: [Int]) -> Set<Int> {
        let (batch, lanes) = (shape[0], laneCount(shape))
        switch way {
        case .never, .automatic: return []
        case .perImage: return [1]
        case .perThread: return [batch / lanes, (batch + lanes - 1) / lanes]
        }
    }

    /// The lane plans for sub-batches of `size` images of a whole-batch `shape`, `lanes` of them.
    private func lanePlans(_ shape: [Int], size: Int, lanes: Int) throws -> [Plan] {
        var sub = shape
        sub[0] = size
        var list = lanePlans[sub] ?? []
        while list.count < lanes { list.append(try PlanBuilder(graph: graph).build(inputShape: sub)) }
        lanePlans[sub] = list
        return list
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
                    if !plan.runs(step: i) { samples[i].append(0); cpuSamples[i].append(0); continue }
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
        let selection = self.selection
        if runSteps == nil {
            // The whole-batch plan tells whether the graph can be split; a shape that runs split may drop it later.
            if splittable[logical] == nil { _ = try plan(for: logical) }
            let way = wayToRun(logical)
            if way != .never {
                let start = DispatchTime.now().uptimeNanoseconds
                let result = try executeSplit(input, logical: logical, way: way, inputIsNHWC: inputIsNHWC,
                                              outputNHWC: outputNHWC, selection: selection)
                record(logical, way: way, nanoseconds: DispatchTime.now().uptimeNanoseconds - start)
                return result
            }
        }
        let plan = try plan(for: logical)
        let start = DispatchTime.now().uptimeNanoseconds
        input.scalars.withUnsafeBufferPointer { load($0.baseAddress!, shape: logical, nhwc: inputIsNHWC, into: plan) }
        plan.frame.selection = selection
        if let runSteps { runSteps(plan) } else { Self.runSteps(plan) }
        let result = output(plan.outputs[0], plan: plan, nhwc: outputNHWC)
        if runSteps == nil { record(logical, way: .never, nanoseconds: DispatchTime.now().uptimeNanoseconds - start) }
        return result
    }

    private static let trialsPerWay = 2

    /// The way the next run of `shape` takes: the chosen one, or during the trials each candidate in turn,
    /// `trialsPerWay` runs each (the first run of a shape is a trial too).
    private func wayToRun(_ shape: [Int]) -> InferenceOptions.BatchSplitting {
        if let way = chosenWay[shape] { return way }
        let ways = candidateWays(shape, threads: WorkerPool.shared.threadCount)
        if ways.count == 1 { chosenWay[shape] = ways[0]; return ways[0] }
        return ways[min(ways.count - 1, (trialRuns[shape] ?? 0) / Self.trialsPerWay)]
    }

    /// Records a timed run. Once a candidate has had its `trialsPerWay` runs its plans are freed (unless it is the
    /// last one), so that the trials never hold two ways' arenas at once; after the last candidate the fastest (best
    /// time each) is kept for good and its plans are rebuilt if they were freed.
    private func record(_ shape: [Int], way: InferenceOptions.BatchSplitting, nanoseconds: UInt64) {
        guard chosenWay[shape] == nil else { return }
        let ways = candidateWays(shape, threads: WorkerPool.shared.threadCount)
        guard ways.count > 1 else { return }
        trials[shape, default: [:]][way] = min(trials[shape]?[way] ?? .infinity, Double(nanoseconds) / 1e9)
        let runs = (trialRuns[shape] ?? 0) + 1
        trialRuns[shape] = runs
        guard runs % Self.trialsPerWay == 0 else { return }
        if runs < ways.count * Self.trialsPerWay {
            release(way, of: shape)
            return
        }
        let timed = trials[shape] ?? [:]
        let best = ways.min { (timed[$0] ?? .infinity) < (timed[$1] ?? .infinity) } ?? .never
        chosenWay[shape] = best
        trials[shape] = nil
        trialRuns[shape] = nil
        if best != way {
            release(way, of: shape)
            if best == .never { _ = try? plan(for: shape) }
            for size in subBatchSizes(best, shape) { _ = try? lanePlans(shape, size: size, lanes: laneCount(shape)) }
        }
        if best != .never { plans[shape] = nil }
    }

    /// Frees the plans (and arenas) that `way` uses for the whole-batch `shape`; they are rebuilt if needed again.
    private func release(_ way: InferenceOptions.BatchSplitting, of shape: [Int]) {
        if way == .never { plans[shape] = nil }
        for size in subBatchSizes(way, shape) {
            var sub = shape
            sub[0] = size
            lanePlans[sub] = nil
        }
    }

    /// Runs a batch as sub-batches: `lanes` contiguous shares of the images, one per thread, each run by its lane's
    /// own plans (per image, or as one sub-batch) with the kernels' own splitting turned off by the pool (a nested
    /// `parallelFor` runs serially on its caller).
    private func executeSplit(_ input: Tensor, logical: [Int], way: InferenceOptions.BatchSplitting, inputIsNHWC: Bool,
                              outputNHWC: Bool, selection: [Int]) throws -> Tensor {
        let batch = logical[0]
        let lanes = laneCount(logical)
        let images = (0..<lanes).map { (batch * $0 / lanes)..<(batch * ($0 + 1) / lanes) }
        // Plans first (on this thread): per image one size; per thread at most two sizes (shares differ by one).
        var sizes: [Int: [Plan]] = [:]
        for size in subBatchSizes(way, logical) where size > 0 {
            sizes[size] = try lanePlans(logical, size: size, lanes: lanes)
        }
        let plansBySize = sizes
        lastPeakBytes = plansBySize.values.reduce(0) { $0 + $1.reduce(0) { $0 + $1.peakActivationBytes } }
        let imageInputCount = logical.dropFirst().reduce(1, *)
        guard let first = plansBySize.values.first?.first, case let .activation(outAct)? = first.outputs.first else {
            preconditionFailure("split plan without an activation output")
        }
        let outSize = outAct.shape[0]
        let imageOutputCount = outAct.count / max(1, outSize)
        var outShape = outAct.shape
        outShape[0] = batch
        let rank4 = outShape.count == 4
        let resultShape = rank4 && outputNHWC ? [batch, outShape[2], outShape[3], outShape[1]] : outShape
        let layout: Tensor.Layout = rank4 ? (outputNHWC ? .nhwc : .nchw) : .plain
        var result = [Float](repeating: 0, count: batch * imageOutputCount)
        result.withUnsafeMutableBufferPointer { out in
            input.scalars.withUnsafeBufferPointer { src in
                let (inBase, outBase) = (src.baseAddress!, out.baseAddress!)
                WorkerPool.shared.parallelFor(lanes) { lane in
                    var n = images[lane].lowerBound
                    while n < images[lane].upperBound {
                        let size = way == .perImage ? 1 : images[lane].count
                        let plan = plansBySize[size]![lane]
                        var shape = logical
                        shape[0] = size
                        self.load(inBase + n * imageInputCount, shape: shape, nhwc: inputIsNHWC, into: plan)
                        plan.frame.selection = selection
                        Self.runSteps(plan)
                        if case let .activation(a)? = plan.outputs.first {
                            Self.store(a, plan: plan, nhwc: outputNHWC, into: outBase + n * imageOutputCount)
                        }
                        n += size
                    }
                }
            }
        }
        return Tensor(shape: resultShape, scalars: result, layout: layout)
    }

    private static func runSteps(_ plan: Plan) {
        if plan.hasAlternatives {
            for (i, step) in plan.steps.enumerated() where plan.runs(step: i) { step() }
        } else {
            for step in plan.steps { step() }
        }
    }

    /// Copies an input of logical shape `shape` (NCHW, or NHWC when `nhwc`) into `plan`'s input buffer and layout.
    private func load(_ p: UnsafePointer<Float>, shape logical: [Int], nhwc inputIsNHWC: Bool, into plan: Plan) {
        let inAct = plan.input!
        let dst = plan.frame[inAct.slot]
        if inAct.nhwc == inputIsNHWC || !(inAct.shape.count == 4) || inAct.layoutFree {
            dst.update(from: p, count: inAct.count)
        } else {
            let (n, c, hw) = (logical[0], logical[1], logical[2] * logical[3])
            // NHWC → NCHW transposes each image's [H·W, C] matrix; NCHW → NHWC its [C, H·W] matrix.
            let (rows, cols) = inputIsNHWC ? (hw, c) : (c, hw)
            Self.transposeImages(n, rows: rows, cols: cols, src: p, imageStride: c * hw, lds: cols, dst: dst, ldd: rows)
        }
    }

    /// `images` matrices `[rows, cols]` (row stride `lds`, `imageStride` floats apart) transposed into contiguous
    /// `[cols, rows]` matrices (row stride `ldd`): the NCHW ↔ NHWC conversion at a plan's input and outputs.
    ///
    /// Large images are also split along their pixels (the longer side: `cols` of an NCHW input's `[C, H·W]`, `rows`
    /// of an NHWC activation's `[H·W, C]`) into one part per thread, so that each thread converts the pixels the
    /// first layer's rows on that thread read (a 224×224 input converted on one thread left half of the stem's
    /// input in the other core's cache).
    private static func transposeImages(_ images: Int, rows: Int, cols: Int, src: UnsafePointer<Float>, imageStride: Int,
                                        lds: Int, dst: UnsafeMutablePointer<Float>, ldd: Int) {
        let threads = WorkerPool.shared.threadCount
        let parts = rows * cols >= 16_384 ? max(1, threads / max(1, images)) : 1
        let body = { (item: Int) in
            let (i, part) = (item / parts, item % parts)
            let (s, d) = (src + i * imageStride, dst + i * rows * cols)
            if cols >= rows {
                let (j0, j1) = (cols * part / parts, cols * (part + 1) / parts)
                Kernels.transpose(src: s + j0, rows: rows, cols: j1 - j0, srcRowStride: lds, dst: d + j0 * ldd,
                                  dstRowStride: ldd)
            } else {
                let (i0, i1) = (rows * part / parts, rows * (part + 1) / parts)
                Kernels.transpose(src: s + i0 * lds, rows: i1 - i0, cols: cols, srcRowStride: lds, dst: d + i0,
                                  dstRowStride: ldd)
            }
        }
        if images * parts > 1 && rows * cols >= 16_384 {
            WorkerPool.shared.parallelFor(images * parts, body)
        } else {
            (0..<(images * parts)).forEach(body)
        }
    }

    /// Copies activation `a` of `plan` out in ONNX logical order (NCHW, or NHWC when `nhwc`, for 4-D; plain
    /// otherwise) to `out`, which holds `a.count` floats.
    private static func store(_ a: Activation, plan: Plan, nhwc: Bool, into out: UnsafeMutablePointer<Float>) {
        let src = UnsafePointer(plan.frame[a.slot])
        if a.shape.count != 4 { out.update(from: src, count: a.count); return }
        let (n, c, h, w) = (a.shape[0], a.shape[1], a.shape[2], a.shape[3])
        let ls = a.logicalStrides
        if ls[2] == w * ls[3] && (ls[1] == 1 || ls[3] == 1) && nhwc == (ls[1] != 1) {
            // Channels-last data to NCHW, or channel planes to NHWC: one transpose per image.
            let (rows, cols) = ls[1] == 1 ? (h * w, c) : (c, h * w)
            transposeImages(n, rows: rows, cols: cols, src: src, imageStride: ls[0], lds: ls[1] == 1 ? ls[3] : ls[1],
                            dst: out, ldd: rows)
            return
        }
        if nhwc {
            stridedCopy(dims: [n, h, w, c], src: src, srcStrides: [ls[0], ls[2], ls[3], ls[1]], dst: out,
                        dstStrides: [h * w * c, w * c, c, 1])
        } else {
            stridedCopy(dims: a.shape, src: src, srcStrides: ls, dst: out, dstStrides: contiguousStrides(a.shape))
        }
    }

    private func output(_ v: PlanValue, plan: Plan, nhwc: Bool) -> Tensor {
        switch v {
        case let .constant(c):
            return Tensor(shape: c.shape, scalars: c.floats, layout: c.shape.count == 4 ? .nchw : .plain)
        case .shuffle: preconditionFailure("unresolved channel shuffle at the output")
        case let .activation(a):
            let shape = a.shape.count == 4 && nhwc ? [a.shape[0], a.shape[2], a.shape[3], a.shape[1]] : a.shape
            let layout: Tensor.Layout = a.shape.count == 4 ? (nhwc ? .nhwc : .nchw) : .plain
            return Tensor(shape: shape, layout: layout) { out in Self.store(a, plan: plan, nhwc: nhwc, into: out.baseAddress!) }
        }
    }
}

extension Plan {
    /// Whether step `i` runs under the frame's selection (steps outside any alternative always run).
    @inline(__always) func runs(step i: Int) -> Bool {
        let g = stepGroups[i]
        return g < 0 || frame.selection[g] == stepAlternatives[i]
    }
}
