import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn run MODEL --input x.npy --output y.npy`: one inference on a NumPy array.
struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run a model on a .npy array and save the output as .npy.",
        discussion: """
        The input is float32 (or any dtype LiteCNN's .npy reader converts) in PyTorch's layout: [N, C, H, W], or \
        [C, H, W] for one image (the output then keeps its batch dimension of 1). The output is what the graph \
        computes — [N, classes] logits for the zoo — written atomically as little-endian float32 .npy.

        MODEL is an .onnx file, a weights file written by `litecnn weights` (the model is rebuilt from its \
        metadata) or a zoo name (seeded random weights, --seed). For zoo names and weights files the graph is built \
        for the input's height and width unless --resolution says otherwise.

        Examples:
          litecnn run mobilenet_v2.onnx --input x.npy --output logits.npy --threads 2
          litecnn run mnv3s.safetensors --input batch.npy --output out.npy
          python -c "import numpy as np; print(np.load('logits.npy').argmax(1))"
        """
    )

    @OptionGroup var source: ModelSourceArguments

    @Option(help: ArgumentHelp("Input array (.npy, [N, C, H, W] or [C, H, W]).", valueName: "file"))
    var input: String

    @Option(help: ArgumentHelp("Where to write the output (.npy, float32).", valueName: "file"))
    var output: String

    @Option(help: ArgumentHelp("Threads to compute with (default: all cores, or LITECNN_THREADS).", valueName: "n"))
    var threads: Int?

    func validate() throws {
        if let threads, !(1...1024).contains(threads) {
            throw ValidationError("--threads must be between 1 and 1024, got \(threads)")
        }
    }

    func run() throws {
        let inputURL = URL(fileURLWithPath: input)
        var tensor: Tensor
        do { tensor = try NPY.read(inputURL) } catch {
            throw CommandError("\(input): cannot read the input: \(error)")
        }
        if tensor.rank == 3 { tensor = tensor.reshaped(to: [1] + tensor.shape) }
        guard tensor.rank == 4 else {
            throw CommandError("\(input): shape \(tensor.shape) is not an image batch; expected [N, C, H, W] (float32, as PyTorch) or [C, H, W]")
        }
        guard tensor.shape.allSatisfy({ $0 > 0 }) else {
            throw CommandError("\(input): shape \(tensor.shape) has an empty dimension")
        }
        tensor.layout = .nchw

        // Zoo names and weights files are exported for the input's spatial size unless --resolution is given.
        var arguments = source
        let kind = try ModelSource.classify(source.model)
        if !kind.isGraphFile, arguments.resolution == nil {
            guard tensor.shape[2] == tensor.shape[3] else {
                throw CommandError("\(input): shape \(tensor.shape) is not square; zoo models are exported for square images (H = W)")
            }
            arguments.resolution = tensor.shape[2]
        }
        var loaded = try arguments.load()
        let expected = loaded.imageShape
        if Array(tensor.shape.dropFirst()) != expected || (loaded.fixedBatch.map { $0 != tensor.shape[0] } ?? false) {
            let batch = loaded.fixedBatch.map(String.init) ?? "N"
            throw CommandError("\(input): shape \(tensor.shape) does not match the model's input; \(loaded.label) expects "
                               + "[\(batch), \(expected.map(String.init).joined(separator: ", "))] (NCHW float32)")
        }

        if let threads { WorkerPool.shared.threadCount = threads }
        WorkerPool.shared.bindCallingThread()  // this thread runs every inference: keep it off the workers' processors
        let engine: InferenceEngine
        do { engine = try InferenceEngine(graph: loaded.takeGraph(), options: InferenceOptions(threads: threads)) } catch {
            throw CommandError("\(loaded.label): cannot plan the graph: \(error)")
        }
        let result: Tensor
        do { result = try engine.run(tensor) } catch {
            throw CommandError("\(loaded.label): inference failed on \(input) \(tensor.shape): \(error)")
        }
        let outputURL = URL(fileURLWithPath: output)
        do { try NPY.write(result, to: outputURL) } catch {
            throw CommandError("\(output): cannot write the output: \(error)")
        }
        print("\(loaded.label): \(tensor.shape) → \(result.shape), wrote \(outputURL.path)")
    }
}
