import LiteCNNGraph
import LiteCNNTensor

/// A constant during shape arithmetic and folding: logical (ONNX) row-major values, ints kept exact in `Double`.
struct ConstValue: Equatable {
    /// Integer constants and values made by folding.
    private var doubles: [Double]?
    /// Float tensors from the graph, kept as given: the storage is shared with the graph's tensor, not copied.
    private var floatValues: [Float]?
    var shape: [Int]
    var isInt: Bool

    init(data: [Double], shape: [Int], isInt: Bool) {
        self.doubles = data
        self.shape = shape
        self.isInt = isInt
    }

    private init(floats: [Float], shape: [Int]) {
        self.floatValues = floats
        self.shape = shape
        self.isInt = false
    }

    init(_ c: Constant) {
        switch c {
        case let .float(t): self.init(floats: t.scalars, shape: t.shape)
        case let .int(v, shape): self.init(data: v.map(Double.init), shape: shape, isInt: true)
        }
    }

    /// The values as doubles (converted on each call for float tensors: use `floats` for weights).
    var data: [Double] { doubles ?? floatValues!.map(Double.init) }
    var ints: [Int] { data.map { Int($0) } }
    var floats: [Float] { floatValues ?? doubles!.map { Float($0) } }
    var count: Int { doubles?.count ?? floatValues!.count }

    var constant: Constant {
        isInt ? .int(ints, shape: shape) : .float(Tensor(shape: shape, scalars: floats, layout: shape.count == 4 ? .nchw : .plain))
    }

    static func == (a: ConstValue, b: ConstValue) -> Bool {
        a.shape == b.shape && a.isInt == b.isInt && a.data == b.data
    }
}

/// Row-major strides of `shape`.
func contiguousStrides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count)
    var acc = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) { s[i] = acc; acc *= shape[i] }
    return s
}

/// Numpy broadcasting of two shapes; nil when incompatible.
func broadcastShapes(_ a: [Int], _ b: [Int]) -> [Int]? {
    let r = max(a.count, b.count)
    var out = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.count ? 1 : a[i - (r - a.count)]
        let db = i < r - b.count ? 1 : b[i - (r - b.count)]
        if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else { return nil }
    }
    return out
}

/// Strides of `shape` (row-major) seen from an output of rank `rank` (right-aligned, 0 where broadcast).
func broadcastStrides(_ shape: [Int], strides: [Int], rank: Int) -> [Int] {
    var out = [Int](repeating: 0, count: rank)
    let off = rank - shape.count
    for i in 0..<shape.count where shape[i] != 1 { out[i + off] = strides[i] }
    return out
}

/// Normalizes ONNX Slice bounds on one axis of size `dim`: (start, step, count).
func sliceRange(start: Int, end: Int, step: Int, dim: Int) -> (start: Int, step: Int, count: Int) {
    var s = start, e = end
    if s < 0 { s += dim }
    if e < 0 { e += dim }
    if step > 0 {
        s = min(max(s, 0), dim); e = min(max(e, 0), dim)
        return (s, step, e > s ? (e - s + step - 1) / step : 0)
    } else {
        s = min(max(s, 0), dim - 1); e = min(max(e, -1), dim - 1)
        return (s, step, s > e ? (s - e + (-step) - 1) / (-step) : 0)
    }
}

/// Normalizes an axis against a rank; nil when out of range.
func normalizeAxis(_ axis: Int, rank: Int) -> Int? {
    let a = axis < 0 ? axis + rank : axis
    return a >= 0 && a < rank ? a : nil
}

