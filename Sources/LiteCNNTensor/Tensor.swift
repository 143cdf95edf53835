/// A dense float32 tensor.
///
/// Storage is a contiguous, row-major `[Float]` (copy-on-write). `shape` lists the dimensions in memory order,
/// outermost first. Image activations are 4-D and **NHWC**: `[batch, height, width, channels]`, the layout the
/// kernels are fastest in on this CPU (see docs/ARCHITECTURE.md). Convolution weights keep PyTorch's layout
/// `[outputChannels, inputChannels / groups, kernelHeight, kernelWidth]` so that parameter files and names match
/// torchvision's `state_dict`.
///
/// `reshaped(to:)` is a view: it shares storage until one side is written.
public struct Tensor: Sendable, Equatable {
    public private(set) var shape: [Int]
    public var layout: Layout
    public var scalars: [Float]

    /// What the dimensions of a 4-D tensor mean. Other ranks use `.plain`.
    public enum Layout: String, Sendable, Equatable, Codable {
        case plain
        case nhwc
        case nchw
    }

    // MARK: Creation

    /// A tensor of `shape` filled with `value`.
    public init(shape: [Int], repeating value: Float = 0, layout: Layout? = nil) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in \(shape)")
        self.shape = shape
        self.layout = layout ?? (shape.count == 4 ? .nhwc : .plain)
        self.scalars = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor of `shape` holding `scalars` in row-major order.
    public init(shape: [Int], scalars: [Float], layout: Layout? = nil) {
        precondition(shape.reduce(1, *) == scalars.count,
                     "Tensor: \(scalars.count) scalars do not fill shape \(shape)")
        self.shape = shape
        self.layout = layout ?? (shape.count == 4 ? .nhwc : .plain)
        self.scalars = scalars
    }

    /// A tensor of `shape` whose storage is written by `initializer` (uninitialised memory, every element must be set).
    /// `hugePages` advises transparent huge pages for the storage (`adviseHugePages`): right for tensors that are read
    /// many times, wrong for data read once — such as weights decoded from a file before they are packed — because on
    /// a VM a huge page the host has not backed yet costs several times more to touch first than 4 KiB pages do.
    public init(shape: [Int], layout: Layout? = nil, hugePages: Bool = true,
                unsafeUninitialized initializer: (UnsafeMutableBufferPointer<Float>) -> Void) {
        let count = shape.reduce(1, *)
        self.shape = shape
        self.layout = layout ?? (shape.count == 4 ? .nhwc : .plain)
        self.scalars = [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            if hugePages { adviseHugePages(UnsafeMutableRawBufferPointer(buffer)) }
            initializer(buffer)
            initialized = count
        }
    }

