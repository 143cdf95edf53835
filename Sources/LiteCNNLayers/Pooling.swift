import LiteCNNTensor

// 2-D pooling over NHWC tensors. Every pooling layer reduces to windows along height and along width; a window is
// a clipped input range `start..<end` plus the size it counts for when averaging (`divisor`). The inner loops run
// over the contiguous channel axis.

/// One pooling window along one spatial axis.
struct PoolWindow {
    /// First and one-past-last input index, clipped to the input.
    var start: Int, end: Int
    /// The extent the window counts for in an average (`count_include_pad` size or the clipped size).
    var divisor: Int
}

/// Output length of a pooling window sweep (PyTorch's `pooling_output_shape`): with `ceilMode`, the length rounds
/// up, but the last window must start inside the input or the left padding.
func pooledLength(_ input: Int, kernel: Int, stride: Int, padding: Int, ceilMode: Bool) -> Int {
    let span = input + 2 * padding - kernel
    precondition(span >= 0, "pooling: kernel \(kernel) larger than padded input \(input + 2 * padding)")
    var length = (ceilMode ? (span + stride - 1) / stride : span / stride) + 1
    if ceilMode && (length - 1) * stride >= input + padding { length -= 1 }
    return length
}

/// Windows of a fixed-kernel pooling along one axis. `divisor` counts padding (but not the part of a ceil-mode
/// window beyond the right padding) when `countPadding`, otherwise only input elements (PyTorch's avg_pool2d).
func slidingWindows(_ input: Int, kernel: Int, stride: Int, padding: Int, ceilMode: Bool, countPadding: Bool) -> [PoolWindow] {
    let length = pooledLength(input, kernel: kernel, stride: stride, padding: padding, ceilMode: ceilMode)
    return (0..<length).map { o in
        let rawStart = o * stride - padding
        let paddedEnd = min(rawStart + kernel, input + padding)
        let start = max(rawStart, 0), end = min(paddedEnd, input)
        return PoolWindow(start: start, end: end, divisor: countPadding ? paddedEnd - rawStart : end - start)
    }
}

/// Adaptive windows (PyTorch): `start = ⌊i·input/output⌋`, `end = ⌈(i+1)·input/output⌉`.
func adaptiveWindows(_ input: Int, output: Int) -> [PoolWindow] {
    (0..<output).map { i in
        let start = i * input / output, end = ((i + 1) * input + output - 1) / output
        return PoolWindow(start: start, end: end, divisor: end - start)
    }
}

/// Average pooling over given windows: `out[n, i, j, c] = Σ_window x / (divisor_i · divisor_j)`.
func averagePool(_ input: Tensor, rows: [PoolWindow], columns: [PoolWindow]) -> Tensor {
    precondition(input.rank == 4, "average pooling expects NHWC input, got \(input.shape)")
    let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let (oh, ow) = (rows.count, columns.count)
    return Tensor(shape: [n, oh, ow, c], layout: .nhwc) { out in
        input.scalars.withUnsafeBufferPointer { x in
            parallelRows(n * oh, rowLength: ow * c * 4) { range in
                for row in range {
                    let b = row / oh, rw = rows[row % oh]
                    for (j, cw) in columns.enumerated() {
                        let o = out.baseAddress! + ((b * oh + row % oh) * ow + j) * c
                        for k in 0..<c { o[k] = 0 }
                        for ih in rw.start..<rw.end {
                            for iw in cw.start..<cw.end {
                                let s = x.baseAddress! + ((b * h + ih) * w + iw) * c
                                for k in 0..<c { o[k] += s[k] }
                            }
                        }
                        let scale = 1 / Float(rw.divisor * cw.divisor)
                        for k in 0..<c { o[k] *= scale }
                    }
                }
            }
        }
    }
}

