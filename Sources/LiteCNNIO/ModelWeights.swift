import Foundation
import LiteCNNLayers
import LiteCNNModels
import LiteCNNTensor

/// Metadata keys LiteCNN writes into weight files (see docs/WEIGHTS.md).
public enum WeightMetadataKey {
    /// The zoo name of the model (`mobilenet_v3_small`), so the file can rebuild its model.
    public static let model = "litecnn.model"
    /// The `ModelOptions` the model was built with, as JSON (`{"classCount":1000,"inputChannels":3,…}`).
    public static let options = "litecnn.options"
    /// Set to `pt` like PyTorch's `save_file`, so tools treat names and layouts as a PyTorch `state_dict`.
    public static let format = "format"
}

/// Names and shapes that do not match between a weight file and a model.
public enum WeightLoadingError: Error, CustomStringConvertible, Equatable {
    /// The file lacks tensors the model has (`missing`) or has tensors the model lacks (`unexpected`).
    case namesDiffer(file: String, missing: [String], unexpected: [String])
    /// A tensor exists in both with different shapes.
    case shapeMismatch(file: String, tensor: String, modelShape: [Int], fileShape: [Int])

    public var description: String {
        switch self {
        case let .namesDiffer(file, missing, unexpected):
            var lines = ["\(file): tensor names do not match the model"]
            if !missing.isEmpty { lines.append("  missing from the file (\(missing.count)): " + missing.joined(separator: ", ")) }
            if !unexpected.isEmpty { lines.append("  not in the model (\(unexpected.count)): " + unexpected.joined(separator: ", ")) }
            return lines.joined(separator: "\n")
        case let .shapeMismatch(file, tensor, model, fileShape):
            return "\(file): tensor '\(tensor)' has shape \(fileShape) in the file but \(model) in the model"
        }
    }
}

/// Writes every entry of `model.namedParameters()` (weights and buffers) under its torchvision-style name to a
/// safetensors file, as `F32`, atomically. `metadata` is stored in `__metadata__` (with `format: pt` added).
public func saveWeights(_ model: any Layer, to url: URL, metadata: [String: String] = [:]) throws {
    var fullMetadata = metadata
    if fullMetadata[WeightMetadataKey.format] == nil { fullMetadata[WeightMetadataKey.format] = "pt" }
    let tensors = model.namedParameters().map { (name: $0.name, tensor: $0.parameter.value) }
    try Safetensors.write(tensors, metadata: fullMetadata, to: url)
}

/// Loads a safetensors file into `model`'s parameters and buffers, by name.
///
/// - `strict`: every model name must be in the file and every file name in the model (like PyTorch's
///   `load_state_dict(strict=True)`); otherwise only common names are loaded. Shapes must match either way.
/// - `*.num_batches_tracked` entries (PyTorch BatchNorm counters) are ignored.
/// - Nothing is modified unless the whole file validates. F32 values load bit-exact; other dtypes are converted.
public func loadWeights(into model: any Layer, from url: URL, strict: Bool = true) throws {
    try loadWeights(into: model, from: Safetensors.File(contentsOf: url), strict: strict)
}

/// Loads an already-read safetensors file into `model` (see `loadWeights(into:from:strict:)` for the rules).
public func loadWeights(into model: any Layer, from file: Safetensors.File, strict: Bool = true) throws {
    let parameters = model.namedParameters()
    let modelNames = Set(parameters.map(\.name))
    let fileNames = file.names.filter { !$0.hasSuffix("num_batches_tracked") }
    if strict {
        let missing = parameters.map(\.name).filter { file.info(named: $0) == nil }
        let unexpected = fileNames.filter { !modelNames.contains($0) }
        if !missing.isEmpty || !unexpected.isEmpty {
            throw WeightLoadingError.namesDiffer(file: file.fileName, missing: missing, unexpected: unexpected)
        }
    }
    var updates: [(Parameter, Tensor)] = []
    for (name, parameter) in parameters {
        guard let info = file.info(named: name) else { continue }
        guard info.shape == parameter.shape else {
            throw WeightLoadingError.shapeMismatch(file: file.fileName, tensor: name, modelShape: parameter.shape, fileShape: info.shape)
        }
        var value = try file.tensor(named: name)
        value.layout = parameter.value.layout
        updates.append((parameter, value))
    }
    for (parameter, value) in updates { parameter.value = value }
}

// MARK: Zoo models

extension ModelOptions {
    /// The options as the JSON stored under `litecnn.options`.
    public var metadataJSON: String {
        var fields = ["\"classCount\":\(classCount)", "\"inputChannels\":\(inputChannels)"]
        if let width { fields.append("\"width\":\(width)") }
        if let groups { fields.append("\"groups\":\(groups)") }
        return "{" + fields.joined(separator: ",") + "}"
    }

    /// Parses the JSON stored under `litecnn.options`; unknown keys are refused.
    public init(metadataJSON text: String, file: String = "options") throws {
        func failure(_ reason: String) -> FileFormatError {
            FileFormatError(file: file, reason: "\(WeightMetadataKey.options): \(reason)")
        }
        let json: JSONValue
        do { json = try JSONParser.parse(Array(text.utf8)) } catch {
            throw failure("not valid JSON at character \(error.offset): \(error.reason)")
        }
        guard case let .object(members) = json else { throw failure("not a JSON object") }
        self.init()
        for (key, value, _) in members {
            switch key {
            case "classCount":
                guard let v = value.nonNegativeInteger else { throw failure("classCount must be a non-negative integer") }
                classCount = v
            case "inputChannels":
                guard let v = value.nonNegativeInteger else { throw failure("inputChannels must be a non-negative integer") }
                inputChannels = v
            case "width":
                guard case let .number(text) = value, let v = Double(text), v.isFinite else { throw failure("width must be a number") }
                width = v
            case "groups":
                guard let v = value.nonNegativeInteger else { throw failure("groups must be a non-negative integer") }
                groups = v
            default:
                throw failure("unknown option '\(key)'")
            }
        }
    }
}

/// Saves a zoo model with the metadata that rebuilds it (`litecnn.model`, `litecnn.options`).
public func saveZooModel(_ model: any Layer, name: String, options: ModelOptions, to url: URL,
                         metadata: [String: String] = [:]) throws {
    var all = metadata
    all[WeightMetadataKey.model] = name
    all[WeightMetadataKey.options] = options.metadataJSON
    try saveWeights(model, to: url, metadata: all)
}

/// Rebuilds the zoo model a file was saved from (its `litecnn.model` and `litecnn.options` metadata) and loads
/// its weights strictly.
public func loadZooModel(from url: URL) throws -> (name: String, options: ModelOptions, model: any Layer) {
    let file = try Safetensors.File(contentsOf: url)
    guard let name = file.metadata[WeightMetadataKey.model] else {
        throw FileFormatError(file: file.fileName, reason: "no '\(WeightMetadataKey.model)' metadata: the file does not say which model it holds")
    }
    let options = try file.metadata[WeightMetadataKey.options].map { try ModelOptions(metadataJSON: $0, file: file.fileName) }
        ?? ModelOptions()
    let model = try ModelZoo.build(name, options: options)
    try loadWeights(into: model, from: file, strict: true)
    return (name, options, model)
}
