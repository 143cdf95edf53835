// Evaluation of a classifier on a data set (eval mode, no augmentation), and the preprocessing pipelines a training
// configuration implies for its training and test images.
import LiteCNNData
import LiteCNNLayers
import LiteCNNTensor

/// Runs models over data sets and builds the transform pipelines of a run.
public enum Evaluation {
    /// Evaluates `model` (switched to eval mode: BatchNorm uses running statistics, Dropout is the identity) on every
    /// sample of `dataset`, in order, `batchSize` images at a time after `transforms`.
    ///
    /// The loss is the cross-entropy without label smoothing. `progress(done, total)` is called after every batch
    /// with sample counts. Throws when the data cannot be read or its labels do not fit the model's outputs.
    public static func evaluate(_ model: any Layer, on dataset: any Dataset, transforms: [any ImageTransform],
                                batchSize: Int, progress: ((Int, Int) -> Void)? = nil) throws -> ClassificationMetrics {
        precondition(batchSize >= 1, "Evaluation.evaluate: batchSize must be ≥ 1")
        model.eval()
        let classes = dataset.classCount
        var metrics = ClassificationMetrics(classCount: classes)
        let criterion = SoftmaxCrossEntropy()
        let loader = DataLoader(dataset: dataset, batchSize: batchSize, shuffle: false, dropLast: false,
                                transforms: transforms, seed: 0)
        let iterator = loader.epoch(0)
        while let batch = try iterator.next() {
            let logits = model.forward(batch.images)
            guard logits.rank == 2, logits.shape[0] == batch.labels.count, logits.shape[1] == classes else {
                throw TrainingError.invalidConfiguration(
                    "the model outputs \(logits.shape) for a batch of \(batch.labels.count) but the data has \(classes) classes")
            }
            let loss = criterion.loss(logits: logits, labels: batch.labels)
            metrics.add(logits: logits, labels: batch.labels, meanLoss: loss)
            progress?(metrics.count, dataset.count)
        }
        return metrics
    }

    /// The test pipeline: `StandardTransforms.evaluation` (channel conversion, resize of the shorter side, centre crop
    /// to `resolution`², normalize). Throws naming `--resolution`, `--channels` or `--mean/--std` when they are refused.
    public static func testTransforms(resolution: Int, channels: Int, mean: [Float], std: [Float]) throws -> [any ImageTransform] {
        try StandardTransforms.checkParameters(resolution: resolution, channels: channels, mean: mean, std: std)
        return StandardTransforms.evaluation(resolution: resolution, channels: channels, mean: mean, std: std)
    }

    /// The training pipeline: `StandardTransforms.training` with `augmentation` (an `Augmentation` raw value).
    public static func trainTransforms(resolution: Int, channels: Int, augmentation: String, mean: [Float],
                                       std: [Float]) throws -> [any ImageTransform] {
        guard let recipe = Augmentation(rawValue: augmentation) else {
            throw TrainingError.invalidConfiguration("--augment must be one of \(Augmentation.allCases.map(\.rawValue).joined(separator: ", ")), got \(augmentation)")
        }
        try StandardTransforms.checkParameters(resolution: resolution, channels: channels, mean: mean, std: std)
        return StandardTransforms.training(resolution: resolution, channels: channels, mean: mean, std: std, augmentation: recipe)
    }
}
