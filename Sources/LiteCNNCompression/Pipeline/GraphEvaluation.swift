// Accuracy of a graph as the inference runtime computes it: what a compressed file really delivers.
import LiteCNNData
import LiteCNNGraph
import LiteCNNLayers
import LiteCNNRuntime
import LiteCNNTensor
import LiteCNNTraining

/// Evaluates graphs (ONNX semantics, NCHW input, `[N, classes]` output) with the `InferenceEngine`.
public enum GraphEvaluation {
    /// Top-1/top-5, loss and confusion of `graph` on every sample of `dataset`, in order, after `transforms`.
    /// A graph whose input has a fixed batch runs that many images at a time (the last batch is padded with copies
    /// whose outputs are ignored).
    public static func evaluate(_ graph: Graph, on dataset: any Dataset, transforms: [any ImageTransform],
                                batchSize: Int, threads: Int? = nil,
                                progress: ((Int, Int) -> Void)? = nil) throws -> ClassificationMetrics {
        precondition(batchSize >= 1, "GraphEvaluation.evaluate: batchSize must be ≥ 1")
        let engine = try InferenceEngine(graph: graph, options: InferenceOptions(threads: threads))
        let fixedBatch = graph.inputs.first?.shape?.first?.value
        let batch = fixedBatch ?? batchSize
        let classes = dataset.classCount
        var metrics = ClassificationMetrics(classCount: classes)
        let criterion = SoftmaxCrossEntropy()
        let loader = DataLoader(dataset: dataset, batchSize: batch, shuffle: false, dropLast: false,
                                transforms: transforms, seed: 0)
        let iterator = loader.epoch(0)
        while let next = try iterator.next() {
            var images = next.images
            let count = next.labels.count
            if let fixedBatch, count < fixedBatch {
                // Pad with copies of the first image so the fixed-batch graph can run.
                let per = images.count / count
                var scalars = images.scalars
                for _ in count..<fixedBatch { scalars += images.scalars[0..<per] }
                images = Tensor(shape: [fixedBatch] + Array(images.shape.dropFirst()), scalars: scalars)
            }
            var logits = try engine.runNHWC(images)
            guard logits.rank == 2, logits.shape[1] == classes else {
                throw CompressionError("the model outputs \(logits.shape) for a batch of \(images.shape[0]) but the data has \(classes) classes")
            }
            if logits.shape[0] != count {
                logits = Tensor(shape: [count, classes], scalars: Array(logits.scalars[0..<(count * classes)]))
            }
            let loss = criterion.loss(logits: logits, labels: next.labels)
            metrics.add(logits: logits, labels: next.labels, meanLoss: loss)
            progress?(metrics.count, dataset.count)
        }
        return metrics
    }
}
