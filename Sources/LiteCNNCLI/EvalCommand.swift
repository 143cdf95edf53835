import ArgumentParser

/// `litecnn eval` (placeholder while it is being written; replaced by its owner).
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "eval", abstract: "(in progress)")
    func run() throws { throw ValidationError("litecnn eval is not available yet") }
}
