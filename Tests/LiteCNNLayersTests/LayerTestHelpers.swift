import LiteCNNLayers
import LiteCNNTensor
import _TestSupport

/// A tensor whose values are distinct and at least `spacing` apart (a seeded permutation of an evenly spaced grid
/// centred on zero, none of them zero): finite differences with a step below `spacing / 2` never cross a kink of
/// ReLU or a tie of max pooling.
func spacedTensor(_ shape: [Int], seed: UInt64, spacing: Float = 0.05) -> Tensor {
    let count = shape.reduce(1, *)
    var values = (0..<count).map { (Float($0) - Float(count - 1) / 2 + (count % 2 == 1 ? 0.5 : 0)) * spacing }
    var generator = SeededGenerator(seed: seed)
    values.shuffle(using: &generator)
    return Tensor(shape: shape, scalars: values)
}

/// A tensor from nested per-element values given in NHWC order.
func nhwc(_ n: Int, _ h: Int, _ w: Int, _ c: Int, _ values: [Float]) -> Tensor {
    Tensor(shape: [n, h, w, c], scalars: values)
}
