// Elementwise arithmetic, concatenation, splitting, channel shuffling and reductions on `Tensor`.
//
// Every operation works on the row-major storage through buffer pointers; large elementwise operations are split
// over `WorkerPool.shared`.

/// Elements below which an elementwise operation stays on the calling thread.
let parallelElementThreshold = 1 << 16

/// A binary scalar operation, as a type so that elementwise loops over it are specialized.
protocol ScalarCombination {
    static var name: String { get }
    static func combine(_ a: Float, _ b: Float) -> Float
}

enum ScalarSum: ScalarCombination {
    static let name = "+"
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { a + b }
}

enum ScalarDifference: ScalarCombination {
    static let name = "-"
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { a - b }
}

enum ScalarProduct: ScalarCombination {
    static let name = "*"
    @inline(__always) static func combine(_ a: Float, _ b: Float) -> Float { a * b }
}

extension Tensor {
    // MARK: Elementwise arithmetic (same shape)

    /// `result[i] = F(a[i], b[i])` for two tensors of equal shape. `F` is a type rather than a closure so that the
    /// loop is specialized and vectorized.
    static func zipped<F: ScalarCombination>(_ a: Tensor, _ b: Tensor, _: F.Type) -> Tensor {
        precondition(a.shape == b.shape, "Tensor \(F.name): shapes \(a.shape) and \(b.shape) differ")
        return Tensor(shape: a.shape, layout: a.layout) { out in
            a.scalars.withUnsafeBufferPointer { x in
                b.scalars.withUnsafeBufferPointer { y in
                    WorkerPool.shared.parallelRanges(out.count, minimumChunk: parallelElementThreshold) { range in
                        for i in range { out[i] = F.combine(x[i], y[i]) }
                    }
                }
            }
        }
    }

    /// `self[i] = F(self[i], other[i])` in place.
    mutating func zipInPlace<F: ScalarCombination>(_ other: Tensor, _: F.Type) {
        precondition(shape == other.shape, "Tensor \(F.name): shapes \(shape) and \(other.shape) differ")
        scalars.withUnsafeMutableBufferPointer { x in
            other.scalars.withUnsafeBufferPointer { y in
                WorkerPool.shared.parallelRanges(x.count, minimumChunk: parallelElementThreshold) { range in
                    for i in range { x[i] = F.combine(x[i], y[i]) }
                }
            }
        }
    }

