import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// Options of an `InferenceEngine`.
public struct InferenceOptions: Sendable {
    /// Threads for every run (sets `WorkerPool.shared.threadCount` before running); nil keeps the pool's setting.
    public var threads: Int?
    public init(threads: Int? = nil) { self.threads = threads }
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
/// - **Run**: executes the steps over the arena; the only allocation is the returned tensor.
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
    private let lock = NSLock()
    private var lastPlan: Plan?
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
        return lastPlan?.peakActivationBytes ?? 0
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
        if let p = plans[shape] { lastPlan = p; return p }
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
        lastPlan = p
        return p
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
        let plan = try plan(for: logical)
        let inAct = plan.input!
        let dst = plan.frame[inAct.slot]
        input.scalars.withUnsafeBufferPointer { src in
            let p = src.baseAddress!
            if inAct.nhwc == inputIsNHWC || !(inAct.shape.count == 4) || inAct.layoutFree {
                dst.update(from: p, count: inAct.count)
            } else if inputIsNHWC {
                let (n, c, h, w) = (logical[0], logical[1], logical[2], logical[3])
                stridedCopy(dims: [n, c, h, w], src: p, srcStrides: [h * w * c, 1, w * c, c], dst: dst, dstStrides: [c * h * w, h * w, w, 1])
            } else {
                let (n, c, h, w) = (logical[0], logical[1], logical[2], logical[3])
                stridedCopy(dims: [n, h, w, c], src: p, srcStrides: [c * h * w, w, 1, h * w], dst: dst, dstStrides: [h * w * c, w * c, c, 1])
            }
        }
        plan.frame.selection = selection
        if let runSteps { runSteps(plan) } else if plan.hasAlternatives {
            for (i, step) in plan.steps.enumerated() where plan.runs(step: i) { step() }
        } else {
            for step in plan.steps { step() }
        }
        return output(plan.outputs[0], plan: plan, nhwc: outputNHWC)
    }

    private func output(_ v: PlanValue, plan: Plan, nhwc: Bool) -> Tensor {
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

extension Plan {
    /// Whether step `i` runs under the frame's selection (steps outside any alternative always run).
    @inline(__always) func runs(step i: Int) -> Bool {
        let g = stepGroups[i]
        return g < 0 || frame.selection[g] == stepAlternatives[i]
    }
}
