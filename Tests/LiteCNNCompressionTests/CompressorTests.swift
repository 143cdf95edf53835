import Foundation
import LiteCNN
import XCTest

/// The whole pipeline on a small network: every stage's file really decodes to the weights it reports, pruned weights
/// stay zero and shared weights stay shared through fine-tuning, and the figures agree with the file.
final class CompressorTests: XCTestCase {
    func makeGraph(_ name: String = "squeezenet1_1", resolution: Int = 32) throws -> Graph {
        WeightInitialization.seed(5)
        let model = try ModelZoo.build(name, options: ModelOptions(classCount: 10))
        return try exportGraph(model, inputChannels: 3, height: resolution, width: resolution)
    }

    func makeCompressor(_ graph: Graph, plan: CompressionPlan, resolution: Int = 32) throws -> (Compressor, URL) {
        let data = ShapesDataset.splits(samples: 64, testSamples: 100, resolution: resolution, channels: 3, seed: 0)
        var configuration = TrainingConfiguration(model: "test", samples: 64, resolution: resolution, batchSize: 16,
                                                  learningRate: 0.01)
        configuration.channels = 3
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-compress-\(UUID().uuidString)")
        let compressor = try Compressor(graph: graph, imageShape: [3, resolution, resolution], plan: plan, data: data,
                                        configuration: configuration, workDirectory: work, evaluationBatch: 50)
        return (compressor, work)
    }

    func floats(_ graph: Graph, _ name: String) -> [Float] {
        guard case let .float(t)? = graph.initializers[name] else { return [] }
        return t.scalars
    }

    func testDeepCompressionStagesProduceTheFileTheyReport() throws {
        let graph = try makeGraph()
        let plan = CompressionPlan(sparsity: 0.6, bits: 4, huffman: true, finetuneEpochs: 1, finetuneLearningRate: 0.001)
        let (compressor, work) = try makeCompressor(graph, plan: plan)
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try compressor.run()
        XCTAssertEqual(result.stages.map(\.stage), ["fp32", "pruning", "weight sharing", "huffman"])
        // Sizes shrink stage by stage, and the last one is the file.
        for (a, b) in zip(result.stages, result.stages.dropFirst()) { XCTAssertLessThan(b.bytes, a.bytes, "\(a.stage) → \(b.stage)") }
        XCTAssertEqual(result.final.bytes, result.bytes.count)
        XCTAssertGreaterThan(result.final.ratio, 6, "60% zeros, 4-bit codes and Huffman beat fp32 by far")

        // The file decodes to pruned, shared weights: ≤ 16 values per layer with an exact 0, ≥ 60% zeros.
        let decoded = try CompressedModelFile.parse(result.bytes, source: "test").decodedGraph()
        for name in MagnitudePruning.prunableWeights(graph) {
            let w = floats(decoded, name)
            XCTAssertFalse(w.isEmpty, name)
            XCTAssertLessThanOrEqual(Set(w).count, 16, name)
            let zeros = w.filter { $0 == 0 }.count
            XCTAssertGreaterThanOrEqual(zeros, Int(0.6 * Double(w.count)), name)
        }
        // The decoded graph runs and gives the accuracy the report claims.
        let normalization = try TrainingConfiguration(model: "test").normalization(channels: 3)
        let transforms = try Evaluation.testTransforms(resolution: 32, channels: 3, mean: normalization.mean, std: normalization.std)
        let data = ShapesDataset.splits(samples: 64, testSamples: 100, resolution: 32, channels: 3, seed: 0)
        let metrics = try GraphEvaluation.evaluate(decoded, on: data.test, transforms: transforms, batchSize: 32)
        XCTAssertEqual(metrics.top1, result.final.top1, accuracy: 1e-9)
        XCTAssertNotNil(result.stages[1].top1BeforeFinetune)
    }

