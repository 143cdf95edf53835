/// A problem with a compressed model file (`.lcz`) or with a model that cannot be written as one.
///
/// Names the file (or `<memory>`), the section (`header`, `architecture`, `tensors`, `activation ranges`,
/// `metadata`, `checksum`), the byte offset from the start of the file where the problem was found, and the tensor
/// when there is one.
public struct CompressedFileError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var section: String
    public var offset: Int
    public var tensor: String?
    public var reason: String

    public init(file: String, section: String, offset: Int, tensor: String? = nil, reason: String) {
        self.file = file
        self.section = section
        self.offset = offset
        self.tensor = tensor
        self.reason = reason
    }

    public var description: String {
        "\(file): section \(section), byte \(offset)\(tensor.map { ", tensor '\($0)'" } ?? ""): \(reason)"
    }
}
