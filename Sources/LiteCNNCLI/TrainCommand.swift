import ArgumentParser

/// `litecnn train` (placeholder while it is being written; replaced by its owner).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "train", abstract: "(in progress)")
    func run() throws { throw ValidationError("litecnn train is not available yet") }
}
