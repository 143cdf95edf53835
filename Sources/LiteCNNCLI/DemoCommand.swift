import ArgumentParser

/// `litecnn demo` (placeholder while it is being written; replaced by its owner).
struct DemoCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: "(in progress)")
    func run() throws { throw ValidationError("litecnn demo is not available yet") }
}