    /// Elementwise sum of two tensors of the same shape.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor { zipped(lhs, rhs, ScalarSum.self) }
    /// Elementwise difference of two tensors of the same shape.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor { zipped(lhs, rhs, ScalarDifference.self) }
    /// Elementwise (Hadamard) product of two tensors of the same shape.
    public static func * (lhs: Tensor, rhs: Tensor) -> Tensor { zipped(lhs, rhs, ScalarProduct.self) }

    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs.zipInPlace(rhs, ScalarSum.self) }
    public static func -= (lhs: inout Tensor, rhs: Tensor) { lhs.zipInPlace(rhs, ScalarDifference.self) }
    public static func *= (lhs: inout Tensor, rhs: Tensor) { lhs.zipInPlace(rhs, ScalarProduct.self) }

    /// `self + other` (same shape).
    public func adding(_ other: Tensor) -> Tensor { self + other }
    /// `self − other` (same shape).
    public func subtracting(_ other: Tensor) -> Tensor { self - other }
    /// `self ⊙ other` (same shape).
    public func multiplying(_ other: Tensor) -> Tensor { self * other }

    /// Adds `other` (same shape) into `self`.
    public mutating func add(_ other: Tensor) { self += other }
    /// Adds `scale · other` (same shape) into `self` (axpy).
    public mutating func add(_ other: Tensor, scaledBy scale: Float) {
        precondition(shape == other.shape, "Tensor add(_:scaledBy:): shapes \(shape) and \(other.shape) differ")
        scalars.withUnsafeMutableBufferPointer { x in
            other.scalars.withUnsafeBufferPointer { y in
                WorkerPool.shared.parallelRanges(x.count, minimumChunk: parallelElementThreshold) { range in
                    for i in range { x[i] += scale * y[i] }
                }
            }
        }
    }
    /// Subtracts `other` (same shape) from `self`.
    public mutating func subtract(_ other: Tensor) { self -= other }
    /// Multiplies `self` elementwise by `other` (same shape).
    public mutating func multiply(by other: Tensor) { self *= other }

    /// Every element times `factor`.
    public func scaled(by factor: Float) -> Tensor {
        Tensor(shape: shape, layout: layout) { out in
            scalars.withUnsafeBufferPointer { x in
                WorkerPool.shared.parallelRanges(out.count, minimumChunk: parallelElementThreshold) { range in
                    for i in range { out[i] = x[i] * factor }
                }
            }
        }
    }

    /// Multiplies every element by `factor` in place.
    public mutating func scale(by factor: Float) {
        scalars.withUnsafeMutableBufferPointer { x in
            WorkerPool.shared.parallelRanges(x.count, minimumChunk: parallelElementThreshold) { range in
                for i in range { x[i] *= factor }
            }
        }
    }

    // MARK: Concatenation and splitting

    /// Joins `tensors` along `axis` (negative counts from the end). All other dimensions must agree.
    ///
    /// With `outer = ∏ shape[..<axis]` and `inner_k = shape_k[axis] · ∏ shape_k[(axis+1)...]`, the result is the
    /// blocks `inner_0, inner_1, …` of each outer index laid side by side. Layout follows the first tensor.
    public static func concatenated(_ tensors: [Tensor], axis: Int) -> Tensor {
        precondition(!tensors.isEmpty, "Tensor.concatenated: no tensors")
        let first = tensors[0]
        let rank = first.rank
        let ax = axis < 0 ? rank + axis : axis
        precondition(ax >= 0 && ax < rank, "Tensor.concatenated: axis \(axis) out of range for rank \(rank)")
        for t in tensors {
            precondition(t.rank == rank && (0..<rank).allSatisfy { $0 == ax || t.shape[$0] == first.shape[$0] },
                         "Tensor.concatenated: shape \(t.shape) does not match \(first.shape) off axis \(ax)")
        }
        let outer = first.shape[..<ax].reduce(1, *)
        let trailing = first.shape[(ax + 1)...].reduce(1, *)
        let blocks = tensors.map { $0.shape[ax] * trailing }
        let rowLength = blocks.reduce(0, +)
        var shape = first.shape
        shape[ax] = tensors.reduce(0) { $0 + $1.shape[ax] }
        var out = Tensor(shape: shape, layout: first.layout) { _ in }
        out.scalars.withUnsafeMutableBufferPointer { o in
            var offset = 0
            for (t, block) in zip(tensors, blocks) {
                t.scalars.withUnsafeBufferPointer { src in
                    let start = offset
                    WorkerPool.shared.parallelRanges(outer, minimumChunk: Swift.max(1, parallelElementThreshold / Swift.max(1, block))) { rows in
                        for r in rows {
                            (o.baseAddress! + r * rowLength + start).update(from: src.baseAddress! + r * block, count: block)
                        }
                    }
                }
                offset += block
            }
        }
        return out
    }

    /// Cuts the tensor along `axis` into pieces of `sizes` (which must add up to `shape[axis]`); the inverse of
    /// `concatenated(_:axis:)`.
    public func split(axis: Int, sizes: [Int]) -> [Tensor] {
        let ax = axis < 0 ? rank + axis : axis
        precondition(ax >= 0 && ax < rank, "Tensor.split: axis \(axis) out of range for rank \(rank)")
        precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == shape[ax],
                     "Tensor.split: sizes \(sizes) do not add up to dimension \(shape[ax]) of \(shape)")
        let outer = shape[..<ax].reduce(1, *)
        let trailing = shape[(ax + 1)...].reduce(1, *)
        let rowLength = shape[ax] * trailing
        var pieces: [Tensor] = []
        var offset = 0
        scalars.withUnsafeBufferPointer { src in
            for size in sizes {
                var pieceShape = shape
                pieceShape[ax] = size
                let block = size * trailing
                let start = offset
                pieces.append(Tensor(shape: pieceShape, layout: layout) { out in
                    WorkerPool.shared.parallelRanges(outer, minimumChunk: Swift.max(1, parallelElementThreshold / Swift.max(1, block))) { rows in
                        for r in rows {
                            (out.baseAddress! + r * block).update(from: src.baseAddress! + r * rowLength + start, count: block)
                        }
                    }
                })
                offset += block
            }
        }
        return pieces
    }

    /// ShuffleNet's channel shuffle on the last axis: channels viewed as `[groups, C / groups]`, transposed to
    /// `[C / groups, groups]` and flattened, so output channel `j · groups + i` is input channel `i · (C / groups) + j`.
    /// `channelShuffled(groups: C / groups)` undoes it.
    public func channelShuffled(groups: Int) -> Tensor {
        precondition(rank >= 1, "channelShuffled on a scalar")
        let channels = shape[rank - 1]
        precondition(groups > 0 && channels % groups == 0, "channelShuffled: \(channels) channels not divisible by \(groups) groups")
        let perGroup = channels / groups
        let rows = count / Swift.max(1, channels)
        return Tensor(shape: shape, layout: layout) { out in
            scalars.withUnsafeBufferPointer { src in
                WorkerPool.shared.parallelRanges(rows, minimumChunk: Swift.max(1, parallelElementThreshold / Swift.max(1, channels))) { range in
                    for r in range {
                        let s = src.baseAddress! + r * channels, d = out.baseAddress! + r * channels
                        for i in 0..<groups {
                            for j in 0..<perGroup { d[j * groups + i] = s[i * perGroup + j] }
                        }
                    }
                }
            }
        }
    }

    // MARK: Reductions

    /// Sum of all elements: 16 float lanes over blocks of 1024 elements, blocks accumulated in double precision.
    public func sum() -> Float {
        scalars.withUnsafeBufferPointer { x in
            var total = 0.0
            var start = 0
            while start + 16 <= x.count {
                let end = Swift.min(x.count - (x.count - start) % 16, start + 1024)
                var lanes = SIMD16<Float>()
                var i = start
                while i < end {
                    lanes += SIMD16<Float>(UnsafeBufferPointer(rebasing: x[i..<(i + 16)]))
                    i += 16
                }
                total += Double(lanes.sum())
                start = end
            }
            for i in start..<x.count { total += Double(x[i]) }
            return Float(total)
        }
    }

    /// Mean of all elements (0 for an empty tensor).
    public func mean() -> Float { count == 0 ? 0 : Float(Double(sum()) / Double(count)) }

    /// Sums over `axes` (negative counts from the end), keeping them as dimensions of size 1.
    public func sum(alongAxes axes: [Int]) -> Tensor {
        let normalized = Set(axes.map { $0 < 0 ? rank + $0 : $0 })
        precondition(normalized.allSatisfy { $0 >= 0 && $0 < rank }, "sum(alongAxes:): axes \(axes) out of range for \(shape)")
        var result = self
        for ax in normalized.sorted() {
            let outer = result.shape[..<ax].reduce(1, *)
            let length = result.shape[ax]
            let inner = result.shape[(ax + 1)...].reduce(1, *)
            var newShape = result.shape
            newShape[ax] = 1
            let source = result
            result = Tensor(shape: newShape, layout: layout) { out in
                out.update(repeating: 0)
                source.scalars.withUnsafeBufferPointer { src in
                    for o in 0..<outer {
                        let d = out.baseAddress! + o * inner
                        for l in 0..<length {
                            let s = src.baseAddress! + (o * length + l) * inner
                            for i in 0..<inner { d[i] += s[i] }
                        }
                    }
                }
            }
        }
        return result
    }

    /// Sums over `axes`, keeping them as dimensions of size 1 (variadic form).
    public func sum(alongAxes axes: Int...) -> Tensor { sum(alongAxes: axes) }

    /// The largest element (`-infinity` for an empty tensor; NaN if any element is NaN).
    public func max() -> Float {
        scalars.withUnsafeBufferPointer { x in
            var best = -Float.infinity
            for v in x {
                if v.isNaN { return Float.nan }
                if v > best { best = v }
            }
            return best
        }
    }

    /// Index of the largest element along `axis` for every other index, in row-major order of the remaining
    /// dimensions (for `[N, classes]` and `axis: 1`, the predicted class of each sample). Ties go to the first.
    public func argmax(axis: Int) -> [Int] {
        let ax = axis < 0 ? rank + axis : axis
        precondition(ax >= 0 && ax < rank && shape[ax] > 0, "argmax: axis \(axis) invalid for \(shape)")
        let outer = shape[..<ax].reduce(1, *)
        let length = shape[ax]
        let inner = shape[(ax + 1)...].reduce(1, *)
        var result = [Int](repeating: 0, count: outer * inner)
        scalars.withUnsafeBufferPointer { x in
            for o in 0..<outer {
                for i in 0..<inner {
                    var best = x[o * length * inner + i], bestIndex = 0
                    for l in 1..<length where x[(o * length + l) * inner + i] > best {
                        best = x[(o * length + l) * inner + i]
                        bestIndex = l
                    }
                    result[o * inner + i] = bestIndex
                }
            }
        }
        return result
    }
}
