import ArgumentParser
import Foundation
import LiteCNN

/// `litecnn zoo`: every model of the zoo with its size and cost at its published resolution.
struct ZooCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "zoo",
        abstract: "List every model of the zoo with parameters, multiply-adds and size.",
        discussion: """
        Each model is built with default options (1000 classes, RGB input) and traced — shapes only, nothing is \
        computed — at the resolution it was published at. Params counts trainable scalars as torchvision's \
        num_params does (BatchNorm running statistics excluded); MACs are multiply-adds of one image; fp32 MB is \
        the size of all parameters and buffers as float32 (MB = 2^20 bytes).

        Examples:
          litecnn zoo
          litecnn zoo --json | jq '.[] | select(.macs < 300000000) | .name'
        """
    )

    @Flag(help: "Print a JSON array ({name, summary, params, macs, fp32_bytes, fp32_mb, resolution}) instead of a table.")
    var json = false

    struct Row: Codable {
        var name: String
        var summary: String
        var params: Int
        var macs: Int
        var fp32Bytes: Int
        var fp32MB: Double
        var resolution: Int

        enum CodingKeys: String, CodingKey {
            case name, summary, params, macs, fp32Bytes = "fp32_bytes", fp32MB = "fp32_mb", resolution
        }
    }

    func run() throws {
        var rows: [Row] = []
        for entry in ModelZoo.entries {
            let model = try ModelZoo.build(entry.name)
            let r = entry.defaultResolution
            let summary = ModelSummary(model: model, inputShape: [1, r, r, 3], name: entry.name)
            rows.append(Row(name: entry.name, summary: entry.summary, params: summary.parameters, macs: summary.multiplyAdds,
                            fp32Bytes: summary.fp32Bytes,
                            fp32MB: (Double(summary.fp32Bytes) / 1_048_576 * 100).rounded() / 100, resolution: r))
        }
        if json {
            print(try encodeJSON(rows))
            return
        }
        guard !rows.isEmpty else {
            print("The zoo is empty: no architecture is registered in ModelZoo.")
            return
        }
        let header = ["Model", "Params", "MACs", "fp32 MB", "Input", "Description"]
        let table = rows.map { row in
            [row.name, ModelSummary.grouped(row.params), ModelSummary.scaled(row.macs),
             ModelSummary.megabytes(row.fp32Bytes), "\(row.resolution)×\(row.resolution)", row.summary]
        }
        print(renderTable(header: header, rows: table, rightAligned: [1, 2, 3, 4]))
        print("\n\(rows.count) models. Params: trainable scalars; MACs: multiply-adds for one image at the input size shown.")
    }
}

/// A plain text table with two spaces between columns.
func renderTable(header: [String], rows: [[String]], rightAligned: Set<Int>) -> String {
    var widths = header.map(\.count)
    for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
    func line(_ cells: [String]) -> String {
        cells.enumerated().map { i, cell in
            let pad = String(repeating: " ", count: widths[i] - cell.count)
            return rightAligned.contains(i) ? pad + cell : (i == cells.count - 1 ? cell : cell + pad)
        }.joined(separator: "  ")
    }
    return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
        .joined(separator: "\n")
}

/// Pretty-printed JSON with sorted keys (stable output for scripts and diffs).
func encodeJSON<T: Encodable>(_ value: T) throws -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    return String(decoding: try encoder.encode(value), as: UTF8.self)
}
