import Foundation

/// A file that could not be read or written, with where the problem is.
///
/// Every reader in LiteCNNIO throws this instead of trapping: the message names the file, and, when known, the byte
/// offset and the tensor the problem was found in (`weights.safetensors: byte 8: header is not valid JSON …`).
public struct FileFormatError: Error, CustomStringConvertible, Equatable {
    /// The file's path (or a name given by the caller for in-memory bytes).
    public var file: String
    /// Byte offset in the file where the problem was found, when it has one.
    public var offset: Int?
    /// The tensor the problem belongs to, when it has one.
    public var tensor: String?
    /// What is wrong, in words.
    public var reason: String

    public init(file: String, offset: Int? = nil, tensor: String? = nil, reason: String) {
        self.file = file
        self.offset = offset
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        var parts = [file]
        if let offset { parts.append("byte \(offset)") }
        if let tensor { parts.append("tensor '\(tensor)'") }
        return parts.joined(separator: ": ") + ": " + reason
    }
}

/// Reads a whole file into bytes, with an error that names the file.
func readFileBytes(_ url: URL) throws -> [UInt8] {
    do {
        return [UInt8](try Data(contentsOf: url))
    } catch {
        throw FileFormatError(file: url.path, reason: "cannot read file (\(error.localizedDescription))")
    }
}
