// An operator bank: lighter operators prepared in the cloud for the slots of one base network, with their measurements.
import LiteCNNGraph
import LiteCNNTensor

/// What the cloud measured for one operator of a bank, with the operator in its slot and every other slot on the
/// base unit (one slot at a time).
public struct OperatorMeasurement: Sendable, Codable, Equatable {
    /// Trainable parameters of the operator (compared with the slot's `parameterCount`).
    public var parameters: Int
    /// Multiply-adds of the operator for one image (compared with the slot's `multiplyAdds`).
    public var multiplyAdds: Int
    /// Latency of the operator alone, in milliseconds (compared with `BaseMeasurement.slotLatencyMs[slot]`).
    public var latencyMs: Double?
    /// Top-1 accuracy of the whole network with this operator in its slot (same scale as `BaseMeasurement.top1`).
    public var top1: Double?
    /// Distillation error of the operator against the base unit's output (e.g. mean squared error).
    public var distillationError: Double?
    /// Mean Kullback–Leibler divergence `KL(p_base ‖ p_swapped)` (nats per image) of the network's class probabilities
    /// with this operator in its slot, over the evaluation images: a finer, additive measure of the damage than the
    /// change of top-1, which a few hundred images quantize and which hides small harms that add up across slots.
    public var outputDivergence: Double?
    public init(parameters: Int, multiplyAdds: Int, latencyMs: Double? = nil, top1: Double? = nil, distillationError: Double? = nil,
                outputDivergence: Double? = nil) {
        self.parameters = parameters; self.multiplyAdds = multiplyAdds; self.latencyMs = latencyMs; self.top1 = top1
        self.distillationError = distillationError; self.outputDivergence = outputDivergence
    }
}

/// One operator of a bank with its measurement. `op.slot` is the bank's slot `op.slot.index`.
public struct BankEntry: Sendable, Equatable {
    public var op: PluggableOperator
    public var measurement: OperatorMeasurement
    public init(op: PluggableOperator, measurement: OperatorMeasurement) { self.op = op; self.measurement = measurement }
}

/// What the cloud measured for the base network itself.
public struct BaseMeasurement: Sendable, Codable, Equatable {
    public var top1: Double?
    public var top5: Double?
    /// Multiply-adds and trainable parameters of the whole base network.
    public var multiplyAdds: Int
    public var parameters: Int
    /// Latency of the whole network, and of each slot's unit alone (indexed by slot), in milliseconds.
    public var latencyMs: Double?
    public var slotLatencyMs: [Double]?
    public init(top1: Double? = nil, top5: Double? = nil, multiplyAdds: Int, parameters: Int, latencyMs: Double? = nil,
                slotLatencyMs: [Double]? = nil) {
        self.top1 = top1; self.top5 = top5; self.multiplyAdds = multiplyAdds; self.parameters = parameters
        self.latencyMs = latencyMs; self.slotLatencyMs = slotLatencyMs
    }
}

/// How an operator bank file stores its tensor values: IEEE 754 binary32 (4 bytes each) or binary16 (2 bytes each,
/// half the file). In memory the tensors are always `Float`.
public enum BankPrecision: String, Sendable, Codable, CaseIterable {
    case float32, float16

    /// Bytes per stored value: 4 or 2.
    public var elementSize: Int {
        switch self {
        case .float32: return 4
        case .float16: return 2
        }
    }
}

/// Lighter operators for the slots of one base network, kept apart from the base weights (a `.lcb` file, see
/// `OperatorBankFile` and docs/OPERATOR_BANK_FORMAT.md).
///
/// `baseFingerprint` is `BaseFingerprint.of(base)` and `slots` is `OperatorSlots.find(in: base, imageShape:
/// imageShape, fullyConnected: fullyConnectedSlots)` of the base the bank was built for; `validate(against:)` checks
/// both before a device uses the bank.
///
/// `precision` is how the file stores the operator tensors. A `.float16` bank must hold only values that binary16
/// represents exactly (`roundedToHalfPrecision()` makes one), so that writing and reading it back gives the same bank.
public struct OperatorBank: Sendable, Equatable {
    public var baseFingerprint: UInt32
    /// `[C, H, W]` of one image.
    public var imageShape: [Int]
    public var slots: [OperatorSlot]
    public var base: BaseMeasurement
    public var entries: [BankEntry]
    public var metadata: [String: String]
    /// The storage precision of the operator tensors in the file (`.float32` unless the bank was rounded to half).
    public var precision: BankPrecision = .float32
    /// Whether the slots were found with fully connected slots (`OperatorSlots.find(…, fullyConnected: true)`), so that
    /// `validate(against:)` finds them the same way. False for banks written before fully connected slots existed.
    public var fullyConnectedSlots = false
    public init(baseFingerprint: UInt32, imageShape: [Int], slots: [OperatorSlot], base: BaseMeasurement,
                entries: [BankEntry], metadata: [String: String] = [:], precision: BankPrecision = .float32,
                fullyConnectedSlots: Bool = false) {
        self.baseFingerprint = baseFingerprint; self.imageShape = imageShape; self.slots = slots; self.base = base
        self.entries = entries; self.metadata = metadata; self.precision = precision
        self.fullyConnectedSlots = fullyConnectedSlots
    }

