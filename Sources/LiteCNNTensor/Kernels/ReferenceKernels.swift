/// Naive reference kernels: the definition every fast kernel is tested against.
///
/// Straight loops, no blocking, no threads. Layouts as in `ConvGeometry` (NHWC activations, OIHW weights).
public enum ReferenceKernels {
    /// `output = conv(input, weight) + bias`. `output` is overwritten.
    public static func conv2dForward(input: UnsafePointer<Float>, weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     output: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (icg, ocg) = (g.inputChannelsPerGroup, g.outputChannelsPerGroup)
        for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow { for oc in 0..<g.outputChannels {
            let group = oc / ocg
            var sum: Float = bias?[oc] ?? 0
            for ky in 0..<g.kernelHeight {
                let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                if iy < 0 || iy >= g.inputHeight { continue }
                for kx in 0..<g.kernelWidth {
                    let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                    if ix < 0 || ix >= g.inputWidth { continue }
                    let inBase = ((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + group * icg
                    for ic in 0..<icg {
                        sum += input[inBase + ic] * weight[((oc * icg + ic) * g.kernelHeight + ky) * g.kernelWidth + kx]
                    }
                }
            }
            output[((n * oh + oy) * ow + ox) * g.outputChannels + oc] = sum
        } } } }
    }

    /// `gradInput = ∂L/∂input` given `gradOutput`. `gradInput` is overwritten.
    public static func conv2dBackwardInput(gradOutput: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                           gradInput: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (icg, ocg) = (g.inputChannelsPerGroup, g.outputChannelsPerGroup)
        gradInput.update(repeating: 0, count: g.batch * g.inputHeight * g.inputWidth * g.inputChannels)
        for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow { for oc in 0..<g.outputChannels {
            let group = oc / ocg
            let go = gradOutput[((n * oh + oy) * ow + ox) * g.outputChannels + oc]
            for ky in 0..<g.kernelHeight {
                let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                if iy < 0 || iy >= g.inputHeight { continue }
                for kx in 0..<g.kernelWidth {
                    let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                    if ix < 0 || ix >= g.inputWidth { continue }
                    let inBase = ((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + group * icg
                    for ic in 0..<icg {
                        gradInput[inBase + ic] += go * weight[((oc * icg + ic) * g.kernelHeight + ky) * g.kernelWidth + kx]
                    }
                }
            }
        } } } }
    }

    /// `gradWeight += ∂L/∂weight` given `gradOutput` (accumulates).
    public static func conv2dBackwardWeight(input: UnsafePointer<Float>, gradOutput: UnsafePointer<Float>,
                                            gradWeight: UnsafeMutablePointer<Float>, geometry g: ConvGeometry) {
        let (oh, ow) = (g.outputHeight, g.outputWidth)
        let (icg, ocg) = (g.inputChannelsPerGroup, g.outputChannelsPerGroup)
        for n in 0..<g.batch { for oy in 0..<oh { for ox in 0..<ow { for oc in 0..<g.outputChannels {
            let group = oc / ocg
            let go = gradOutput[((n * oh + oy) * ow + ox) * g.outputChannels + oc]
            for ky in 0..<g.kernelHeight {
                let iy = oy * g.strideH - g.padTop + ky * g.dilationH
                if iy < 0 || iy >= g.inputHeight { continue }
                for kx in 0..<g.kernelWidth {
                    let ix = ox * g.strideW - g.padLeft + kx * g.dilationW
                    if ix < 0 || ix >= g.inputWidth { continue }
                    let inBase = ((n * g.inputHeight + iy) * g.inputWidth + ix) * g.inputChannels + group * icg
                    for ic in 0..<icg {
                        gradWeight[((oc * icg + ic) * g.kernelHeight + ky) * g.kernelWidth + kx] += go * input[inBase + ic]
                    }
                }
            }
        } } } }
    }

    /// `C = alpha·op(A)·op(B) + beta·C` with `op(A)` m×k and `op(B)` k×n, row-major with leading dimensions.
    public static func gemm(transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                            a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
                            beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int) {
        for i in 0..<m { for j in 0..<n {
            var sum: Float = 0
            for p in 0..<k {
                let av = transA ? a[p * lda + i] : a[i * lda + p]
                let bv = transB ? b[j * ldb + p] : b[p * ldb + j]
                sum += av * bv
            }
            c[i * ldc + j] = alpha * sum + (beta == 0 ? 0 : beta * c[i * ldc + j])
        } }
    }
}
