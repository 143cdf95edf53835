import LiteCNNGraph
import LiteCNNTensor

/// How one weight tensor is stored in a compressed model file: its value encoding, optionally sparse, optionally
/// Huffman-coded.
public struct StoredTensor: Sendable, Equatable {
    public var encoding: WeightEncoding
    /// Store only the non-zeros, with positions as relative indices (gaps) of `indexBits` bits, inserting padding
    /// zeros when a gap exceeds 2^indexBits − 1 (Deep Compression §2). Decoding restores the zeros exactly.
    /// "Zero" means, per encoding: a float whose bit pattern is +0.0; the codebook's zero entry (`zeroIndex`); an
    /// integer equal to its group's zero point.
    public var sparse: Bool
    public var indexBits: Int          // 1...16 (Deep Compression: 8 for conv, 5 for fc)
    /// Huffman-code the value indices (codebook/linear) and the gaps.
    public var huffman: Bool

    public init(encoding: WeightEncoding, sparse: Bool = false, indexBits: Int = 8, huffman: Bool = false) {
        precondition((1...16).contains(indexBits), "StoredTensor: indexBits must be 1…16, got \(indexBits)")
        self.encoding = encoding
        self.sparse = sparse
        self.indexBits = indexBits
        self.huffman = huffman
    }

    /// The exact float values the file decodes to.
    public func decoded() -> Tensor { encoding.decoded() }
}

/// A compressed model: the architecture, its encoded weights, activation ranges and metadata. The unit that
/// `CompressedModelFile` writes and reads.
public struct CompressedModel: Sendable {
    /// The architecture: nodes, inputs, outputs, metadata and small non-weight initializers (shape constants).
    public var graph: Graph
    /// Weights, keyed by initializer name (they replace/complete `graph.initializers`).
    public var tensors: [String: StoredTensor]
    /// Calibrated activation ranges for int8 (value name → [min, max]); may be empty.
    public var activationRanges: [String: ClosedRange<Float>]
    /// Free-form metadata (compression settings, accuracies).
    public var metadata: [String: String]

    public init(graph: Graph, tensors: [String: StoredTensor] = [:],
                activationRanges: [String: ClosedRange<Float>] = [:], metadata: [String: String] = [:]) {
        self.graph = graph
        self.tensors = tensors
        self.activationRanges = activationRanges
        self.metadata = metadata
    }

    /// `graph` with every tensor decoded into a float initializer (layout `.plain`, ONNX order) — what the
    /// runtime/export/eval consume. Throws when a tensor's name is also a graph input or a node output (it would
    /// shadow a computed value).
    public func decodedGraph() throws -> Graph {
        var g = graph
        let inputs = Set(graph.inputs.map(\.name))
        let produced = Set(graph.nodes.flatMap(\.outputs))
        for name in tensors.keys.sorted() {
            guard !inputs.contains(name) && !produced.contains(name) else {
                throw CompressedFileError(file: "<model>", section: "tensors", offset: 0, tensor: name,
                                          reason: "the tensor's name is also a graph input or a node output")
            }
            let t = tensors[name]!.decoded()
            g.initializers[name] = .float(Tensor(shape: t.shape, scalars: t.scalars, layout: .plain))
        }
        return g
    }
}