    /// A tensor validated against user input: throws instead of trapping.
    public static func validated(shape: [Int], scalars: [Float], context: String) throws -> Tensor {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidShape(shape, context: context)
        }
        guard shape.reduce(1, *) == scalars.count else {
            throw TensorError.shapeMismatch(expected: shape, actual: [scalars.count], context: context)
        }
        return Tensor(shape: shape, scalars: scalars)
    }

    /// Zeros.
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(shape: shape) }

    /// A scalar tensor (shape `[]`).
    public init(_ value: Float) { self.init(shape: [], scalars: [value]) }

    // MARK: Properties

    public var rank: Int { shape.count }
    public var count: Int { scalars.count }

    /// Dimension `i` (negative counts from the end).
    public func dim(_ i: Int) -> Int { shape[i < 0 ? shape.count + i : i] }

    /// The single value of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "Tensor.scalar on a tensor of shape \(shape)")
        return scalars[0]
    }

    // MARK: Views and copies

    /// The same storage with a new shape of equal element count. `-1` in one place is inferred.
    public func reshaped(to newShape: [Int], layout: Layout? = nil) -> Tensor {
        var dims = newShape
        if let hole = dims.firstIndex(of: -1) {
            let known = dims.enumerated().filter { $0.offset != hole }.map(\.element).reduce(1, *)
            precondition(known > 0 && count % known == 0, "reshape: \(shape) cannot become \(newShape)")
            dims[hole] = count / known
        }
        precondition(dims.reduce(1, *) == count, "reshape: \(shape) (\(count) elements) cannot become \(newShape)")
        var out = self
        out.shape = dims
        out.layout = layout ?? (dims.count == 4 ? self.layout == .plain ? .nhwc : self.layout : .plain)
        return out
    }

    /// Reads element at a multi-index (slow; for tests and small tools).
    public subscript(index: Int...) -> Float {
        get { scalars[flatIndex(index)] }
        set { scalars[flatIndex(index)] = newValue }
    }

    @inlinable
    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "Tensor index \(index) for shape \(shape)")
        var flat = 0
        for (i, d) in zip(index, shape) {
            precondition(i >= 0 && i < d, "Tensor index \(index) out of bounds for shape \(shape)")
            flat = flat * d + i
        }
        return flat
    }

    /// Rows `range` of the outermost dimension, copied (batch slicing).
    public func slice(outer range: Range<Int>) -> Tensor {
        precondition(rank >= 1 && range.lowerBound >= 0 && range.upperBound <= shape[0], "slice \(range) of \(shape)")
        let inner = shape.dropFirst().reduce(1, *)
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, scalars: Array(scalars[(range.lowerBound * inner)..<(range.upperBound * inner)]),
                      layout: layout)
    }

    // MARK: Layout conversion

    /// NCHW → NHWC (a copy). The input is read as `[n, c, h, w]`.
    public func nchwToNHWC() -> Tensor {
        precondition(rank == 4, "nchwToNHWC needs a 4-D tensor, got \(shape)")
        let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
        return Tensor(shape: [n, h, w, c], layout: .nhwc) { out in
            scalars.withUnsafeBufferPointer { src in
                for b in 0..<n { for ch in 0..<c { for y in 0..<h { for x in 0..<w {
                    out[((b * h + y) * w + x) * c + ch] = src[((b * c + ch) * h + y) * w + x]
                } } } }
            }
        }
    }

    /// NHWC → NCHW (a copy). The input is read as `[n, h, w, c]`.
    public func nhwcToNCHW() -> Tensor {
        precondition(rank == 4, "nhwcToNCHW needs a 4-D tensor, got \(shape)")
        let (n, h, w, c) = (shape[0], shape[1], shape[2], shape[3])
        return Tensor(shape: [n, c, h, w], layout: .nchw) { out in
            scalars.withUnsafeBufferPointer { src in
                for b in 0..<n { for y in 0..<h { for x in 0..<w { for ch in 0..<c {
                    out[((b * c + ch) * h + y) * w + x] = src[((b * h + y) * w + x) * c + ch]
                } } } }
            }
        }
    }

    // MARK: Checks

    /// Throws when `shape` differs from `expected`; `-1` in `expected` matches anything.
    public func checkShape(_ expected: [Int], context: String) throws {
        guard expected.count == shape.count,
              zip(expected, shape).allSatisfy({ $0 == -1 || $0 == $1 }) else {
            throw TensorError.shapeMismatch(expected: expected, actual: shape, context: context)
        }
    }
}

/// Errors about tensors built from user input (files, command-line arguments).
public enum TensorError: Error, CustomStringConvertible, Equatable {
    case shapeMismatch(expected: [Int], actual: [Int], context: String)
    case invalidShape([Int], context: String)

    public var description: String {
        switch self {
        case let .shapeMismatch(expected, actual, context):
            let e = expected.map { $0 == -1 ? "?" : String($0) }.joined(separator: "×")
            return "\(context): expected shape [\(e)], got [\(actual.map(String.init).joined(separator: "×"))]"
        case let .invalidShape(shape, context):
            return "\(context): invalid shape \(shape)"
        }
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = scalars.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape), \(layout.rawValue)) [\(preview)\(count > 8 ? ", …" : "")]"
    }
}
