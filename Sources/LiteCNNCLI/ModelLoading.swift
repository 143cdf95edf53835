import ArgumentParser
import Foundation
import LiteCNN

/// What a MODEL argument of `run`, `bench` and `export` names.
///
/// - an ONNX file (`.onnx`, or any file whose bytes are not a safetensors header): loaded with `ONNXFile.load`;
/// - a LiteCNN weights file (`.safetensors` written by `litecnn weights`, with `litecnn.model` / `litecnn.options`
///   metadata): the zoo model is rebuilt, its weights loaded strictly, and the model exported to a graph;
/// - a compressed model (`.lcz` written by `litecnn compress`): decoded to its graph;
/// - a zoo name (`mobilenet_v2`): the model is built with seeded random weights (`--seed`) and exported.
enum ModelSource: Equatable {
    case onnx(URL)
    case weights(URL)
    case compressed(URL)
    case zoo(String)

    var isONNX: Bool { if case .onnx = self { return true } else { return false } }
    /// Whether MODEL is a file holding a whole graph (ONNX or compressed), whose input size is its own.
    var isGraphFile: Bool {
        switch self {
        case .onnx, .compressed: return true
        case .weights, .zoo: return false
        }
    }

    /// Classifies `argument`: an existing file by extension (then by its first bytes), otherwise a zoo name.
    /// Throws a message naming the argument and listing the known models when it is neither.
    static func classify(_ argument: String) throws -> ModelSource {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: argument, isDirectory: &isDirectory)
        if exists && isDirectory.boolValue {
            throw CommandError("\(argument): is a directory; MODEL is an .onnx file, a .safetensors weights file, a .lcz compressed model or a zoo name")
        }
        let url = URL(fileURLWithPath: argument)
        let ext = url.pathExtension.lowercased()
        if exists {
            switch ext {
            case "onnx": return .onnx(url)
            case "safetensors": return .weights(url)
            case CompressedModelFile.fileExtension: return .compressed(url)
            default:
                if CompressedModelFile.looksLikeCompressedModel(url) { return .compressed(url) }
                return looksLikeSafetensors(url) ? .weights(url) : .onnx(url)
            }
        }
        if ext == "onnx" || ext == "safetensors" || ext == CompressedModelFile.fileExtension {
            throw CommandError("\(argument): no such file")
        }
        if ModelZoo.names.contains(argument) { return .zoo(argument) }
        throw CommandError("'\(argument)' is neither a file nor a zoo model. MODEL is an .onnx file, a .safetensors "
                           + "weights file (litecnn weights) or one of:\n  " + ModelZoo.names.joined(separator: "\n  "))
    }

    /// A safetensors file starts with an 8-byte little-endian header length followed by `{`.
    private static func looksLikeSafetensors(_ url: URL) -> Bool {
        guard let handle = try? FileHandle(forReadingFrom: url) else { return false }
        defer { try? handle.close() }
        guard let head = try? handle.read(upToCount: 9), head.count == 9 else { return false }
        return head[head.startIndex + 8] == UInt8(ascii: "{")
    }
}

/// A model ready for the runtime: its graph and the NCHW input shape (without the batch) it expects.
struct LoadedModel {
    /// The graph with ONNX semantics (input NCHW).
    var graph: Graph
    /// A short label for messages and JSON (`mobilenet_v2`, `model.onnx`).
    var label: String
    /// Input `[channels, height, width]` for one image.
    var imageShape: [Int]
    /// Whether the batch dimension of the graph's input is free (a fixed batch must match what the user asks for).
    var fixedBatch: Int?

    /// The graph, leaving an empty one in its place: a command that hands the graph to an `InferenceEngine` keeps no
    /// second reference to the initializers, so their memory is freed once the engine has folded and packed them
    /// (for ResNet-18, 45 MB less resident memory at its peak).
    mutating func takeGraph() -> Graph {
        let taken = graph
        graph = Graph(name: graph.name, opsetVersion: graph.opsetVersion)
        return taken
    }
}

/// The MODEL argument and the options that build a zoo model, shared by `run`, `bench` and `export`.
struct ModelSourceArguments: ParsableArguments {
    @Argument(help: ArgumentHelp("An .onnx file, a .safetensors weights file written by `litecnn weights`, a .lcz file written by `litecnn compress`, or a zoo name (see `litecnn zoo`).",
                                 valueName: "model"))
    var model: String

    @OptionGroup(title: "Zoo models (ignored for .onnx and weights files, which carry their own)")
    var modelArguments: ModelArguments

