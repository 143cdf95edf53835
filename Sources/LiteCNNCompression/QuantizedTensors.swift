// The quantized forms of a weight tensor that the compressors produce and the compressed file format stores.
// Decoding is defined here once, so that the file decodes to exactly the weights the compressor put in the model.
import LiteCNNTensor

/// A tensor whose values are entries of a small codebook (Deep Compression's weight sharing).
///
/// `indices[i]` selects `codebook[indices[i]]` for element `i` (row-major over `shape`, ONNX/PyTorch layout: OIHW for
/// convolutions, `[out, in]` for linear layers). `bits` (1…8) bounds the codebook: `codebook.count ≤ 1 << bits`.
/// A pruned weight is an element whose value is exactly 0; a codebook that must represent pruned weights holds an
/// exact `0` entry (`zeroIndex`).
public struct CodebookTensor: Sendable, Equatable {
    public var shape: [Int]
    public var bits: Int
    public var codebook: [Float]
    public var indices: [UInt8]

    public init(shape: [Int], bits: Int, codebook: [Float], indices: [UInt8]) {
        precondition((1...8).contains(bits), "CodebookTensor: bits must be 1…8, got \(bits)")
        precondition(codebook.count <= 1 << bits, "CodebookTensor: \(codebook.count) entries for \(bits) bits")
        precondition(indices.count == shape.reduce(1, *), "CodebookTensor: \(indices.count) indices for shape \(shape)")
        self.shape = shape
        self.bits = bits
        self.codebook = codebook
        self.indices = indices
    }

    /// The index of an exact zero in the codebook, if there is one.
    public var zeroIndex: Int? { codebook.firstIndex(of: 0) }

    /// `codebook[indices[i]]` for every element.
    public func decoded() -> Tensor {
        var out = [Float](repeating: 0, count: indices.count)
        for i in 0..<indices.count { out[i] = codebook[Int(indices[i])] }
        return Tensor(shape: shape, scalars: out)
    }
}

/// A tensor stored as integers with scales: `value = Float(q − zeroPoint) · scale` (ONNX `DequantizeLinear`).
///
/// - `axis == nil`: one scale and zero point for the whole tensor (per-tensor).
/// - `axis == 0`: one per slice along dimension 0 (per-channel: output channels of a convolution or linear layer).
/// - `symmetric`: zero points are all 0 and the range is `[−(2^(b−1)−1), 2^(b−1)−1]`; otherwise `[0, 2^b − 1]`.
/// `values` holds the integers `q` row-major; every `q` lies in `range`.
public struct LinearQuantizedTensor: Sendable, Equatable {
    public var shape: [Int]
    public var bits: Int
    public var symmetric: Bool
    public var axis: Int?
    public var scales: [Float]
    public var zeroPoints: [Int32]
    public var values: [Int32]

    public init(shape: [Int], bits: Int, symmetric: Bool, axis: Int?, scales: [Float], zeroPoints: [Int32], values: [Int32]) {
        precondition((2...16).contains(bits), "LinearQuantizedTensor: bits must be 2…16, got \(bits)")
        let groups = axis == nil ? 1 : shape[axis!]
        precondition(scales.count == groups && zeroPoints.count == groups, "LinearQuantizedTensor: \(scales.count) scales for \(groups) groups")
        precondition(values.count == shape.reduce(1, *), "LinearQuantizedTensor: \(values.count) values for shape \(shape)")
        self.shape = shape
        self.bits = bits
        self.symmetric = symmetric
        self.axis = axis
        self.scales = scales
        self.zeroPoints = zeroPoints
        self.values = values
    }

    /// The integer range of `bits` in this scheme.
    public var range: ClosedRange<Int32> {
        symmetric ? -(Int32(1) << (bits - 1) - 1)...(Int32(1) << (bits - 1) - 1) : 0...(Int32(1) << bits - 1)
    }

    /// Elements per quantization group (the product of the dimensions after `axis`; all elements when per-tensor).
    public var groupStride: Int { axis == nil ? values.count : shape.dropFirst(axis! + 1).reduce(1, *) }

    /// `Float(q − zeroPoint) · scale` for every element (Float arithmetic, exactly as written here).
    public func decoded() -> Tensor {
        var out = [Float](repeating: 0, count: values.count)
        let stride = Swift.max(1, groupStride), groups = scales.count
        for i in 0..<values.count {
            let g = axis == nil ? 0 : (i / stride) % groups
            out[i] = Float(values[i] - zeroPoints[g]) * scales[g]
        }
        return Tensor(shape: shape, scalars: out)
    }
}

/// How one weight tensor is stored: its values' representation. Sparsity (dropping the zeros and coding positions as
/// relative indices) is a separate choice of the file writer, applied on top of any of these.
public enum WeightEncoding: Sendable, Equatable {
    /// Plain 32-bit floats.
    case float32(Tensor)
    /// IEEE half precision; the tensor's values must already be exactly representable (`Float16` rounded).
    case float16(Tensor)
    /// Weight sharing: codebook indices.
    case codebook(CodebookTensor)
    /// Linear (affine) integer quantization.
    case linear(LinearQuantizedTensor)

    public var shape: [Int] {
        switch self {
        case let .float32(t), let .float16(t): return t.shape
        case let .codebook(c): return c.shape
        case let .linear(q): return q.shape
        }
    }

    /// The exact float values this encoding stands for.
    public func decoded() -> Tensor {
        switch self {
        case let .float32(t), let .float16(t): return t
        case let .codebook(c): return c.decoded()
        case let .linear(q): return q.decoded()
        }
    }
}