    /// This bank with every operator tensor value rounded to the nearest binary16 value (round to nearest, ties to
    /// even; subnormals down to 2⁻²⁴ kept, smaller magnitudes become ±0) and `precision` set to `.float16`, ready to
    /// be written at half the size. Values binary16 cannot hold — magnitudes of 65520 or more, which would round to
    /// ±∞, and NaN or ±∞ — are left as they are, so that `OperatorBankFile.check` refuses the bank naming the entry,
    /// the tensor and the element instead of silently storing infinities. Measurements and metadata are unchanged.
    public func roundedToHalfPrecision() -> OperatorBank {
        var bank = self
        bank.precision = .float16
        for i in bank.entries.indices { bank.entries[i].op = bank.entries[i].op.roundedToHalfPrecision() }
        return bank
    }

    /// Indices into `entries` of the operators prepared for slot `slot`, in bank order.
    public func entries(forSlot slot: Int) -> [Int] { entries.indices.filter { entries[$0].op.slot.index == slot } }

    /// Checks that `graph` is the base this bank was built for: its slots (found for `imageShape`, with fully connected
    /// slots when `fullyConnectedSlots`) equal `slots` field by field, and its `BaseFingerprint` equals
    /// `baseFingerprint`. Throws `OperatorBankError` (section `base`) naming the first differing slot and field (a slot
    /// missing from or extra in this base is named with its kind), or both fingerprints.
    public func validate(against graph: Graph) throws {
        func fail(_ message: String) -> OperatorBankError {
            OperatorBankError(file: "operator bank", section: "base", offset: nil, message: message)
        }
        let found: [OperatorSlot]
        do {
            found = try OperatorSlots.find(in: graph, imageShape: imageShape, fullyConnected: fullyConnectedSlots)
        } catch {
            throw fail("cannot find the slots of this base for image shape \(imageShape): \(error)")
        }
        for (i, expected) in slots.enumerated() {
            guard i < found.count else {
                throw fail("missing \(Self.kindName(expected))slot \(i) '\(expected.name)': the bank has \(slots.count) slots, this base \(found.count)")
            }
            if let field = Self.firstDifference(expected, found[i]) {
                throw fail("slot \(i) '\(expected.name)' differs in \(field.name): \(field.bank) in the bank, \(field.base) in this base")
            }
        }
        guard found.count == slots.count else {
            let extra = found[slots.count]
            throw fail("extra \(Self.kindName(extra))slot \(slots.count) '\(extra.name)': the bank has \(slots.count) slots, this base \(found.count)")
        }
        let fingerprint = BaseFingerprint.of(graph)
        guard fingerprint == baseFingerprint else {
            throw fail("built for base fingerprint \(Self.hex(baseFingerprint)), this base is \(Self.hex(fingerprint)) — the base weights differ")
        }
    }

    /// "fully connected " for a fully connected slot, "" for a convolution.
    static func kindName(_ slot: OperatorSlot) -> String { slot.isFullyConnected ? "fully connected " : "" }

    /// `0x0123abcd`.
    static func hex(_ value: UInt32) -> String {
        let digits = String(value, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - digits.count) + digits
    }

    /// The first field in which two slots differ, with both values as text.
    static func firstDifference(_ a: OperatorSlot, _ b: OperatorSlot) -> (name: String, bank: String, base: String)? {
        func text<T>(_ v: T?) -> String { v.map { "\($0)" } ?? "none" }
        let fields: [(String, String, String)] = [
            ("index", "\(a.index)", "\(b.index)"),
            ("kind", a.kind.rawValue, b.kind.rawValue),
            ("name", a.name, b.name),
            ("input channels", "\(a.inputChannels)", "\(b.inputChannels)"),
            ("output channels", "\(a.outputChannels)", "\(b.outputChannels)"),
            ("kernel", "\(a.kernel)", "\(b.kernel)"),
            ("strides", "\(a.strides)", "\(b.strides)"),
            ("pads", "\(a.pads)", "\(b.pads)"),
            ("dilations", "\(a.dilations)", "\(b.dilations)"),
            ("input size", "\(a.inputSize)", "\(b.inputSize)"),
            ("output size", "\(a.outputSize)", "\(b.outputSize)"),
            ("bias", text(a.bias), text(b.bias)),
            ("batch norm", text(a.batchNorm), text(b.batchNorm)),
            ("batch norm epsilon", text(a.batchNormEpsilon), text(b.batchNormEpsilon)),
            ("ReLU", "\(a.hasReLU)", "\(b.hasReLU)"),
            ("input", a.input, b.input),
            ("output", a.output, b.output),
            ("nodes", "\(a.nodes)", "\(b.nodes)"),
            ("weight", a.weight, b.weight),
            ("transB", "\(a.transB)", "\(b.transB)"),
        ]
        if let d = fields.first(where: { $0.1 != $0.2 }) { return (d.0, d.1, d.2) }
        // Fields that print alike but differ (e.g. an epsilon's last bit) still count as a difference.
        return a == b ? nil : ("batch norm epsilon", text(a.batchNormEpsilon?.bitPattern), text(b.batchNormEpsilon?.bitPattern))
    }
}