/// Gathers `data[..., idx, ...]` along `axis` (logical row-major).
func gatherValues(_ data: ConstValue, axis: Int, indices: [Int], indicesShape: [Int]) -> ConstValue? {
    let dim = data.shape[axis]
    let outer = data.shape[..<axis].reduce(1, *), inner = data.shape[(axis + 1)...].reduce(1, *)
    var out: [Double] = []
    out.reserveCapacity(outer * indices.count * inner)
    for o in 0..<outer {
        for var i in indices {
            if i < 0 { i += dim }
            guard i >= 0 && i < dim else { return nil }
            let base = (o * dim + i) * inner
            out.append(contentsOf: data.data[base..<(base + inner)])
        }
    }
    return ConstValue(data: out, shape: Array(data.shape[..<axis]) + indicesShape + Array(data.shape[(axis + 1)...]),
                      isInt: data.isInt)
}

/// Resolves an ONNX Reshape target against an input shape (0 copies, −1 inferred unless `allowZero`).
func resolveReshape(_ input: [Int], target: [Int], allowZero: Bool) -> [Int]? {
    var dims = target
    var hole: Int?
    for i in 0..<dims.count {
        if dims[i] == 0 && !allowZero {
            guard i < input.count else { return nil }
            dims[i] = input[i]
        } else if dims[i] == -1 {
            if hole != nil { return nil }
            hole = i
        } else if dims[i] < 0 { return nil }
    }
    let total = input.reduce(1, *)
    if let hole {
        let known = dims.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
        guard known > 0, total % known == 0 else { return nil }
        dims[hole] = total / known
    }
    return dims.reduce(1, *) == total ? dims : nil
}

/// Transposes logical row-major values.
func transposeValues(_ v: ConstValue, perm: [Int]) -> ConstValue {
    let outShape = perm.map { v.shape[$0] }
    let inStrides = contiguousStrides(v.shape)
    let permStrides = perm.map { inStrides[$0] }
    var out = [Double](repeating: 0, count: v.count)
    var idx = [Int](repeating: 0, count: perm.count)
    for o in 0..<v.count {
        var src = 0
        for d in 0..<perm.count { src += idx[d] * permStrides[d] }
        out[o] = v.data[src]
        var d = perm.count - 1
        while d >= 0 { idx[d] += 1; if idx[d] < outShape[d] { break }; idx[d] = 0; d -= 1 }
    }
    return ConstValue(data: out, shape: outShape, isInt: v.isInt)
}

