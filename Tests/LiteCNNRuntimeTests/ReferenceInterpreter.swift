import Foundation
import LiteCNNGraph
import LiteCNNTensor

/// A deliberately naive interpreter of a `Graph` in ONNX's logical NCHW order (straight loops, Double accumulation),
/// the oracle the engine is checked against. Supports the operators the tests build.
struct ReferenceInterpreter {
    struct Value { var shape: [Int]; var data: [Double] }
    let graph: Graph

    enum Failure: Error { case unsupported(String) }

    func run(_ input: Tensor) throws -> Value {
        var env: [String: Value] = [:]
        for (k, c) in graph.initializers { env[k] = value(c) }
        let inName = graph.inputs.first { graph.initializers[$0.name] == nil }!.name
        env[inName] = Value(shape: input.shape, data: input.scalars.map(Double.init))
        let opset = graph.opsetVersion
        for n in graph.nodes {
            let ins = n.inputs.map { $0.isEmpty ? nil : env[$0] }
            let outs = try eval(n, ins, opset: opset)
            for (o, v) in zip(n.outputs, outs) where !o.isEmpty { env[o] = v }
        }
        return env[graph.outputs[0].name]!
    }

    func value(_ c: Constant) -> Value {
        switch c {
        case let .float(t): return Value(shape: t.shape, data: t.scalars.map(Double.init))
        case let .int(v, s): return Value(shape: s, data: v.map(Double.init))
        }
    }

    static func strides(_ s: [Int]) -> [Int] {
        var r = [Int](repeating: 1, count: s.count)
        var acc = 1
        for i in stride(from: s.count - 1, through: 0, by: -1) { r[i] = acc; acc *= s[i] }
        return r
    }

    /// Calls body with every multi-index of `shape`.
    static func forEach(_ shape: [Int], _ body: ([Int]) -> Void) {
        let n = shape.reduce(1, *)
        if n == 0 { return }
        var idx = [Int](repeating: 0, count: shape.count)
        for _ in 0..<n {
            body(idx)
            var d = shape.count - 1
            while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
        }
    }

    func at(_ v: Value, _ idx: [Int]) -> Double {
        // Broadcast read: right-aligned, size-1 dims read index 0.
        let off = idx.count - v.shape.count
        var flat = 0
        for i in 0..<v.shape.count { flat = flat * v.shape[i] + (v.shape[i] == 1 ? 0 : idx[i + off]) }
        return v.data[flat]
    }

