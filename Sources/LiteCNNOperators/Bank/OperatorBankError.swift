// The error of reading, writing or checking an operator bank (`.lcb`): file, section, byte offset and what is wrong.

/// A problem with an operator bank file, or with a bank that does not fit a base network.
///
/// `section` is one of `magic`, `version`, `header` (the JSON header and its length field), `payload` (the float32 or
/// float16 tensor data and its length field), `checksum`, `base` (`OperatorBank.validate(against:)`), `bank` (a bank in
/// memory that cannot be written) or `file` (reading or writing the file itself). `offset` is the byte offset from the
/// start of the file where the problem was found, nil when the problem is not about a byte of a file (`base`, `bank`).
/// `description` reads `bank.lcb: header at byte 16: entry 3 (slot 1, lowrank β 0.5): …`.
public struct OperatorBankError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var section: String
    public var offset: Int?
    public var message: String

    public init(file: String, section: String, offset: Int?, message: String) {
        self.file = file
        self.section = section
        self.offset = offset
        self.message = message
    }

    public var description: String {
        "\(file): \(section)\(offset.map { " at byte \($0)" } ?? ""): \(message)"
    }
}