/// The gradient of `averagePool`: each output gradient spread evenly (÷ divisor) over its window.
func averagePoolBackward(_ gradOutput: Tensor, inputShape: [Int], rows: [PoolWindow], columns: [PoolWindow]) -> Tensor {
    let (n, h, w, c) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    let (oh, ow) = (rows.count, columns.count)
    precondition(gradOutput.shape == [n, oh, ow, c], "average pooling backward: gradient \(gradOutput.shape) vs output \([n, oh, ow, c])")
    return Tensor(shape: inputShape, layout: .nhwc) { dx in
        dx.update(repeating: 0)
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            // Windows of one image overlap, so images are the unit of parallel work.
            WorkerPool.shared.parallelRanges(n) { batch in
                for b in batch {
                    for (i, rw) in rows.enumerated() {
                        for (j, cw) in columns.enumerated() {
                            let g = dy.baseAddress! + ((b * oh + i) * ow + j) * c
                            let scale = 1 / Float(rw.divisor * cw.divisor)
                            for ih in rw.start..<rw.end {
                                for iw in cw.start..<cw.end {
                                    let d = dx.baseAddress! + ((b * h + ih) * w + iw) * c
                                    for k in 0..<c { d[k] += g[k] * scale }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// 2-D max pooling (`torch.nn.MaxPool2d`, dilation 1).
///
/// - Input: NHWC `[N, H, W, C]`; output `[N, H', W', C]` with
///   `H' = ⌊(H + 2·padding − kernelSize) / stride⌋ + 1` (`⌈…⌉` with `ceilMode`, dropping a last window that would
///   start beyond the input and left padding), likewise `W'`. Padding never wins the max.
/// - Backward routes each output gradient to the first maximum of its window in row-major order (as PyTorch).
public final class MaxPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let ceilMode: Bool
    public var isTraining = false
    private var savedArgmax: [Int32] = []
    private var savedInputShape: [Int] = []

    /// `stride` defaults to `kernelSize` (PyTorch). `padding` must be at most half the kernel.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false) {
        precondition(kernelSize > 0 && (stride ?? kernelSize) > 0, "MaxPool2D: kernel size and stride must be positive")
        precondition(padding >= 0 && padding <= kernelSize / 2, "MaxPool2D: padding \(padding) must be in 0...kernelSize/2")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
        self.ceilMode = ceilMode
    }

    func windows(_ length: Int) -> [PoolWindow] {
        slidingWindows(length, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode, countPadding: false)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == 4, "MaxPool2D expects NHWC input, got \(inputShape)")
        return [inputShape[0],
                pooledLength(inputShape[1], kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode),
                pooledLength(inputShape[2], kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode),
                inputShape[3]]
    }

    public func forward(_ input: Tensor) -> Tensor {
        let shape = outputShape(for: input.shape)
        let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
        let rows = windows(h), columns = windows(w)
        let (oh, ow) = (shape[1], shape[2])
        let training = isTraining
        var argmax = [Int32](repeating: 0, count: training ? n * oh * ow * c : 0)
        let output = Tensor(shape: shape, layout: .nhwc) { out in
            input.scalars.withUnsafeBufferPointer { x in
                argmax.withUnsafeMutableBufferPointer { indices in
                    parallelRows(n * oh, rowLength: ow * c * kernelSize) { range in
                        for row in range {
                            let b = row / oh, rw = rows[row % oh]
                            for (j, cw) in columns.enumerated() {
                                let offset = ((b * oh + row % oh) * ow + j) * c
                                let o = out.baseAddress! + offset
                                for k in 0..<c { o[k] = -.infinity }
                                // Pass 1: the maxima (NaN wins, as in PyTorch).
                                for ih in rw.start..<rw.end {
                                    for iw in cw.start..<cw.end {
                                        let s = x.baseAddress! + ((b * h + ih) * w + iw) * c
                                        for k in 0..<c { o[k] = (s[k] > o[k] || s[k].isNaN) ? s[k] : o[k] }
                                    }
                                }
                                guard training else { continue }
                                // Pass 2 (training): the first position in row-major order holding each maximum.
                                let idx = indices.baseAddress! + offset
                                for k in 0..<c { idx[k] = -1 }
                                for ih in rw.start..<rw.end {
                                    for iw in cw.start..<cw.end {
                                        let spatial = Int32(ih * w + iw)
                                        let s = x.baseAddress! + ((b * h + ih) * w + iw) * c
                                        for k in 0..<c {
                                            let matches = s[k] == o[k] || s[k].isNaN
                                            idx[k] = idx[k] < 0 && matches ? spatial : idx[k]
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if training {
            savedArgmax = argmax
            savedInputShape = input.shape
        }
        return output
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!savedInputShape.isEmpty, "MaxPool2D.backward without a training-mode forward")
        let shape = outputShape(for: savedInputShape)
        precondition(gradOutput.shape == shape, "MaxPool2D.backward: gradient \(gradOutput.shape) vs output \(shape)")
        let (n, h, w, c) = (savedInputShape[0], savedInputShape[1], savedInputShape[2], savedInputShape[3])
        let perImage = shape[1] * shape[2]
        return Tensor(shape: savedInputShape, layout: .nhwc) { dx in
            dx.update(repeating: 0)
            gradOutput.scalars.withUnsafeBufferPointer { dy in
                savedArgmax.withUnsafeBufferPointer { indices in
                    WorkerPool.shared.parallelRanges(n) { batch in
                        for b in batch {
                            let image = dx.baseAddress! + b * h * w * c
                            for p in 0..<perImage {
                                let offset = (b * perImage + p) * c
                                for k in 0..<c {
                                    let spatial = Int(indices[offset + k])
                                    if spatial >= 0 { image[spatial * c + k] += dy[offset + k] }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// 2-D average pooling (`torch.nn.AvgPool2d`).
///
/// - Input: NHWC `[N, H, W, C]`; output shape as `MaxPool2D`.
/// - Each output is the window sum divided by the window size including padding (`countIncludePad`, PyTorch's
///   default; a ceil-mode window is clipped at the right padding first) or by the number of input elements in it.
public final class AvgPool2D: Layer {
    public let kernelSize: Int
    public let stride: Int
    public let padding: Int
    public let ceilMode: Bool
    public let countIncludePad: Bool
    public var isTraining = false
    private var savedInputShape: [Int] = []

    /// `stride` defaults to `kernelSize` (PyTorch). `padding` must be at most half the kernel.
    public init(kernelSize: Int, stride: Int? = nil, padding: Int = 0, ceilMode: Bool = false, countIncludePad: Bool = true) {
        precondition(kernelSize > 0 && (stride ?? kernelSize) > 0, "AvgPool2D: kernel size and stride must be positive")
        precondition(padding >= 0 && padding <= kernelSize / 2, "AvgPool2D: padding \(padding) must be in 0...kernelSize/2")
        self.kernelSize = kernelSize
        self.stride = stride ?? kernelSize
        self.padding = padding
        self.ceilMode = ceilMode
        self.countIncludePad = countIncludePad
    }

    func windows(_ length: Int) -> [PoolWindow] {
        slidingWindows(length, kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode,
                       countPadding: countIncludePad)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == 4, "AvgPool2D expects NHWC input, got \(inputShape)")
        return [inputShape[0],
                pooledLength(inputShape[1], kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode),
                pooledLength(inputShape[2], kernel: kernelSize, stride: stride, padding: padding, ceilMode: ceilMode),
                inputShape[3]]
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4, "AvgPool2D expects NHWC input, got \(input.shape)")
        if isTraining { savedInputShape = input.shape }
        return averagePool(input, rows: windows(input.shape[1]), columns: windows(input.shape[2]))
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!savedInputShape.isEmpty, "AvgPool2D.backward without a training-mode forward")
        return averagePoolBackward(gradOutput, inputShape: savedInputShape,
                                   rows: windows(savedInputShape[1]), columns: windows(savedInputShape[2]))
    }
}

/// Adaptive average pooling to a fixed output size (`torch.nn.AdaptiveAvgPool2d`).
///
/// - Input: NHWC `[N, H, W, C]`; output `[N, outputHeight, outputWidth, C]`.
/// - Output cell `i` averages input rows `⌊i·H/outputHeight⌋ ..< ⌈(i+1)·H/outputHeight⌉` (bins may overlap when the
///   sizes do not divide), likewise for columns.
public final class AdaptiveAvgPool2D: Layer {
    public let outputSize: (height: Int, width: Int)
    public var isTraining = false
    private var savedInputShape: [Int] = []

    public init(outputSize: (Int, Int)) {
        precondition(outputSize.0 > 0 && outputSize.1 > 0, "AdaptiveAvgPool2D: output size must be positive")
        self.outputSize = (outputSize.0, outputSize.1)
    }

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == 4, "AdaptiveAvgPool2D expects NHWC input, got \(inputShape)")
        return [inputShape[0], outputSize.height, outputSize.width, inputShape[3]]
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4, "AdaptiveAvgPool2D expects NHWC input, got \(input.shape)")
        if isTraining { savedInputShape = input.shape }
        return averagePool(input, rows: adaptiveWindows(input.shape[1], output: outputSize.height),
                           columns: adaptiveWindows(input.shape[2], output: outputSize.width))
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!savedInputShape.isEmpty, "AdaptiveAvgPool2D.backward without a training-mode forward")
        return averagePoolBackward(gradOutput, inputShape: savedInputShape,
                                   rows: adaptiveWindows(savedInputShape[1], output: outputSize.height),
                                   columns: adaptiveWindows(savedInputShape[2], output: outputSize.width))
    }
}

/// Global average pooling: NHWC `[N, H, W, C]` → `[N, C]` (PyTorch's `adaptive_avg_pool2d(x, 1)` + `flatten(1)`).
public final class GlobalAvgPool: Layer {
    public var isTraining = false
    private var savedInputShape: [Int] = []

    public init() {}

    public func outputShape(for inputShape: [Int]) -> [Int] {
        precondition(inputShape.count == 4, "GlobalAvgPool expects NHWC input, got \(inputShape)")
        return [inputShape[0], inputShape[3]]
    }

    public func forward(_ input: Tensor) -> Tensor {
        precondition(input.rank == 4, "GlobalAvgPool expects NHWC input, got \(input.shape)")
        if isTraining { savedInputShape = input.shape }
        return globalAveragePool(input)
    }

    public func backward(_ gradOutput: Tensor) -> Tensor {
        precondition(!savedInputShape.isEmpty, "GlobalAvgPool.backward without a training-mode forward")
        return globalAveragePoolBackward(gradOutput, inputShape: savedInputShape)
    }
}

/// `[N, H, W, C]` → `[N, C]` channel means.
func globalAveragePool(_ input: Tensor) -> Tensor {
    let (n, h, w, c) = (input.shape[0], input.shape[1], input.shape[2], input.shape[3])
    let pixels = h * w
    return Tensor(shape: [n, c], layout: .plain) { out in
        out.update(repeating: 0)
        input.scalars.withUnsafeBufferPointer { x in
            WorkerPool.shared.parallelRanges(n, minimumChunk: max(1, elementwiseParallelThreshold / max(1, pixels * c))) { batch in
                for b in batch {
                    let o = out.baseAddress! + b * c
                    for p in 0..<pixels {
                        let s = x.baseAddress! + (b * pixels + p) * c
                        for k in 0..<c { o[k] += s[k] }
                    }
                    let scale = 1 / Float(pixels)
                    for k in 0..<c { o[k] *= scale }
                }
            }
        }
    }
}

/// The gradient of `globalAveragePool`: `dx[n, h, w, c] = dy[n, c] / (H·W)`.
func globalAveragePoolBackward(_ gradOutput: Tensor, inputShape: [Int]) -> Tensor {
    let (n, h, w, c) = (inputShape[0], inputShape[1], inputShape[2], inputShape[3])
    precondition(gradOutput.count == n * c, "GlobalAvgPool.backward: gradient \(gradOutput.shape) vs output [\(n), \(c)]")
    let pixels = h * w
    let scale = 1 / Float(pixels)
    return Tensor(shape: inputShape, layout: .nhwc) { dx in
        gradOutput.scalars.withUnsafeBufferPointer { dy in
            parallelRows(n * pixels, rowLength: c) { range in
                for row in range {
                    let g = dy.baseAddress! + (row / pixels) * c, d = dx.baseAddress! + row * c
                    for k in 0..<c { d[k] = g[k] * scale }
                }
            }
        }
    }
}