    func eval(_ n: Node, _ ins: [Value?], opset: Int) throws -> [Value] {
        let x = ins.first ?? nil
        func unary(_ f: (Double) -> Double) -> [Value] { [Value(shape: x!.shape, data: x!.data.map(f))] }
        switch n.opType {
        case "Identity", "Dropout": return [x!]
        case "Constant":
            if case let .tensor(c)? = n.attributes["value"] { return [value(c)] }
            throw Failure.unsupported("Constant")
        case "Relu": return unary { max($0, 0) }
        case "Sigmoid": return unary { 1 / (1 + exp(-$0)) }
        case "HardSigmoid":
            let a = Double(n.float("alpha") ?? 0.2), b = Double(n.float("beta") ?? 0.5)
            return unary { min(max(a * $0 + b, 0), 1) }
        case "HardSwish": return unary { $0 * min(max($0 / 6 + 0.5, 0), 1) }
        case "Clip":
            let lo = ins.count > 1 ? ins[1]?.data[0] ?? -.infinity : Double(n.float("min") ?? -.infinity)
            let hi = ins.count > 2 ? ins[2]?.data[0] ?? .infinity : Double(n.float("max") ?? .infinity)
            return unary { min(max($0, lo), hi) }
        case "Add", "Sub", "Mul", "Div":
            let a = x!, b = ins[1]!
            let r = max(a.shape.count, b.shape.count)
            let pa = [Int](repeating: 1, count: r - a.shape.count) + a.shape, pb = [Int](repeating: 1, count: r - b.shape.count) + b.shape
            let shape = (0..<r).map { max(pa[$0], pb[$0]) }
            var out: [Double] = []
            Self.forEach(shape) { i in
                let u = at(a, i), v = at(b, i)
                switch n.opType { case "Add": out.append(u + v); case "Sub": out.append(u - v); case "Mul": out.append(u * v); default: out.append(u / v) }
            }
            return [Value(shape: shape, data: out)]
        case "BatchNormalization":
            let eps = Double(n.float("epsilon") ?? 1e-5)
            let (s, b, m, v) = (ins[1]!.data, ins[2]!.data, ins[3]!.data, ins[4]!.data)
            var out = x!.data
            let c = x!.shape[1], inner = x!.shape.dropFirst(2).reduce(1, *)
            for i in 0..<out.count { let ch = (i / inner) % c; out[i] = (out[i] - m[ch]) / (v[ch] + eps).squareRoot() * s[ch] + b[ch] }
            return [Value(shape: x!.shape, data: out)]
        case "Conv":
            let w = ins[1]!, bias = ins.count > 2 ? ins[2] : nil
            let (N, C, H, W) = (x!.shape[0], x!.shape[1], x!.shape[2], x!.shape[3])
            let (O, cg, KH, KW) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
            let g = n.int("group") ?? 1, s = n.ints("strides") ?? [1, 1], d = n.ints("dilations") ?? [1, 1]
            var p = n.ints("pads") ?? [0, 0, 0, 0]
            let ap = n.string("auto_pad") ?? "NOTSET"
            if ap.hasPrefix("SAME") {
                for (i, inSize, k) in [(0, H, KH), (1, W, KW)] {
                    let o = (inSize + s[i] - 1) / s[i]
                    let total = max(0, (o - 1) * s[i] + (k - 1) * d[i] + 1 - inSize)
                    p[i] = ap == "SAME_UPPER" ? total / 2 : total - total / 2
                    p[i + 2] = total - p[i]
                }
            } else if ap == "VALID" { p = [0, 0, 0, 0] }
            let OH = (H + p[0] + p[2] - d[0] * (KH - 1) - 1) / s[0] + 1, OW = (W + p[1] + p[3] - d[1] * (KW - 1) - 1) / s[1] + 1
            var out = [Double](repeating: 0, count: N * O * OH * OW)
            let og = O / g
            for b in 0..<N { for o in 0..<O { for oy in 0..<OH { for ox in 0..<OW {
                var acc = bias?.data[o] ?? 0
                let grp = o / og
                for c in 0..<cg { for ky in 0..<KH { for kx in 0..<KW {
                    let iy = oy * s[0] - p[0] + ky * d[0], ix = ox * s[1] - p[1] + kx * d[1]
                    if iy < 0 || iy >= H || ix < 0 || ix >= W { continue }
                    acc += x!.data[((b * C + grp * cg + c) * H + iy) * W + ix] * w.data[((o * cg + c) * KH + ky) * KW + kx]
                } } }
                out[((b * O + o) * OH + oy) * OW + ox] = acc
            } } } }
            return [Value(shape: [N, O, OH, OW], data: out)]
        case "MaxPool", "AveragePool":
            let (N, C, H, W) = (x!.shape[0], x!.shape[1], x!.shape[2], x!.shape[3])
            let k = n.ints("kernel_shape")!, s = n.ints("strides") ?? [1, 1], d = n.ints("dilations") ?? [1, 1]
            let p = n.ints("pads") ?? [0, 0, 0, 0]
            let ceilMode = (n.int("ceil_mode") ?? 0) != 0, include = (n.int("count_include_pad") ?? 0) != 0
            func os(_ i: Int, _ inSize: Int) -> Int {
                let span = inSize + p[i] + p[i + 2] - d[i] * (k[i] - 1) - 1
                var o = Int((ceilMode ? (Double(span) / Double(s[i])).rounded(.up) : (Double(span) / Double(s[i])).rounded(.down))) + 1
                if ceilMode && (o - 1) * s[i] >= inSize + p[i] { o -= 1 }
                return o
            }
            let OH = os(0, H), OW = os(1, W)
            var out: [Double] = []
            for b in 0..<N { for c in 0..<C { for oy in 0..<OH { for ox in 0..<OW {
                var m = -Double.infinity, sum = 0.0, cnt = 0
                for ky in 0..<k[0] { for kx in 0..<k[1] {
                    let iy = oy * s[0] - p[0] + ky * d[0], ix = ox * s[1] - p[1] + kx * d[1]
                    if iy < 0 || iy >= H || ix < 0 || ix >= W { continue }
                    let v = x!.data[((b * C + c) * H + iy) * W + ix]
                    m = max(m, v); sum += v; cnt += 1
                } }
                if n.opType == "MaxPool" { out.append(m); continue }
                if include {
                    let y0 = oy * s[0] - p[0], x0 = ox * s[1] - p[1]
                    let y1 = min(y0 + k[0], H + p[2]), x1 = min(x0 + k[1], W + p[3])
                    cnt = (y1 - y0) * (x1 - x0)
                }
                out.append(sum / Double(cnt))
            } } } }
            return [Value(shape: [N, C, OH, OW], data: out)]
        case "GlobalAveragePool":
            let (N, C) = (x!.shape[0], x!.shape[1]), hw = x!.shape[2] * x!.shape[3]
            var out: [Double] = []
            for i in 0..<(N * C) { out.append(x!.data[(i * hw)..<((i + 1) * hw)].reduce(0, +) / Double(hw)) }
            return [Value(shape: [N, C, 1, 1], data: out)]
        case "ReduceMean":
            let r = x!.shape.count
            let axesRaw = opset >= 18 ? (ins.count > 1 ? ins[1]?.data.map { Int($0) } : nil) : n.ints("axes")
            let axes = Set((axesRaw ?? Array(0..<r)).map { $0 < 0 ? $0 + r : $0 })
            let keep = (n.int("keepdims") ?? 1) != 0
            let kept = (0..<r).map { axes.contains($0) ? 1 : x!.shape[$0] }
            var out = [Double](repeating: 0, count: kept.reduce(1, *))
            let ks = Self.strides(kept)
            var flat = 0
            Self.forEach(x!.shape) { i in
                var o = 0
                for d in 0..<r where !axes.contains(d) { o += i[d] * ks[d] }
                out[o] += x!.data[flat]; flat += 1
            }
            let cnt = Double(x!.data.count / out.count)
            return [Value(shape: keep ? kept : (0..<r).filter { !axes.contains($0) }.map { x!.shape[$0] }, data: out.map { $0 / cnt })]
        case "Shape": return [Value(shape: [x!.shape.count], data: x!.shape.map(Double.init))]
        case "Gather":
            let ind = ins[1]!
            let r = x!.shape.count
            let axis = (n.int("axis") ?? 0) < 0 ? (n.int("axis") ?? 0) + r : (n.int("axis") ?? 0)
            let outer = x!.shape[..<axis].reduce(1, *), inner = x!.shape[(axis + 1)...].reduce(1, *), dim = x!.shape[axis]
            var out: [Double] = []
            for o in 0..<outer { for iv in ind.data { var i = Int(iv); if i < 0 { i += dim }
                out.append(contentsOf: x!.data[((o * dim + i) * inner)..<((o * dim + i + 1) * inner)]) } }
            return [Value(shape: Array(x!.shape[..<axis]) + ind.shape + Array(x!.shape[(axis + 1)...]), data: out)]
        case "Unsqueeze":
            let axes = opset >= 13 ? ins[1]!.data.map { Int($0) } : n.ints("axes")!
            let r = x!.shape.count + axes.count
            let na = axes.map { $0 < 0 ? $0 + r : $0 }
            var shape: [Int] = [], j = 0
            for i in 0..<r { if na.contains(i) { shape.append(1) } else { shape.append(x!.shape[j]); j += 1 } }
            return [Value(shape: shape, data: x!.data)]
        case "Squeeze":
            let r = x!.shape.count
            let axes = (opset >= 13 ? ins.count > 1 ? ins[1]?.data.map { Int($0) } : nil : n.ints("axes")) ?? (0..<r).filter { x!.shape[$0] == 1 }
            let na = axes.map { $0 < 0 ? $0 + r : $0 }
            return [Value(shape: x!.shape.enumerated().filter { !na.contains($0.offset) }.map(\.element), data: x!.data)]
        case "Concat":
            let parts = ins.compactMap { $0 }
            let r = parts[0].shape.count
            let axis = (n.int("axis") ?? 0) < 0 ? (n.int("axis") ?? 0) + r : (n.int("axis") ?? 0)
            var shape = parts[0].shape
            shape[axis] = parts.map { $0.shape[axis] }.reduce(0, +)
            let outer = shape[..<axis].reduce(1, *)
            var out: [Double] = []
            for o in 0..<outer { for p in parts { let blk = p.shape[axis...].reduce(1, *); out.append(contentsOf: p.data[(o * blk)..<((o + 1) * blk)]) } }
            return [Value(shape: shape, data: out)]
        case "Reshape":
            var t = ins[1]!.data.map { Int($0) }
            for i in 0..<t.count where t[i] == 0 && (n.int("allowzero") ?? 0) == 0 { t[i] = x!.shape[i] }
            if let h = t.firstIndex(of: -1) { t[h] = x!.data.count / t.enumerated().filter { $0.offset != h }.map(\.element).reduce(1, *) }
            return [Value(shape: t, data: x!.data)]
        case "Flatten":
            let a = n.int("axis") ?? 1
            return [Value(shape: [x!.shape[..<a].reduce(1, *), x!.shape[a...].reduce(1, *)], data: x!.data)]
        case "Transpose":
            let perm = n.ints("perm")!
            let shape = perm.map { x!.shape[$0] }
            let st = Self.strides(x!.shape)
            var out: [Double] = []
            Self.forEach(shape) { i in var f = 0; for d in 0..<perm.count { f += i[d] * st[perm[d]] }; out.append(x!.data[f]) }
            return [Value(shape: shape, data: out)]
        case "Slice", "Split", "Pad":
            return try sliceSplitPad(n, ins, opset: opset)
        case "Gemm":
            let a = x!, b = ins[1]!
            let ta = (n.int("transA") ?? 0) != 0, tb = (n.int("transB") ?? 0) != 0
            let alpha = Double(n.float("alpha") ?? 1), beta = Double(n.float("beta") ?? 1)
            let M = ta ? a.shape[1] : a.shape[0], K = ta ? a.shape[0] : a.shape[1], N = tb ? b.shape[0] : b.shape[1]
            var out: [Double] = []
            for i in 0..<M { for j in 0..<N {
                var acc = 0.0
                for k in 0..<K { acc += (ta ? a.data[k * M + i] : a.data[i * K + k]) * (tb ? b.data[j * K + k] : b.data[k * N + j]) }
                var v = alpha * acc
                if ins.count > 2, let c = ins[2] { v += beta * at(c, [i, j]) }
                out.append(v)
            } }
            return [Value(shape: [M, N], data: out)]
        case "MatMul":
            let a = x!, b = ins[1]!
            let M = a.shape[a.shape.count - 2], K = a.shape.last!, N = b.shape.last!
            let batches = a.shape.dropLast(2).reduce(1, *), bb = b.shape.dropLast(2).reduce(1, *)
            var out: [Double] = []
            for t in 0..<batches { for i in 0..<M { for j in 0..<N {
                var acc = 0.0
                for k in 0..<K { acc += a.data[(t * M + i) * K + k] * b.data[((bb == 1 ? 0 : t) * K + k) * N + j] }
                out.append(acc)
            } } }
            return [Value(shape: Array(a.shape.dropLast(2)) + [M, N], data: out)]
        case "Softmax":
            let r = x!.shape.count
            var axis = n.int("axis") ?? -1
            if axis < 0 { axis += r }
            let outer = x!.shape[..<axis].reduce(1, *), len = x!.shape[axis], inner = x!.shape[(axis + 1)...].reduce(1, *)
            var out = x!.data
            for o in 0..<outer { for i in 0..<inner {
                let idx = (0..<len).map { (o * len + $0) * inner + i }
                let m = idx.map { x!.data[$0] }.max()!
                let e = idx.map { exp(x!.data[$0] - m) }, s = e.reduce(0, +)
                for (k, j) in idx.enumerated() { out[j] = e[k] / s }
            } }
            return [Value(shape: x!.shape, data: out)]
        case "Cast": return [x!]
        default: throw Failure.unsupported(n.opType)
        }
    }