    @Option(help: ArgumentHelp("Input height and width in pixels (default: the model's own; for an ONNX file with free spatial dimensions, 224).",
                               valueName: "n"))
    var resolution: Int?

    @Option(help: "Seed of the random weights of a zoo name.")
    var seed: UInt64 = 0

    static let maximumResolution = 4096

    func validate() throws {
        if let resolution, !(1...Self.maximumResolution).contains(resolution) {
            throw ValidationError("--resolution must be between 1 and \(Self.maximumResolution), got \(resolution)")
        }
    }

    /// The zoo model (from a name or a weights file) with its resolution and input channels; nil for an ONNX file.
    func buildLayer(_ source: ModelSource) throws -> (label: String, model: any Layer, inputChannels: Int, resolution: Int)? {
        switch source {
        case .onnx, .compressed:
            return nil
        case let .zoo(name):
            WeightInitialization.seed(seed)
            let (entry, network) = try modelArguments.build(name)
            network.eval()
            return (name, network, modelArguments.inputChannels, resolution ?? entry.defaultResolution)
        case let .weights(url):
            let loaded: (name: String, options: ModelOptions, model: any Layer)
            do { loaded = try loadZooModel(from: url) } catch {
                throw CommandError("\(url.path): cannot load the weights: \(error)")
            }
            loaded.model.eval()
            let defaultResolution = (try? ModelZoo.entry(named: loaded.name).defaultResolution) ?? 224
            return (loaded.name, loaded.model, loaded.options.inputChannels, resolution ?? defaultResolution)
        }
    }

    /// Loads MODEL as a graph: ONNX files directly, zoo names and weights files through `exportGraph`.
    func load(opset: Int = 17) throws -> LoadedModel {
        let source = try ModelSource.classify(model)
        if case let .onnx(url) = source {
            let graph: Graph
            do { graph = try ONNXFile.load(contentsOf: url) } catch {
                throw CommandError("\(url.path): cannot load the ONNX model: \(error)")
            }
            return try describe(graph, label: url.lastPathComponent, file: url.path)
        }
        if case let .compressed(url) = source {
            let graph: Graph
            do { graph = try CompressedModelFile.read(url).decodedGraph() } catch {
                throw CommandError("\(url.path): cannot load the compressed model: \(error)")
            }
            return try describe(graph, label: url.lastPathComponent, file: url.path)
        }
        guard let built = try buildLayer(source) else { preconditionFailure("buildLayer returns a model for zoo names and weights") }
        let graph: Graph
        do {
            graph = try exportGraph(built.model, inputChannels: built.inputChannels, height: built.resolution,
                                    width: built.resolution, dynamicBatch: true, opset: opset)
        } catch {
            throw CommandError("\(built.label): cannot export to a graph at \(built.resolution)×\(built.resolution): \(error)")
        }
        return LoadedModel(graph: graph, label: built.label,
                           imageShape: [built.inputChannels, built.resolution, built.resolution], fixedBatch: nil)
    }

    /// Reads the input shape of an imported graph (`[batch, C, H, W]`), applying `--resolution` to free dimensions.
    private func describe(_ graph: Graph, label: String, file: String) throws -> LoadedModel {
        guard let input = graph.inputs.first else { throw CommandError("\(file): the graph has no input") }
        guard graph.inputs.count == 1 else {
            throw CommandError("\(file): the graph has \(graph.inputs.count) inputs (\(graph.inputs.map(\.name).joined(separator: ", "))); "
                               + "litecnn runs single-input image models")
        }
        guard let dims = input.shape, dims.count == 4 else {
            let shapeText = input.shape.map { "[" + $0.map(\.description).joined(separator: ", ") + "]" } ?? "unknown"
            throw CommandError("\(file): input '\(input.name)' has shape \(shapeText); expected 4-D [N, C, H, W]")
        }
        guard let channels = dims[1].value else {
            throw CommandError("\(file): input '\(input.name)' has a free channel dimension; expected a fixed C in [N, C, H, W]")
        }
        var spatial: [Int] = []
        for dim in dims[2...3] {
            if let fixed = dim.value {
                if let resolution, resolution != fixed {
                    throw CommandError("\(file): input '\(input.name)' has a fixed size \(dims[2])×\(dims[3]); --resolution \(resolution) does not apply")
                }
                spatial.append(fixed)
            } else {
                spatial.append(resolution ?? 224)
            }
        }
        return LoadedModel(graph: graph, label: label, imageShape: [channels] + spatial, fixedBatch: dims[0].value)
    }
}

/// Seconds since an arbitrary start, monotonic.
func monotonicSeconds() -> Double {
    Double(DispatchTime.now().uptimeNanoseconds) / 1e9
}
