import ArgumentParser
import LiteCNN

/// `litecnn summary MODEL`: the per-layer table of one model.
struct SummaryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "summary",
        abstract: "Show a model's layers with output shapes, parameters and multiply-adds.",
        discussion: """
        The model is traced (shapes only, no computation) on one square image. Layer paths are the prefixes of \
        the parameter names (features.3.block.0.0 → features.3.block.0.0.weight); output shapes are shown in \
        PyTorch's [N, C, H, W] order. The resolution is checked against every convolution and pooling first, so a \
        too-small image gives a message naming the layer and the smallest resolution that works.

        Examples:
          litecnn summary mobilenet_v3_small
          litecnn summary mobilenet_v2 --width 0.35 --resolution 96 --classes 10
          litecnn summary shufflenet_v1 --groups 8
          litecnn summary efficientnet_b0 --json | jq '.macs'
        """
    )

    @Argument(help: "Zoo name of the model (see `litecnn zoo`).")
    var model: String

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: ArgumentHelp("Input height and width in pixels (default: the model's published resolution).", valueName: "n"))
    var resolution: Int?

    @Flag(help: "Print JSON: {model, input_shape, output_shape, params, buffers, macs, fp32_bytes, layers: [{path, type, output_shape, params, macs}]}.")
    var json = false

    static let maximumResolution = 4096

    func validate() throws {
        if let resolution, !(1...Self.maximumResolution).contains(resolution) {
            throw ValidationError("--resolution must be between 1 and \(Self.maximumResolution), got \(resolution)")
        }
    }

    func run() throws {
        let (entry, network) = try modelArguments.build(model)
        let size = resolution ?? entry.defaultResolution
        do {
            try ModelSummary.checkResolution(of: network, inputChannels: modelArguments.inputChannels, resolution: size,
                                             probeResolution: entry.defaultResolution)
        } catch {
            throw CommandError("\(model): \(error)")
        }
        let summary = ModelSummary(model: network, inputShape: [1, size, size, modelArguments.inputChannels], name: model)
        print(json ? try encodeJSON(summary) : summary.renderTable())
    }
}
