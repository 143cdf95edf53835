import LiteCNNGraph
import LiteCNNTensor

/// A value that is another activation repeated along some axes: `source` (logical shape `sourceShape`) broadcast to
/// `shape`, where every axis of `sourceShape` is either equal to `shape`'s or 1. `flattened`: the value itself is
/// that broadcast flattened to `[shape[0], shape[1...].product]` (a `Flatten` or `Reshape` in between).
///
/// Why it matters: torchvision's VGG and AlexNet end their features with an adaptive average pool to 7×7 (6×6), so
/// that the classifier does not depend on the input size. Below 224×224 (VGG at 32×32, AlexNet at 64×64) the
/// features are 1×1 and the pool only *repeats* each channel 49 (36) times, which `AdaptiveAvgPool2D` exports as
/// identity `Slice`/`ReduceMean` bins and `Concat`s. The first fully connected layer then multiplies 25,088 inputs of
/// which only 512 differ, reading 411 MB of weights per image. Summing the weights of the repeated inputs gives the
/// same product from the 512 (8 MB): exact up to float rounding, and what the plan runs.
struct BroadcastValue {
    var source: Activation
    var sourceShape: [Int] { source.shape }
    var shape: [Int]
    var flattened = false

    func hasSameSource(as other: BroadcastValue) -> Bool {
        source.slot == other.source.slot && source.shape == other.source.shape && source.nhwc == other.source.nhwc
    }
}

extension PlanBuilder {
    private func activationShape(_ name: String) -> [Int]? {
        if let view = channelViews[name] { return view.shape }
        if case let .activation(a)? = values[name] { return a.shape }
        return nil
    }

    /// The broadcast that `name` is, or `name` itself as a trivial one (nil when it is neither an activation nor a
    /// view of all of one's channels in order).
    private func broadcastRecord(_ name: String) -> BroadcastValue? {
        if let r = broadcasts[name] { return r }
        if let view = channelViews[name] {
            guard view.channels == Array(0..<view.source.shape[1]) else { return nil }
            return BroadcastValue(source: view.source, shape: view.shape)
        }
        if case let .activation(a)? = values[name] { return BroadcastValue(source: a, shape: a.shape) }
        return nil
    }

    /// After a node is planned: records its output as a broadcast when it only moves or repeats a broadcast input —
    /// identity `Slice`s and `ReduceMean`s over axes of size 1, `Concat`s of copies along an axis where the source
    /// has size 1, and a `Flatten` of such a value. The node's own steps are unchanged; `planDense` reads the record.
    func noteBroadcast(_ node: Node) {
        guard let out = node.outputs.first, !out.isEmpty, let outShape = activationShape(out),
              let first = node.inputs.first, !first.isEmpty else { return }
        switch node.opType {
        case "Identity", "Dropout", "Cast":
            if let r = broadcastRecord(first), r.sourceShape != r.shape, activationShape(first) == outShape { broadcasts[out] = r }
        case "Slice", "ReduceMean":
            // Same shape in and out, and every touched axis of size 1: the output is the input.
            guard let inShape = activationShape(first), inShape == outShape, var r = broadcastRecord(first),
                  !r.flattened else { return }
            var axes: [Int]?
            if node.opType == "Slice" {
                axes = node.inputs.count > 3 ? constant(node.inputs[3])?.ints : Array(0..<inShape.count)
            } else {
                axes = opset >= 18 ? (node.inputs.count > 1 ? constant(node.inputs[1])?.ints : nil) : node.ints("axes")
                if axes == nil { axes = Array(0..<inShape.count) }
            }
            guard let touched = axes?.map({ $0 < 0 ? $0 + inShape.count : $0 }),
                  touched.allSatisfy({ $0 >= 0 && $0 < inShape.count && inShape[$0] == 1 }) else { return }
            r.shape = outShape
            broadcasts[out] = r
        case "Concat":
            guard let rawAxis = node.int("axis") else { return }
            let axis = rawAxis < 0 ? rawAxis + outShape.count : rawAxis
            guard axis > 0, axis < outShape.count else { return }
            let records = node.inputs.map { $0.isEmpty ? nil : broadcastRecord($0) }
            guard let r0 = records.first ?? nil, !r0.flattened, r0.sourceShape.count == outShape.count,
                  r0.sourceShape[axis] == 1,
                  records.allSatisfy({ $0 != nil && $0!.hasSameSource(as: r0) && !$0!.flattened })
            else { return }
            broadcasts[out] = BroadcastValue(source: r0.source, shape: outShape)
        case "Flatten", "Reshape":
            guard let r = broadcasts[first], !r.flattened, r.shape.count >= 2, r.sourceShape[0] == r.shape[0],
                  outShape == [r.shape[0], r.shape.dropFirst().reduce(1, *)] else { return }
            broadcasts[out] = BroadcastValue(source: r.source, shape: r.shape, flattened: true)
        default:
            break
        }
    }

    /// A dense layer whose input is a flattened broadcast: the layer over the source with the weights of repeated
    /// inputs summed (see `BroadcastValue`). Returns the smaller input and layer, or nil when nothing repeats.
    func denseOverBroadcast(_ p: ConvParams) -> (input: Activation, layer: ConvParams)? {
        guard let r = broadcasts[node.inputs[0]], r.flattened, r.sourceShape != r.shape, p.groups == 1,
              r.shape.dropFirst().reduce(1, *) == p.inputChannelsPerGroup else { return nil }
        let folded = p.foldedOverBroadcast(shape: Array(r.shape.dropFirst()), sourceShape: Array(r.sourceShape.dropFirst()))
        let plain = toPlain(r.source)
        let input = Activation(shape: [r.sourceShape[0], folded.inputChannelsPerGroup], nhwc: false, slot: alias(plain.slot))
        return (input, folded)
    }
}

extension ConvParams {
    /// This dense layer (`[O, K]` weights, K = `shape.product`) applied to the flattening of a value that repeats a
    /// `sourceShape` one to `shape`: the weights of inputs that are copies of one source element summed, giving
    /// `[O, sourceShape.product]`. Built once per shape pair and kept.
    func foldedOverBroadcast(shape: [Int], sourceShape: [Int]) -> ConvParams {
        let key = shape + [-1] + sourceShape
        return cachedFold(key) {
            let k = shape.reduce(1, *), ks = sourceShape.reduce(1, *)
            // Source index of every flattened input index: repeated axes contribute nothing.
            var sourceIndex = [Int](repeating: 0, count: k)
            let strides = contiguousStrides(sourceShape)
            var index = [Int](repeating: 0, count: shape.count)
            for flat in 0..<k {
                var s = 0
                for d in 0..<shape.count where sourceShape[d] != 1 { s += index[d] * strides[d] }
                sourceIndex[flat] = s
                var d = shape.count - 1
                while d >= 0 { index[d] += 1; if index[d] < shape[d] { break }; index[d] = 0; d -= 1 }
            }
            var folded = [Float](repeating: 0, count: outputChannels * ks)
            for o in 0..<outputChannels {
                let row = o * k, out = o * ks
                for flat in 0..<k { folded[out + sourceIndex[flat]] += weight[row + flat] }
            }
            let layer = ConvParams(weight: folded, bias: bias, outputChannels: outputChannels, inputChannelsPerGroup: ks,
                                   kernelH: 1, kernelW: 1, groups: 1, strides: strides1, dilations: dilations1,
                                   pads: [0, 0, 0, 0], autoPad: "NOTSET")
            layer.epilogue = epilogue
            layer.post = post
            return layer
        }
    }
}

private let strides1 = [1, 1], dilations1 = [1, 1]
