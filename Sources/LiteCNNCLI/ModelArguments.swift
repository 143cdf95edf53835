import ArgumentParser
import LiteCNN

/// The options that pick and shape a zoo model, shared by `summary` and `weights`.
struct ModelArguments: ParsableArguments {
    @Option(help: ArgumentHelp("Width multiplier α (MobileNet, ShuffleNet): scales every layer's channel count.",
                               valueName: "alpha"))
    var width: Double?

    @Option(help: ArgumentHelp("Groups of the grouped 1×1 convolutions (shufflenet_v1: 1, 2, 3, 4 or 8).", valueName: "g"))
    var groups: Int?

    @Option(help: ArgumentHelp("Number of output classes.", valueName: "k"))
    var classes: Int = 1000

    @Option(name: .customLong("input-channels"), help: ArgumentHelp("Channels of the input image (3 = RGB, 1 = grayscale).", valueName: "c"))
    var inputChannels: Int = 3

    /// Upper limits that keep a typo from allocating gigabytes of weights.
    static let maximumClasses = 100_000
    static let maximumInputChannels = 64
    static let maximumGroups = 64

    func validate() throws {
        guard (1...Self.maximumClasses).contains(classes) else {
            throw ValidationError("--classes must be between 1 and \(Self.maximumClasses), got \(classes)")
        }
        guard (1...Self.maximumInputChannels).contains(inputChannels) else {
            throw ValidationError("--input-channels must be between 1 and \(Self.maximumInputChannels), got \(inputChannels)")
        }
        if let groups, !(1...Self.maximumGroups).contains(groups) {
            throw ValidationError("--groups must be between 1 and \(Self.maximumGroups), got \(groups)")
        }
        if let width, !(width.isFinite && width > 0 && width <= 4) {
            throw ValidationError("--width must be a number in (0, 4], got \(width)")
        }
    }

    var options: ModelOptions {
        ModelOptions(classCount: classes, inputChannels: inputChannels, width: width, groups: groups)
    }

    /// Looks the model up (an unknown name lists the known ones) and builds it.
    func build(_ name: String) throws -> (entry: ModelZooEntry, model: any Layer) {
        let entry = try ModelZoo.entry(named: name)
        return (entry, try ModelZoo.build(name, options: options))
    }
}

/// A message for the user, printed as `Error: …` with exit code 1.
struct CommandError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
