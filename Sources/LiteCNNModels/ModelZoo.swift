import LiteCNNLayers

/// Options a user can set when building a zoo model (`litecnn summary NAME --width … --classes …`).
public struct ModelOptions: Sendable, Equatable {
    /// Number of output classes.
    public var classCount: Int = 1000
    /// Channels of the input image (3 for RGB, 1 for grayscale).
    public var inputChannels: Int = 3
    /// Width multiplier α (MobileNet, ShuffleNet scale); `nil` = the variant's own.
    public var width: Double? = nil
    /// Groups g (ShuffleNet V1); `nil` = the variant's own.
    public var groups: Int? = nil

    public init(classCount: Int = 1000, inputChannels: Int = 3, width: Double? = nil, groups: Int? = nil) {
        self.classCount = classCount
        self.inputChannels = inputChannels
        self.width = width
        self.groups = groups
    }
}

/// One named model of the zoo.
public struct ModelZooEntry: Sendable {
    /// torchvision's name where one exists (`mobilenet_v3_small`), otherwise LiteCNN's (`mobilenet_v1`).
    public var name: String
    /// Paper and variant in a few words.
    public var summary: String
    /// The resolution the model was published at (224 for most, 600 for EfficientNet-B7).
    public var defaultResolution: Int
    /// Whether `--width` and `--groups` mean something for this model.
    public var acceptsWidth: Bool
    public var acceptsGroups: Bool
    public var build: @Sendable (ModelOptions) throws -> any Layer

    public init(name: String, summary: String, defaultResolution: Int = 224, acceptsWidth: Bool = false,
                acceptsGroups: Bool = false, build: @escaping @Sendable (ModelOptions) throws -> any Layer) {
        self.name = name
        self.summary = summary
        self.defaultResolution = defaultResolution
        self.acceptsWidth = acceptsWidth
        self.acceptsGroups = acceptsGroups
        self.build = build
    }
}

/// Errors about model names and options given by a user.
public enum ModelZooError: Error, CustomStringConvertible, Equatable {
    case unknownModel(String, known: [String])
    case invalidOption(String)

    public var description: String {
        switch self {
        case let .unknownModel(name, known):
            return "unknown model '\(name)'. Known models:\n  " + known.joined(separator: "\n  ")
        case let .invalidOption(message):
            return message
        }
    }
}

/// The registry of every architecture LiteCNN builds.
public enum ModelZoo {
    /// All models, in the order `litecnn zoo` lists them.
    public static var entries: [ModelZooEntry] {
        var all: [ModelZooEntry] = []
        for family in families { all += family }
        return all
    }

    /// The architecture files' own lists; each file declares `static var zooEntries`.
    static var families: [[ModelZooEntry]] {
        [SqueezeNet.zooEntries, MobileNetV1.zooEntries, MobileNetV2.zooEntries, MobileNetV3.zooEntries,
         ShuffleNetV1.zooEntries, ShuffleNetV2.zooEntries, EfficientNet.zooEntries,
         AlexNet.zooEntries, VGG.zooEntries, ResNet.zooEntries]
    }

    public static var names: [String] { entries.map(\.name) }

    public static func entry(named name: String) throws -> ModelZooEntry {
        guard let entry = entries.first(where: { $0.name == name }) else {
            throw ModelZooError.unknownModel(name, known: names)
        }
        return entry
    }

    /// Builds `name` with `options`.
    public static func build(_ name: String, options: ModelOptions = ModelOptions()) throws -> any Layer {
        guard options.classCount >= 1 else { throw ModelZooError.invalidOption("--classes must be at least 1") }
        guard options.inputChannels >= 1 else { throw ModelZooError.invalidOption("input channels must be at least 1") }
        let entry = try entry(named: name)
        if options.width != nil && !entry.acceptsWidth {
            throw ModelZooError.invalidOption("\(name) has no width multiplier; --width applies to MobileNet and ShuffleNet models")
        }
        if options.groups != nil && !entry.acceptsGroups {
            throw ModelZooError.invalidOption("\(name) has no group count; --groups applies to shufflenet_v1")
        }
        if let w = options.width, !(w > 0 && w <= 4) {
            throw ModelZooError.invalidOption("--width must be in (0, 4], got \(w)")
        }
        return try entry.build(options)
    }
}