    func testLinearPerChannelQuantizationAndCalibration() throws {
        let graph = try makeGraph("mobilenet_v2")
        let plan = CompressionPlan(bits: 8, linear: true, perChannel: true, symmetric: true, calibration: "minmax",
                                   calibrationImages: 32)
        let (compressor, work) = try makeCompressor(graph, plan: plan)
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try compressor.run()
        XCTAssertEqual(result.stages.map(\.stage), ["fp32", "linear quantization", "int8 activations"])
        XCTAssertFalse(result.model.activationRanges.isEmpty)
        let model = try CompressedModelFile.parse(result.bytes, source: "test")
        XCTAssertEqual(model.activationRanges, result.model.activationRanges)
        for name in MagnitudePruning.prunableWeights(graph) {
            guard case let .linear(q)? = model.tensors[name]?.encoding else { return XCTFail("\(name) is not linear") }
            XCTAssertEqual(q.axis, 0, name)
            XCTAssertTrue(q.zeroPoints.allSatisfy { $0 == 0 }, name)
        }
        // 8-bit weights lose little on a random network's logits: the top-1 stays close.
        XCTAssertLessThan(abs(result.stages[1].top1 - result.stages[0].top1), 5)
        XCTAssertLessThan(Double(result.stages[1].bytes), Double(result.stages[0].bytes) / 3)
    }

    /// A small residual network (3×3 convolutions, BatchNorm, a skip, a classifier) exported to a graph.
    func smallResidualGraph() throws -> Graph {
        WeightInitialization.seed(9)
        func block(_ c: Int) -> any Layer {
            Residual(Sequential(Conv2D(c, c, kernelSize: 3, padding: 1, bias: false), BatchNorm2D(c), ReLU(),
                                Conv2D(c, c, kernelSize: 3, padding: 1, bias: false), BatchNorm2D(c)))
        }
        let model = Sequential(Conv2D(3, 24, kernelSize: 3, padding: 1, bias: false), BatchNorm2D(24), ReLU(),
                               Conv2D(24, 32, kernelSize: 3, stride: 2, padding: 1, bias: false), BatchNorm2D(32), ReLU(),
                               block(32), ReLU(), Conv2D(32, 48, kernelSize: 3, stride: 2, padding: 1), ReLU(),
                               GlobalAvgPool(), Linear(48, 40), ReLU(), Linear(40, 10))
        return try exportGraph(model, inputChannels: 3, height: 32, width: 32)
    }

    func testStructuredPruningAndLowRankShrinkTheGraph() throws {
        let graph = try smallResidualGraph()
        let plan = CompressionPlan(svdEnergy: 0.8, tuckerEnergy: 0.7, structuredReduction: 0.4)
        let (compressor, work) = try makeCompressor(graph, plan: plan)
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try compressor.run()
        XCTAssertEqual(result.stages.map(\.stage), ["fp32", "low rank", "structured pruning"])
        XCTAssertLessThan(result.stages[1].parameters, result.stages[0].parameters)
        XCTAssertLessThan(Double(result.stages[2].multiplyAdds), Double(result.stages[1].multiplyAdds) * 0.7)
        let decoded = try CompressedModelFile.parse(result.bytes, source: "test").decodedGraph()
        XCTAssertEqual(try StructuredPruning.multiplyAdds(decoded, imageShape: [3, 32, 32]), result.final.multiplyAdds)
        XCTAssertEqual(StructuredPruning.parameterCount(decoded), result.final.parameters)
    }