/// Evaluates shape arithmetic and small constant subgraphs (ONNX semantics). Returns nil when the operator is not
/// one the folder knows (the planner then runs it as an ordinary operator on constant buffers); throws when the
/// operator is known but its operands are invalid.
func foldConstant(_ node: Node, inputs: [ConstValue?], inputShapes: [[Int]?], opset: Int) throws -> [ConstValue]? {
    func err(_ m: String) -> GraphError { GraphError(m, at: node, opset: opset) }
    func input(_ i: Int) -> ConstValue? { i < inputs.count ? inputs[i] : nil }
    switch node.opType {
    case "Shape":
        guard let shape = inputShapes.first ?? nil else { return nil }
        let r = shape.count
        var start = node.int("start") ?? 0, end = node.int("end") ?? r
        if start < 0 { start += r }
        if end < 0 { end += r }
        start = min(max(start, 0), r); end = min(max(end, 0), r)
        let dims = start < end ? Array(shape[start..<end]) : []
        return [ConstValue(data: dims.map(Double.init), shape: [dims.count], isInt: true)]
    case "Size":
        guard let shape = inputShapes.first ?? nil else { return nil }
        return [ConstValue(data: [Double(shape.reduce(1, *))], shape: [], isInt: true)]
    default: break
    }
    // Everything else needs all (present) inputs constant.
    var values: [ConstValue?] = []
    for (i, name) in node.inputs.enumerated() {
        if name.isEmpty { values.append(nil); continue }
        guard let v = input(i) else { return nil }
        values.append(v)
    }
    guard let x = values.first ?? nil else { return nil }
    switch node.opType {
    case "Identity", "Dropout":
        return [x]
    case "Cast":
        let to = node.int("to") ?? 1
        switch to {
        case 1, 10, 11: return [ConstValue(data: x.data.map { Double(Float($0)) }, shape: x.shape, isInt: false)]
        case 6, 7, 2, 3: return [ConstValue(data: x.data.map { $0.rounded(.towardZero) }, shape: x.shape, isInt: true)]
        case 9: return [ConstValue(data: x.data.map { $0 != 0 ? 1 : 0 }, shape: x.shape, isInt: true)]
        default: throw err("Cast to element type \(to) is not supported")
        }
    case "Add", "Sub", "Mul", "Div":
        guard values.count == 2, let y = values[1] else { throw err("needs two inputs") }
        guard let shape = broadcastShapes(x.shape, y.shape) else {
            throw err("shapes \(x.shape) and \(y.shape) do not broadcast")
        }
        let r = shape.count
        let sx = broadcastStrides(x.shape, strides: contiguousStrides(x.shape), rank: r)
        let sy = broadcastStrides(y.shape, strides: contiguousStrides(y.shape), rank: r)
        let n = shape.reduce(1, *)
        var out = [Double](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: r)
        let isInt = x.isInt && y.isInt
        for o in 0..<n {
            var ix = 0, iy = 0
            for d in 0..<r { ix += idx[d] * sx[d]; iy += idx[d] * sy[d] }
            let a = x.data[ix], b = y.data[iy]
            switch node.opType {
            case "Add": out[o] = a + b
            case "Sub": out[o] = a - b
            case "Mul": out[o] = a * b
            default:
                if isInt {
                    guard b != 0 else { throw err("integer division by zero") }
                    out[o] = (a / b).rounded(.down)
                } else { out[o] = Double(Float(a) / Float(b)) }
            }
            if !isInt { out[o] = Double(Float(out[o])) }
            var d = r - 1
            while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
        }
        return [ConstValue(data: out, shape: shape, isInt: isInt)]
    case "Gather":
        guard values.count == 2, let ind = values[1], ind.isInt else { throw err("needs integer indices") }
        guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: x.shape.count) else { throw err("axis out of range") }
        guard let g = gatherValues(x, axis: axis, indices: ind.ints, indicesShape: ind.shape) else {
            throw err("index out of range for shape \(x.shape)")
        }
        return [g]
    case "Unsqueeze":
        let axesIn: [Int]? = opset >= 13 ? (values.count > 1 ? values[1]?.ints : nil) : node.ints("axes")
        guard let axesIn else { throw err("missing axes") }
        let r = x.shape.count + axesIn.count
        var axes: [Int] = []
        for a in axesIn { guard let n = normalizeAxis(a, rank: r) else { throw err("axis \(a) out of range") }; axes.append(n) }
        var shape: [Int] = [], src = 0
        for i in 0..<r { if axes.contains(i) { shape.append(1) } else { shape.append(x.shape[src]); src += 1 } }
        return [ConstValue(data: x.data, shape: shape, isInt: x.isInt)]
    case "Squeeze":
        let axesIn: [Int]? = opset >= 13 ? (values.count > 1 ? values[1]?.ints : nil) : node.ints("axes")
        let r = x.shape.count
        let axes = try (axesIn ?? (0..<r).filter { x.shape[$0] == 1 }).map { a -> Int in
            guard let n = normalizeAxis(a, rank: r), x.shape[n] == 1 else { throw err("cannot squeeze axis \(a) of \(x.shape)") }
            return n
        }
        return [ConstValue(data: x.data, shape: x.shape.enumerated().filter { !axes.contains($0.offset) }.map(\.element), isInt: x.isInt)]
    case "Concat":
        let parts = values.compactMap { $0 }
        guard let axis = normalizeAxis(node.int("axis") ?? 0, rank: x.shape.count) else { throw err("axis out of range") }
        var outShape = x.shape
        outShape[axis] = 0
        for p in parts {
            guard p.shape.count == x.shape.count,
                  (0..<p.shape.count).allSatisfy({ $0 == axis || p.shape[$0] == x.shape[$0] }) else {
                throw err("inputs \(parts.map(\.shape)) do not concatenate on axis \(axis)")
            }
            outShape[axis] += p.shape[axis]
        }
        let outer = x.shape[..<axis].reduce(1, *)
        var out: [Double] = []
        for o in 0..<outer {
            for p in parts {
                let block = p.shape[axis...].reduce(1, *)
                out.append(contentsOf: p.data[(o * block)..<((o + 1) * block)])
            }
        }
        return [ConstValue(data: out, shape: outShape, isInt: parts.allSatisfy(\.isInt))]
    case "Reshape":
        guard values.count >= 2, let target = values[1] else { throw err("missing shape") }
        guard let dims = resolveReshape(x.shape, target: target.ints, allowZero: (node.int("allowzero") ?? 0) != 0) else {
            throw err("cannot reshape \(x.shape) to \(target.ints)")
        }
        return [ConstValue(data: x.data, shape: dims, isInt: x.isInt)]
    case "Flatten":
        guard let axis = normalizeAxis(node.int("axis") ?? 1, rank: x.shape.count + 1) else { throw err("axis out of range") }
        return [ConstValue(data: x.data, shape: [x.shape[..<axis].reduce(1, *), x.shape[axis...].reduce(1, *)], isInt: x.isInt)]
    case "Transpose":
        let perm = node.ints("perm") ?? Array((0..<x.shape.count).reversed())
        guard perm.sorted() == Array(0..<x.shape.count) else { throw err("bad perm \(perm)") }
        return [transposeValues(x, perm: perm)]
    case "Slice":
        let r = x.shape.count
        var starts: [Int], ends: [Int], axes: [Int]?, steps: [Int]?
        if opset >= 10 {
            guard values.count >= 3, let s = values[1], let e = values[2] else { throw err("missing starts/ends") }
            starts = s.ints; ends = e.ints
            axes = values.count > 3 ? values[3]?.ints : nil
            steps = values.count > 4 ? values[4]?.ints : nil
        } else {
            starts = node.ints("starts") ?? []; ends = node.ints("ends") ?? []; axes = node.ints("axes"); steps = nil
        }
        let ax = axes ?? Array(0..<starts.count)
        guard ax.count == starts.count, ends.count == starts.count, (steps?.count ?? starts.count) == starts.count else {
            throw err("starts/ends/axes/steps lengths differ")
        }
        var begin = [Int](repeating: 0, count: r), step = [Int](repeating: 1, count: r), shape = x.shape
        for i in 0..<ax.count {
            guard let a = normalizeAxis(ax[i], rank: r) else { throw err("axis \(ax[i]) out of range") }
            let st = steps?[i] ?? 1
            guard st != 0 else { throw err("step 0") }
            let rr = sliceRange(start: starts[i], end: ends[i], step: st, dim: x.shape[a])
            begin[a] = rr.start; step[a] = rr.step; shape[a] = rr.count
        }
        let strides = contiguousStrides(x.shape)
        let n = shape.reduce(1, *)
        var out = [Double](repeating: 0, count: n)
        var idx = [Int](repeating: 0, count: r)
        for o in 0..<n {
            var src = 0
            for d in 0..<r { src += (begin[d] + idx[d] * step[d]) * strides[d] }
            out[o] = x.data[src]
            var d = r - 1
            while d >= 0 { idx[d] += 1; if idx[d] < shape[d] { break }; idx[d] = 0; d -= 1 }
        }
        return [ConstValue(data: out, shape: shape, isInt: x.isInt)]
    case "ConstantOfShape":
        let dims = x.ints
        var value = ConstValue(data: [0], shape: [1], isInt: false)
        if case let .tensor(c)? = node.attributes["value"] { value = ConstValue(c) }
        return [ConstValue(data: [Double](repeating: value.data.first ?? 0, count: dims.reduce(1, *)), shape: dims, isInt: value.isInt)]
    default:
        return nil
    }
}