    func sliceSplitPad(_ n: Node, _ ins: [Value?], opset: Int) throws -> [Value] {
        let x = ins[0]!
        let r = x.shape.count
        let st = Self.strides(x.shape)
        func extract(begin: [Int], step: [Int], shape: [Int]) -> Value {
            var out: [Double] = []
            Self.forEach(shape) { i in var f = 0; for d in 0..<r { f += (begin[d] + i[d] * step[d]) * st[d] }; out.append(x.data[f]) }
            return Value(shape: shape, data: out)
        }
        switch n.opType {
        case "Slice":
            let starts = ins[1]!.data.map { Int($0) }, ends = ins[2]!.data.map { Int($0) }
            let axes = ins.count > 3 ? ins[3]?.data.map { Int($0) } ?? Array(0..<starts.count) : Array(0..<starts.count)
            let steps = ins.count > 4 ? ins[4]?.data.map { Int($0) } ?? starts.map { _ in 1 } : starts.map { _ in 1 }
            var begin = [Int](repeating: 0, count: r), step = [Int](repeating: 1, count: r), shape = x.shape
            for i in 0..<starts.count {
                let a = axes[i] < 0 ? axes[i] + r : axes[i], dim = x.shape[a]
                var s = starts[i] < 0 ? starts[i] + dim : starts[i], e = ends[i] < 0 ? ends[i] + dim : ends[i]
                if steps[i] > 0 { s = min(max(s, 0), dim); e = min(max(e, 0), dim); shape[a] = max(0, (e - s + steps[i] - 1) / steps[i]) }
                else { s = min(max(s, 0), dim - 1); e = min(max(e, -1), dim - 1); shape[a] = max(0, (s - e - steps[i] - 1) / -steps[i]) }
                begin[a] = s; step[a] = steps[i]
            }
            return [extract(begin: begin, step: step, shape: shape)]
        case "Split":
            let axis = (n.int("axis") ?? 0) < 0 ? (n.int("axis") ?? 0) + r : (n.int("axis") ?? 0)
            let sizes = ins.count > 1 ? ins[1]?.data.map { Int($0) } : nil
            let k = n.outputs.count
            let sz = sizes ?? [Int](repeating: x.shape[axis] / k, count: k)
            var outs: [Value] = [], start = 0
            for s in sz {
                var begin = [Int](repeating: 0, count: r), shape = x.shape
                begin[axis] = start; shape[axis] = s; start += s
                outs.append(extract(begin: begin, step: [Int](repeating: 1, count: r), shape: shape))
            }
            return outs
        default: // Pad constant
            let pads = ins[1]!.data.map { Int($0) }
            let v = ins.count > 2 ? ins[2]?.data[0] ?? 0 : 0
            let shape = (0..<r).map { x.shape[$0] + pads[$0] + pads[$0 + r] }
            var out: [Double] = []
            Self.forEach(shape) { i in
                var f = 0, inside = true
                for d in 0..<r { let j = i[d] - pads[d]; if j < 0 || j >= x.shape[d] { inside = false; break }; f += j * st[d] }
                out.append(inside ? x.data[f] : v)
            }
            return [Value(shape: shape, data: out)]
        }
    }
}
