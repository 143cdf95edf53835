import ArgumentParser

/// `litecnn data` (placeholder while it is being written; replaced by its owner).
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "data", abstract: "(in progress)")
    func run() throws { throw ValidationError("litecnn data is not available yet") }
}
