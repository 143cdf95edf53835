import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn export MODEL --onnx out.onnx`: a zoo model or weights file as an ONNX file.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Export a zoo model or a weights file to ONNX.",
        discussion: """
        The model is exported in inference mode (BatchNorm with its running statistics, no dropout) as a graph \
        with one input "input" of shape [batch, C, H, W] (the batch dimension is free) and one output "logits" \
        [batch, classes], with the parameters as initializers under their torchvision state_dict names. The file \
        is written to a temporary name and renamed, so a failed export leaves nothing behind. ONNX Runtime, \
        OpenVINO, onnx2torch and `litecnn run` / `litecnn bench` read it.

        Examples:
          litecnn export mobilenet_v3_small --onnx mnv3s.onnx
          litecnn export mnv3s.safetensors --onnx mnv3s.onnx --resolution 160
          litecnn export mobilenet_v2 --width 0.5 --classes 10 --resolution 96 --onnx small.onnx
        """
    )

    @OptionGroup var source: ModelSourceArguments

    @Option(help: ArgumentHelp("Where to write the ONNX file.", valueName: "file"))
    var onnx: String

    @Option(help: ArgumentHelp("ONNX opset version of the graph.", valueName: "version"))
    var opset: Int = 17

    func validate() throws {
        guard (7...23).contains(opset) else { throw ValidationError("--opset must be between 7 and 23, got \(opset)") }
    }

    func run() throws {
        let kind = try ModelSource.classify(source.model)
        if kind.isONNX {
            throw CommandError("\(source.model): is already an ONNX file; export takes a zoo name, a .safetensors weights file or a .lcz compressed model")
        }
        let loaded = try source.load(opset: opset)
        let url = URL(fileURLWithPath: onnx)
        do { try ONNXFile.write(loaded.graph, to: url) } catch {
            throw CommandError("\(onnx): cannot write the ONNX file: \(error)")
        }
        let size = (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? nil
        let input = "[N, " + loaded.imageShape.map(String.init).joined(separator: ", ") + "]"
        print("\(loaded.label): \(loaded.graph.nodes.count) nodes, input \(input), opset \(opset) → \(url.path)"
              + (size.map { " (\(ModelSummary.megabytes($0)) MB)" } ?? ""))
    }
}
