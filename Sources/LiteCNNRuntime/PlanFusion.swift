import LiteCNNGraph
import LiteCNNTensor

extension PlanBuilder {
    /// Plans compiled nodes `index` and `index + 1` as one `PointwiseDepthwiseConvolution` step when they are a
    /// pointwise convolution whose output only the following depthwise convolution reads, and the intermediate map is
    /// large enough to fall out of the cache between two layers (`minimumFusedIntermediateBytes` per image). Returns
    /// whether it did; otherwise nothing was planned.
    func planPointwiseDepthwise(at index: Int) throws -> Bool {
        guard index + 1 < graph.nodes.count, let p = graph.nodes[index].conv, let q = graph.nodes[index + 1].conv else {
            return false
        }
        let first = graph.nodes[index].node, second = graph.nodes[index + 1].node
        // The second reads only the first's output, which nothing else reads; both carry everything in their epilogues.
        guard alternativeTag(first) == nil, alternativeTag(second) == nil, !p.hasResidual, !q.hasResidual,
              p.post == nil, q.post == nil, let middle = first.outputs.first, second.inputs.first == middle,
              graph.consumers[middle] == 1, case let .activation(source)? = values[first.inputs[0]],
              source.shape.count == 4, source.shape[1] == p.inputChannelsPerGroup * p.groups else { return false }
        let (n, h, w) = (source.shape[0], source.shape[2], source.shape[3])
        let gp = p.geometry(batch: n, h: h, w: w), gd = q.geometry(batch: n, h: h, w: w)
        // The shapes (pads resolved): a 1×1, stride 1, unpadded, one group, feeding one channel per channel.
        guard PointwiseDepthwiseConvolution.supports(pointwise: gp, depthwise: gd), gd.outputHeight > 0,
              gd.outputWidth > 0,
              h * w * p.outputChannels * MemoryLayout<Float>.stride / WorkerPool.shared.threadCount
                >= Self.minimumFusedIntermediateBytes
        else { return false }
        node = first
        let x = try toNHWC(source)
        let out = newActivation([n, q.outputChannels, gd.outputHeight, gd.outputWidth], nhwc: true)
        let fused = prepared { PointwiseDepthwiseConvolution(pointwise: p.packed(for: gp), depthwise: q.packed(for: gd)) }
        let f = plan.frame, (src, dst) = (x.slot, out.slot), (pwAct, dwAct) = (p.epilogue, q.epilogue)
        let label = "Conv 1×1/1 dense + \(gd.kernelHeight)×\(gd.kernelWidth)/\(gd.strideH) depthwise, fused"
        emit(reads: [src], writes: [dst], label: label) {
            fused.value.forward(input: f[src], output: f[dst], pointwise: gp, depthwise: gd, pointwiseActivation: pwAct,
                                depthwiseActivation: dwAct)
        }
        node = second
        set(second.outputs[0], out)
        return true
    }

    /// The smallest share of one image's pointwise output per thread, in bytes, that `planPointwiseDepthwise` fuses.
    /// Below it the two layers run apart: each thread's part of the map stays in its 1 MB L2 between them, and bands
    /// only add their seams (MobileNet V1's 28×28×256 layers at two threads: 165 → 173 and 232 → 247 µs fused).
    static let minimumFusedIntermediateBytes = 1 << 20
}