    /// `--layer-prune`: one layer's sparsity overrides --prune (by weight or layer name); an unknown name is an
    /// error that lists the prunable weights.
    func testLayerSparsityOverridesThePlan() throws {
        let graph = try makeGraph()
        let names = MagnitudePruning.prunableWeights(graph)
        let last = try XCTUnwrap(names.last), first = try XCTUnwrap(names.first)
        var plan = CompressionPlan(sparsity: 0.5)
        plan.layerSparsity = [String(last.dropLast(".weight".count)): 0.2, first: 0.9]
        let (compressor, work) = try makeCompressor(graph, plan: plan)
        defer { try? FileManager.default.removeItem(at: work) }
        let result = try compressor.run()
        let decoded = try CompressedModelFile.parse(result.bytes, source: "test").decodedGraph()
        func zeroShare(_ name: String) -> Double {
            let w = floats(decoded, name)
            return Double(w.filter { $0 == 0 }.count) / Double(max(1, w.count))
        }
        XCTAssertEqual(zeroShare(first), 0.9, accuracy: 0.02, first)
        XCTAssertEqual(zeroShare(last), 0.2, accuracy: 0.02, last)
        XCTAssertEqual(zeroShare(names[1]), 0.5, accuracy: 0.02, names[1])
        XCTAssertTrue(result.stages[1].detail.contains("\(first) 90%"), result.stages[1].detail)

        var wrong = CompressionPlan(sparsity: 0.5)
        wrong.layerSparsity = ["no.such.layer": 0.5]
        let (bad, badWork) = try makeCompressor(graph, plan: wrong)
        defer { try? FileManager.default.removeItem(at: badWork) }
        XCTAssertThrowsError(try bad.run()) { XCTAssertTrue("\($0)".contains("no.such.layer") && "\($0)".contains(first), "\($0)") }
        var outOfRange = CompressionPlan()
        outOfRange.layerSparsity = [first: 1.5]
        XCTAssertThrowsError(try outOfRange.validate()) { XCTAssertTrue("\($0)".contains("--layer-prune"), "\($0)") }
    }

    func testPlanValidationNamesTheFlag() {
        XCTAssertThrowsError(try CompressionPlan(bits: 9).validate()) { XCTAssertTrue("\($0)".contains("--bits"), "\($0)") }
        XCTAssertThrowsError(try CompressionPlan(sparsity: 1.2).validate()) { XCTAssertTrue("\($0)".contains("--prune"), "\($0)") }
        XCTAssertThrowsError(try CompressionPlan(tuckerEnergy: 0.5, spatialEnergy: 0.5).validate())
        XCTAssertThrowsError(try CompressionPlan(pruneSchedule: "agp:0-0.5@0-10/2").validate()) {
            XCTAssertTrue("\($0)".contains("--finetune-epochs"), "\($0)")
        }
        XCTAssertThrowsError(try CompressionPlan(perChannel: true).validate())
        XCTAssertThrowsError(try CompressionPlan(sparsity: 0.5, pruneSchedule: "agp:0-0.5@0-10/2", finetuneEpochs: 1).validate()) {
            XCTAssertTrue("\($0)".contains("--prune"), "\($0)")
        }
        // A schedule with per-layer final sparsities is a valid plan.
        XCTAssertNoThrow(try CompressionPlan(fcSparsity: 0.9, pruneSchedule: "agp:0-0.5@0-10/2", finetuneEpochs: 1).validate())
    }

    func testReportCarriesTheFigures() throws {
        let stage = StageResult(stage: "fp32", detail: "dense", bytes: 4_800_000, ratio: 1, top1: 57.5, top5: 80,
                                top1BeforeFinetune: nil, parameters: 1_200_000, nonZeroWeights: 1_200_000, multiplyAdds: 800_000_000)
        var small = stage
        small.stage = "huffman"
        small.bytes = 470_000
        small.ratio = 4_800_000 / 470_000
        let result = CompressionResult(stages: [stage, small], model: CompressedModel(graph: Graph()),
                                       bytes: [UInt8](repeating: 0, count: 470_000), plan: CompressionPlan(bits: 6))
        let summary = CompressionSummary(model: "squeezenet1_0", data: "shapes", output: "sq.lcz", result: result)
        let json = String(decoding: try JSONEncoder().encode(summary), as: UTF8.self)
        for key in ["\"bytes\":470000", "\"ratio\"", "\"top1_before\"", "\"top1_after\""] { XCTAssertTrue(json.contains(key), key) }
        let markdown = CompressionReport.markdown(summary)
        XCTAssertTrue(markdown.contains("| huffman |"))
        XCTAssertTrue(markdown.contains("470.0 KB"))
        let svg = CompressionReport.svg(summary)
        XCTAssertTrue(svg.hasPrefix("<svg"))
        XCTAssertEqual(svg.components(separatedBy: "<circle").count - 1, 2)
    }
}
