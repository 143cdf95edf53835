import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn weights`: write freshly initialised weights of a zoo model, or list the tensors of a weight file.
struct WeightsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "weights",
        abstract: "Save a model's initial weights as safetensors, or inspect a safetensors file.",
        discussion: """
        Saving writes every parameter and buffer under its torchvision state_dict name (features.0.0.weight, \
        …running_mean) as F32, with metadata litecnn.model and litecnn.options so the file can rebuild its model \
        (see docs/WEIGHTS.md). The file is written to a temporary name and renamed, so a failed write leaves \
        nothing behind. Initialisation follows PyTorch's defaults and is reproducible with --seed.

        Inspecting validates the whole file (header, offsets, sizes) and lists its tensors; with --check it \
        also rebuilds the model named in the metadata and loads the weights into it strictly.

        Examples:
          litecnn weights mobilenet_v3_small --out mnv3s.safetensors --seed 42
          litecnn weights --inspect mnv3s.safetensors
          litecnn weights --inspect mnv3s.safetensors --check --json
        """
    )

    @Argument(help: "Zoo name of the model whose initial weights to save.")
    var model: String?

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: ArgumentHelp("Where to write the weights (.safetensors).", valueName: "file"))
    var out: String?

    @Option(help: "Seed of the weight initialisation.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("A safetensors file to validate and list.", valueName: "file"))
    var inspect: String?

    @Flag(help: "With --inspect: rebuild the model named in the file's metadata and load the weights into it.")
    var check = false

    @Flag(help: "With --inspect: print JSON ({file, metadata, tensors: [{name, dtype, shape, count}], total}).")
    var json = false

    func validate() throws {
        switch (model, inspect) {
        case (nil, nil): throw ValidationError("give a MODEL with --out FILE, or --inspect FILE")
        case (.some, .some): throw ValidationError("give either a MODEL or --inspect, not both")
        case (.some, nil):
            if out == nil { throw ValidationError("saving weights needs --out FILE") }
            if check || json { throw ValidationError("--check and --json go with --inspect") }
        case (nil, .some):
            if out != nil { throw ValidationError("--out goes with a MODEL, not with --inspect") }
        }
    }

    func run() throws {
        if let inspect { try runInspect(inspect) } else if let model, let out { try runSave(model, out) }
    }

    private func runSave(_ name: String, _ path: String) throws {
        WeightInitialization.seed(seed)
        let (_, network) = try modelArguments.build(name)
        let url = URL(fileURLWithPath: path)
        try saveZooModel(network, name: name, options: modelArguments.options, to: url,
                         metadata: ["litecnn.seed": String(seed)])
        let count = network.namedParameters().count
        print("wrote \(count) tensors (\(ModelSummary.grouped(network.parameterCount)) parameters) to \(url.path)")
    }

    struct Listing: Codable {
        struct Entry: Codable { var name: String; var dtype: String; var shape: [Int]; var count: Int }
        var file: String
        var metadata: [String: String]
        var tensors: [Entry]
        var total: Int
        var check: String?
    }

    private func runInspect(_ path: String) throws {
        let url = URL(fileURLWithPath: path)
        let file = try Safetensors.File(contentsOf: url)
        let entries = file.tensors.map {
            Listing.Entry(name: $0.name, dtype: $0.dtype.rawValue, shape: $0.shape, count: $0.shape.reduce(1, *))
        }
        var listing = Listing(file: url.path, metadata: file.metadata, tensors: entries,
                              total: entries.reduce(0) { $0 + $1.count })
        if check {
            let rebuilt = try loadZooModel(from: url)
            listing.check = "loads into \(rebuilt.name) (\(ModelSummary.grouped(rebuilt.model.parameterCount)) parameters)"
        }
        if json {
            print(try encodeJSON(listing))
            return
        }
        print("\(listing.file): \(entries.count) tensors, \(ModelSummary.grouped(listing.total)) values")
        for key in file.metadata.keys.sorted() { print("  \(key) = \(file.metadata[key]!)") }
        print(renderTable(header: ["Name", "Dtype", "Shape", "Values"],
                          rows: entries.map { [$0.name, $0.dtype, ModelSummary.shapeText($0.shape), ModelSummary.grouped($0.count)] },
                          rightAligned: [3]))
        if let result = listing.check { print("check: \(result)") }
    }
}
