// The layout of a training run's directory (RUN_DIR): configuration, checkpoint, final weights, metrics and plot.
import Foundation

/// The files of a run directory, as `litecnn train --out RUN_DIR` writes them (docs/TRAINING.md):
///
/// - `config.json`: the `TrainingConfiguration` (read back by `--resume` and `litecnn eval`);
/// - `checkpoint.safetensors`: weights, buffers, optimizer state and loop position (`Checkpoint`);
/// - `model.safetensors`: the weights alone with zoo metadata (`saveZooModel`), loadable by `litecnn run/eval/export`;
/// - `metrics.csv`, `metrics.json`: one row/object per finished epoch (`EpochMetrics`);
/// - `curves.svg`: loss and top-1 against the epoch (`TrainingPlot`).
///
/// Every file is replaced atomically (temporary file, then rename).
public struct RunDirectory: Sendable {
    public let url: URL

    public init(_ url: URL) { self.url = url.standardizedFileURL }
    public init(path: String) { self.init(URL(fileURLWithPath: path)) }

    public var configuration: URL { url.appendingPathComponent("config.json") }
    public var checkpoint: URL { url.appendingPathComponent("checkpoint.safetensors") }
    public var model: URL { url.appendingPathComponent("model.safetensors") }
    public var metricsCSV: URL { url.appendingPathComponent("metrics.csv") }
    public var metricsJSON: URL { url.appendingPathComponent("metrics.json") }
    public var curves: URL { url.appendingPathComponent("curves.svg") }

    /// Whether `path` is a directory holding a run's config.json.
    public static func isRunDirectory(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
            && FileManager.default.fileExists(atPath: RunDirectory(path: path).configuration.path)
    }

    /// Creates the directory (and its parents) if needed; throws naming the path.
    public func create() throws {
        do { try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true) } catch {
            throw TrainingError.invalidRunDirectory("\(url.path): cannot create the run directory (\(error.localizedDescription))")
        }
    }

    /// Whether the directory already holds a run (a config or a checkpoint).
    public var holdsRun: Bool {
        FileManager.default.fileExists(atPath: configuration.path) || FileManager.default.fileExists(atPath: checkpoint.path)
    }
}
