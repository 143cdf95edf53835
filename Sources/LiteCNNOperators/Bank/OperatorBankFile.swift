// Reads and writes operator bank files (`.lcb`): a JSON header and a float32 or float16 payload, every field checked
// before use.
import Foundation
import LiteCNNCompression
import LiteCNNIO
import LiteCNNTensor

/// Reads and writes operator bank files (`.lcb`), specified in docs/OPERATOR_BANK_FORMAT.md:
///
/// | offset | size | field |
/// |---|---|---|
/// | 0 | 4 | magic `LCOB` |
/// | 4 | 2 + 2 | `u16` major = 1, `u16` minor = 1, or 2 for a bank with fully connected slots |
/// | 8 | 8 | `u64` header length `H` |
/// | 16 | `H` | UTF-8 JSON header |
/// | 16 + `H` | 8 | `u64` payload length `P` (a multiple of the element size) |
/// | 24 + `H` | `P` | little-endian tensor values, float32 or float16 as the header's `precision` says |
/// | 24 + `H` + `P` | 4 | `u32` CRC-32 of every byte before it |
///
/// The header's `precision` (`float32`, `float16`; absent in 1.0 files, meaning `float32`) sets the element size, 4 or
/// 2 bytes; tensor offsets and counts are in elements. A float16 bank must hold only values binary16 represents
/// exactly (`OperatorBank.roundedToHalfPrecision()`), so that `parse(serialize(bank)) == bank` for both precisions.
///
/// Reading never traps: every length is checked against the bytes that remain before anything is allocated, then
/// the checksum, the JSON, the slots, the operators (known kind, β in (0, 16], applicable to their slot), every tensor's
/// name and shape against `PluggableOperator.tensorShapes(kind:beta:slot:)`, the tensors' ranges (inside the payload,
/// not overlapping, covering it exactly) and their values (finite). Problems raise `OperatorBankError` naming the
/// file, the section and the byte offset.
public enum OperatorBankFile {
    public static let fileExtension = "lcb"
    public static let magic: [UInt8] = Array("LCOB".utf8)
    /// Files with another major version are refused; a newer minor version may only add JSON keys, which are ignored.
    /// 1.1 added `precision` (a 1.0 file is float32); 1.2 added fully connected slots (`fully_connected_slots`, a
    /// slot's `kind` and `trans_b`). `minorVersion` is the newest this writer writes: a bank without fully connected
    /// slots is written as 1.1 (it has none of 1.2's keys), one with them as 1.2 (`minorVersion(for:)`).
    public static let majorVersion: UInt16 = 1
    public static let minorVersion: UInt16 = 2

    /// The minor version a bank is written with: 2 when it was built with fully connected slots, else 1.
    public static func minorVersion(for bank: OperatorBank) -> UInt16 { bank.fullyConnectedSlots ? 2 : 1 }
    /// Byte offset of the JSON header.
    public static let headerOffset = 16
    /// The largest β a bank may hold (an inner width of 16× the slot's output channels).
    public static let maximumBeta = 16.0

    // MARK: Writing

    /// The file's bytes. The bank must pass `check(_:)` (a programmer error otherwise: `write(_:to:)` throws instead).
    public static func serialize(_ bank: OperatorBank) -> [UInt8] {
        do {
            try check(bank)
        } catch {
            preconditionFailure("OperatorBankFile.serialize: \(error)")
        }
        return encode(bank)
    }

    /// Writes `serialize(bank)` to `url` atomically; throws when the bank fails `check(_:)` or the file cannot be written.
    public static func write(_ bank: OperatorBank, to url: URL) throws {
        try check(bank, file: url.path)
        let bytes = encode(bank)
        do {
            try writeFileAtomically(bytes, to: url)
        } catch {
            throw OperatorBankError(file: url.path, section: "file", offset: nil, message: "\(error)")
        }
    }

    /// Checks that a bank in memory can be written and read back: the same checks as reading (slots, measurements,
    /// operators, tensor names, shapes and finite values), with `entries[i].op.slot == slots[entries[i].op.slot.index]`;
    /// for a `.float16` bank also every value within ±65504 and exactly representable in binary16 (round it with
    /// `OperatorBank.roundedToHalfPrecision()` first). Throws `OperatorBankError` with section `bank`.
    public static func check(_ bank: OperatorBank, file: String = "<memory>") throws {
        func fail(_ message: String) -> OperatorBankError {
            OperatorBankError(file: file, section: "bank", offset: nil, message: message)
        }
        if let problem = imageShapeProblem(bank.imageShape) { throw fail(problem) }
        for (i, slot) in bank.slots.enumerated() {
            if let problem = slotProblem(slot, position: i, fullyConnectedSlots: bank.fullyConnectedSlots) { throw fail(problem) }
        }
        if let problem = baseProblem(bank.base, slotCount: bank.slots.count) { throw fail(problem) }
        var seen: [String: Int] = [:]
        for (i, entry) in bank.entries.enumerated() {
            let op = entry.op, label = entryLabel(i, slot: op.slot.index, kind: op.kind.rawValue, beta: op.beta)
            guard bank.slots.indices.contains(op.slot.index) else {
                throw fail("\(label): slot \(op.slot.index) is out of range (the bank has \(bank.slots.count) slots)")
            }
            guard op.slot == bank.slots[op.slot.index] else {
                throw fail("\(label): the operator's slot differs from the bank's slot \(op.slot.index) '\(bank.slots[op.slot.index].name)'")
            }
            if let problem = operatorProblem(kind: op.kind, beta: op.beta, slot: op.slot) { throw fail("\(label): \(problem)") }
            if let problem = measurementProblem(entry.measurement) { throw fail("\(label): \(problem)") }
            let key = duplicateKey(slot: op.slot.index, kind: op.kind, beta: op.beta)
            if let first = seen[key] { throw fail("\(label) repeats entry \(first)") }
            seen[key] = i
            let expected = PluggableOperator.tensorShapes(kind: op.kind, beta: op.beta, slot: op.slot)
            if let problem = tensorNamesProblem(expected: expected, actual: op.tensors.mapValues(\.shape)) {
                throw fail("\(label): \(problem)")
            }
            for name in op.tensors.keys.sorted() {
                let scalars = op.tensors[name]!.scalars
                if let k = scalars.firstIndex(where: { !$0.isFinite }) {
                    throw fail("\(label): tensor '\(name)' holds a non-finite value (\(scalars[k])) at element \(k)")
                }
                if bank.precision == .float16, let problem = halfProblem(scalars) {
                    throw fail("\(label): tensor '\(name)' \(problem)")
                }
            }
        }
    }

    /// Why a float16 bank cannot store `scalars` (finite values): the first beyond ±65504 or not a binary16 value.
    static func halfProblem(_ scalars: [Float]) -> String? {
        for (k, v) in scalars.enumerated() where !HalfPrecision.isExactlyRepresentable(v) {
            if v.magnitude > HalfPrecision.largestFinite {
                return "holds \(v) at element \(k), outside the float16 range ±65504"
            }
            return "holds \(v) at element \(k), which float16 cannot represent exactly (the nearest is \(HalfPrecision.rounded(v))): round the bank with roundedToHalfPrecision() before writing it as float16"
        }
        return nil
    }

    private static func encode(_ bank: OperatorBank) -> [UInt8] {
        let half = bank.precision == .float16
        var payload: [UInt8] = []
        payload.reserveCapacity(bank.precision.elementSize * bank.entries.reduce(0) { $0 + $1.op.tensors.values.reduce(0) { $0 + $1.count } })
        var elements = 0
        var entries: [EntryRecord] = []
        for entry in bank.entries {
            var tensors: [TensorRecord] = []
            for name in entry.op.tensors.keys.sorted() {
                let t = entry.op.tensors[name]!
                tensors.append(TensorRecord(name: name, shape: t.shape, offset: elements, count: t.count, layout: t.layout.rawValue))
                if half {
                    for v in t.scalars {
                        let bits = HalfPrecision.bits(from: v)  // exact: check(_:) passed
                        payload.append(UInt8(truncatingIfNeeded: bits))
                        payload.append(UInt8(truncatingIfNeeded: bits >> 8))
                    }
                } else {
                    for v in t.scalars {
                        let bits = v.bitPattern
                        payload.append(UInt8(truncatingIfNeeded: bits))
                        payload.append(UInt8(truncatingIfNeeded: bits >> 8))
                        payload.append(UInt8(truncatingIfNeeded: bits >> 16))
                        payload.append(UInt8(truncatingIfNeeded: bits >> 24))
                    }
                }
                elements += t.count
            }
            entries.append(EntryRecord(slot: entry.op.slot.index, slotName: entry.op.slot.name, kind: entry.op.kind.rawValue,
                                       beta: entry.op.beta, measurement: MeasurementRecord(entry.measurement), tensors: tensors))
        }
        let header = BankHeaderRecord(baseFingerprint: bank.baseFingerprint, imageShape: bank.imageShape,
                                      slots: bank.slots.map(SlotRecord.init), base: BaseRecord(bank.base),
                                      metadata: bank.metadata, entries: entries, precision: bank.precision.rawValue,
                                      fullyConnectedSlots: bank.fullyConnectedSlots ? true : nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let json: [UInt8]
        do {
            json = [UInt8](try encoder.encode(header))
        } catch {
            preconditionFailure("OperatorBankFile: cannot encode the header: \(error)")
        }
        var out: [UInt8] = []
        out.reserveCapacity(headerOffset + json.count + 12 + payload.count)
        out += magic
        appendLittleEndian(&out, UInt64(majorVersion), bytes: 2)
        appendLittleEndian(&out, UInt64(minorVersion(for: bank)), bytes: 2)
        appendLittleEndian(&out, UInt64(json.count), bytes: 8)
        out += json
        appendLittleEndian(&out, UInt64(payload.count), bytes: 8)
        out += payload
        appendLittleEndian(&out, UInt64(CRC32.checksum(out)), bytes: 4)
        return out
    }

    private static func appendLittleEndian(_ out: inout [UInt8], _ value: UInt64, bytes: Int) {
        for k in 0..<bytes { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))) }
    }

    // MARK: Reading

    /// Reads and parses the file at `url`.
    public static func read(from url: URL) throws -> OperatorBank {
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw OperatorBankError(file: url.path, section: "file", offset: nil,
                                    message: "cannot read the file: \(error.localizedDescription)")
        }
        return try parse([UInt8](data), file: url.path)
    }

    /// Parses a file's bytes; `file` names it in errors.
    public static func parse(_ bytes: [UInt8], file: String = "<memory>") throws -> OperatorBank {
        func fail(_ section: String, _ offset: Int, _ message: String) -> OperatorBankError {
            OperatorBankError(file: file, section: section, offset: offset, message: message)
        }
        func u64(at offset: Int, _ count: Int) -> UInt64 {
            var v: UInt64 = 0
            for k in 0..<count { v |= UInt64(bytes[offset + k]) << (8 * UInt64(k)) }
            return v
        }

        // Fixed fields and lengths, each checked against the bytes that remain.
        guard bytes.count >= magic.count, Array(bytes[0..<magic.count]) == magic else {
            throw fail("magic", 0, "not a LiteCNN operator bank (the file does not start with \"LCOB\")")
        }
        guard bytes.count >= 8 else { throw fail("version", 4, "the file ends at byte \(bytes.count), inside the version") }
        let major = u64(at: 4, 2), minor = u64(at: 6, 2)
        guard major == UInt64(majorVersion) else {
            if major > UInt64(majorVersion) {
                throw fail("version", 4, "format version \(major).\(minor) is newer than this reader (\(majorVersion).x): update LiteCNN to read it")
            }
            throw fail("version", 4, "format version \(major).\(minor) is not readable by this reader (\(majorVersion).x)")
        }
        guard bytes.count >= headerOffset else {
            throw fail("header", 8, "the file ends at byte \(bytes.count), inside the header length")
        }
        let headerLength = u64(at: 8, 8), afterHeaderLength = bytes.count - headerOffset
        guard headerLength <= UInt64(afterHeaderLength) else {
            throw fail("header", 8, "header length \(headerLength) exceeds the \(afterHeaderLength) bytes that remain")
        }
        let payloadLengthAt = headerOffset + Int(headerLength)
        guard bytes.count - payloadLengthAt >= 8 else {
            throw fail("payload", payloadLengthAt, "the file ends at byte \(bytes.count), inside the payload length")
        }
        let payloadLength = u64(at: payloadLengthAt, 8), payloadAt = payloadLengthAt + 8, afterPayloadLength = bytes.count - payloadAt
        guard payloadLength <= UInt64(afterPayloadLength) else {
            throw fail("payload", payloadLengthAt, "payload length \(payloadLength) exceeds the \(afterPayloadLength) bytes that remain")
        }
        // The element size (4 or 2) is in the header, read after the checksum; every precision's is a multiple of 2.
        guard payloadLength % 2 == 0 else {
            throw fail("payload", payloadLengthAt, "payload length \(payloadLength) is odd: not a whole number of float32 or float16 values")
        }
        let checksumAt = payloadAt + Int(payloadLength)
        guard bytes.count - checksumAt >= 4 else {
            throw fail("checksum", checksumAt, "the file ends at byte \(bytes.count), inside the 4-byte checksum")
        }
        guard bytes.count - checksumAt == 4 else {
            throw fail("checksum", checksumAt + 4, "\(bytes.count - checksumAt - 4) bytes follow the checksum")
        }
        let stored = UInt32(u64(at: checksumAt, 4)), computed = CRC32.checksum(bytes, range: 0..<checksumAt)
        guard stored == computed else {
            throw fail("checksum", checksumAt, "CRC-32 mismatch (stored \(OperatorBank.hex(stored)), computed \(OperatorBank.hex(computed))): the file is corrupted")
        }

        // The JSON header.
        let record: BankHeaderRecord
        do {
            record = try JSONDecoder().decode(BankHeaderRecord.self, from: Data(bytes[headerOffset..<payloadLengthAt]))
        } catch {
            throw fail("header", headerOffset, "the header is not valid: \(describe(error))")
        }
        func header(_ message: String) -> OperatorBankError { fail("header", headerOffset, message) }
        if let problem = imageShapeProblem(record.imageShape) { throw header(problem) }
        for (i, slot) in record.slots.enumerated() {
            if let kind = slot.kind, OperatorSlot.Kind(rawValue: kind) == nil {
                throw header("slot \(i) '\(slot.name)': unknown kind '\(kind)' (known: \(OperatorSlot.Kind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
        }
        let fullyConnectedSlots = record.fullyConnectedSlots ?? false
        let slots = record.slots.map(\.slot)
        for (i, slot) in slots.enumerated() {
            if let problem = slotProblem(slot, position: i, fullyConnectedSlots: fullyConnectedSlots) { throw header(problem) }
        }
        let base = record.base.measurement
        if let problem = baseProblem(base, slotCount: slots.count) { throw header(problem) }
        let precision: BankPrecision
        if let name = record.precision {
            guard let known = BankPrecision(rawValue: name) else {
                throw header("unknown precision '\(name)' (known: \(BankPrecision.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            precision = known
        } else {
            precision = .float32  // a 1.0 file
        }
        let size = precision.elementSize
        guard payloadLength % UInt64(size) == 0 else {
            throw fail("payload", payloadLengthAt, "payload length \(payloadLength) is not a whole number of \(precision) values (\(size) bytes each)")
        }

        // Entries: operators, measurements and tensor records (names and shapes before any count is trusted).
        let payloadElements = Int(payloadLength) / size
        var ranges: [(offset: Int, count: Int, entry: Int, name: String)] = []
        var seen: [String: Int] = [:]
        var kinds: [OperatorKind] = []
        for (i, entry) in record.entries.enumerated() {
            let label = entryLabel(i, slot: entry.slot, kind: entry.kind, beta: entry.beta)
            guard let kind = OperatorKind(rawValue: entry.kind) else {
                throw header("\(label): unknown operator kind '\(entry.kind)' (known: \(OperatorKind.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard slots.indices.contains(entry.slot) else {
                throw header("\(label): slot \(entry.slot) is out of range (the bank has \(slots.count) slots)")
            }
            let slot = slots[entry.slot]
            guard entry.slotName == slot.name else {
                throw header("\(label): names slot '\(entry.slotName)' but slot \(entry.slot) is '\(slot.name)'")
            }
            if let problem = operatorProblem(kind: kind, beta: entry.beta, slot: slot) { throw header("\(label): \(problem)") }
            if let problem = measurementProblem(entry.measurement.measurement) { throw header("\(label): \(problem)") }
            let key = duplicateKey(slot: entry.slot, kind: kind, beta: entry.beta)
            if let first = seen[key] { throw header("\(label) repeats entry \(first)") }
            seen[key] = i
            var actual: [String: [Int]] = [:]
            for t in entry.tensors {
                guard actual[t.name] == nil else { throw header("\(label): tensor '\(t.name)' appears twice") }
                actual[t.name] = t.shape
            }
            let expected = PluggableOperator.tensorShapes(kind: kind, beta: entry.beta, slot: slot)
            if let problem = tensorNamesProblem(expected: expected, actual: actual) { throw header("\(label): \(problem)") }
            for t in entry.tensors {
                let elements = t.shape.reduce(1, *)  // the shape equals an expected one: bounded by operatorProblem
                guard t.count == elements else {
                    throw header("\(label): tensor '\(t.name)' has count \(t.count) but its shape \(t.shape) holds \(elements) elements")
                }
                guard t.offset >= 0, t.offset <= payloadElements, t.count <= payloadElements - t.offset else {
                    throw fail("payload", payloadAt, "\(label): tensor '\(t.name)' claims elements \(t.offset) ..< \(t.offset) + \(t.count), outside the payload's \(payloadElements) \(precision) values")
                }
                if let layout = t.layout, Tensor.Layout(rawValue: layout) == nil {
                    throw header("\(label): tensor '\(t.name)' has unknown layout '\(layout)' (known: plain, nhwc, nchw)")
                }
                ranges.append((t.offset, t.count, i, t.name))
            }
            kinds.append(kind)
        }
        ranges.sort { ($0.offset, $0.count) < ($1.offset, $1.count) }
        var covered = 0
        for r in ranges where r.count > 0 {
            guard r.offset >= covered else {
                throw fail("payload", payloadAt + size * r.offset, "entry \(r.entry): tensor '\(r.name)' at element \(r.offset) overlaps the tensor before it (which ends at element \(covered))")
            }
            guard r.offset == covered else {
                throw fail("payload", payloadAt + size * covered, "\(precision) values \(covered) ..< \(r.offset) of the payload belong to no tensor")
            }
            covered = r.offset + r.count
        }
        guard covered == payloadElements else {
            throw fail("payload", payloadAt + size * covered, "\(precision) values \(covered) ..< \(payloadElements) of the payload belong to no tensor")
        }

        // Values.
        var entries: [BankEntry] = []
        entries.reserveCapacity(record.entries.count)
        for (i, entry) in record.entries.enumerated() {
            var tensors: [String: Tensor] = [:]
            for t in entry.tensors {
                let start = payloadAt + size * t.offset
                var scalars = [Float](repeating: 0, count: t.count)
                for k in 0..<t.count {
                    let at = start + size * k
                    let v: Float
                    switch precision {
                    case .float32:
                        v = Float(bitPattern: UInt32(bytes[at]) | UInt32(bytes[at + 1]) << 8 | UInt32(bytes[at + 2]) << 16 | UInt32(bytes[at + 3]) << 24)
                    case .float16:
                        v = HalfPrecision.value(fromBits: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)
                    }
                    guard v.isFinite else {
                        throw fail("payload", at, "\(entryLabel(i, slot: entry.slot, kind: entry.kind, beta: entry.beta)): tensor '\(t.name)' holds a non-finite value (\(v)) at element \(k)")
                    }
                    scalars[k] = v
                }
                let layout = t.layout.flatMap(Tensor.Layout.init(rawValue:))
                tensors[t.name] = Tensor(shape: t.shape, scalars: scalars, layout: layout)
            }
            let op = PluggableOperator(kind: kinds[i], beta: entry.beta, slot: slots[entry.slot], tensors: tensors)
            entries.append(BankEntry(op: op, measurement: entry.measurement.measurement))
        }
        return OperatorBank(baseFingerprint: record.baseFingerprint, imageShape: record.imageShape, slots: slots, base: base,
                            entries: entries, metadata: record.metadata, precision: precision,
                            fullyConnectedSlots: fullyConnectedSlots)
    }

    // MARK: Checks shared by reading and writing

    /// `entry 3 (slot 1, lowrank β 0.5)`.
    static func entryLabel(_ i: Int, slot: Int, kind: String, beta: Double) -> String {
        "entry \(i) (slot \(slot), \(kind) β \(beta))"
    }

    private static func duplicateKey(slot: Int, kind: OperatorKind, beta: Double) -> String {
        "\(slot) \(kind.rawValue) \(beta.bitPattern)"
    }

    static func imageShapeProblem(_ shape: [Int]) -> String? {
        guard shape.count == 3, shape.allSatisfy({ (1...(1 << 24)).contains($0) }) else {
            return "image shape \(shape) is not [C, H, W] with dimensions 1 … 2^24"
        }
        return nil
    }

    /// The slot's fields are in range and consistent (`H_out = ⌊(H + p_t + p_b − d·(k − 1) − 1) / s⌋ + 1`), and
    /// the largest operator any β ≤ `maximumBeta` makes of it stays below 2^60 multiply-adds and parameters
    /// (`(H·W + H_out·W_out) · (C_i + 17·C)² · max(9, k_h·k_w) · 4`), so no size computed from it can overflow.
    ///
    /// A fully connected slot needs `fullyConnectedSlots` (the bank was built with them), its neutral convolution
    /// fields (kernel, strides, dilations, sizes `[1, 1]`, pads 0) and no BatchNorm; a convolution has `transB` false.
    static func slotProblem(_ s: OperatorSlot, position: Int, fullyConnectedSlots: Bool) -> String? {
        let label = "slot \(position) '\(s.name)'"
        guard s.index == position else { return "\(label) has index \(s.index)" }
        if s.isFullyConnected {
            guard fullyConnectedSlots else {
                return "\(label) is fully connected but the bank does not include fully connected slots (fully_connected_slots)"
            }
            let one = [1, 1]
            guard s.kernel == one, s.strides == one, s.dilations == one, s.inputSize == one, s.outputSize == one,
                  s.pads == [0, 0, 0, 0], s.batchNorm == nil, s.batchNormEpsilon == nil else {
                return "\(label): a fully connected slot has kernel, strides, dilations, input and output size [1, 1], pads 0 and no batch norm"
            }
        } else if s.transB {
            return "\(label): trans_b is only for fully connected slots"
        }
        guard s.kernel.count == 2, s.strides.count == 2, s.pads.count == 4, s.dilations.count == 2,
              s.inputSize.count == 2, s.outputSize.count == 2 else {
            return "\(label): kernel, strides, dilations, input and output size need 2 values and pads 4"
        }
        let small = 1...(1 << 12), large = 1...(1 << 24)
        guard large.contains(s.inputChannels), large.contains(s.outputChannels) else {
            return "\(label): channels \(s.inputChannels) → \(s.outputChannels) are outside 1 … 2^24"
        }
        guard (s.kernel + s.strides + s.dilations).allSatisfy({ small.contains($0) }),
              s.pads.allSatisfy({ (0...(1 << 24)).contains($0) }), s.inputSize.allSatisfy({ large.contains($0) }) else {
            return "\(label): kernel \(s.kernel), strides \(s.strides), dilations \(s.dilations), pads \(s.pads) or input size \(s.inputSize) out of range"
        }
        for axis in 0..<2 {
            let span = s.inputSize[axis] + s.pads[axis] + s.pads[axis + 2] - s.dilations[axis] * (s.kernel[axis] - 1) - 1
            guard span >= 0, s.outputSize[axis] == span / s.strides[axis] + 1 else {
                return "\(label): output size \(s.outputSize) does not follow from input size \(s.inputSize), kernel \(s.kernel), strides \(s.strides), pads \(s.pads) and dilations \(s.dilations)"
            }
        }
        if let bn = s.batchNorm {
            guard bn.count == 4, let eps = s.batchNormEpsilon, eps.isFinite, eps >= 0 else {
                return "\(label): a batch norm needs 4 tensor names and a finite epsilon ≥ 0"
            }
        }
        let pixels = Double(s.inputSize[0] * s.inputSize[1] + s.outputSize[0] * s.outputSize[1])
        let width = Double(s.inputChannels) + 17 * Double(s.outputChannels)
        let bound = pixels * width * width * Double(max(9, s.kernel[0] * s.kernel[1])) * 4
        guard bound < 0x1p60 else { return "\(label) is too large (its operators could exceed 2^60 multiply-adds)" }
        return nil
    }

    static func baseProblem(_ b: BaseMeasurement, slotCount: Int) -> String? {
        guard b.multiplyAdds >= 0, b.parameters >= 0 else { return "the base's multiply-adds and parameters must be ≥ 0" }
        let values = [b.top1, b.top5, b.latencyMs].compactMap { $0 } + (b.slotLatencyMs ?? [])
        guard values.allSatisfy({ $0.isFinite }) else { return "the base's measurements must be finite" }
        if let s = b.slotLatencyMs, s.count != slotCount {
            return "the base has \(s.count) slot latencies for \(slotCount) slots"
        }
        return nil
    }

    static func measurementProblem(_ m: OperatorMeasurement) -> String? {
        guard m.multiplyAdds >= 0, m.parameters >= 0 else { return "multiply-adds and parameters must be ≥ 0" }
        guard [m.latencyMs, m.top1, m.distillationError, m.outputDivergence].allSatisfy({ $0?.isFinite ?? true }) else {
            return "the measurement must be finite"
        }
        if let d = m.outputDivergence, d < 0 { return "the output divergence must be ≥ 0" }
        return nil
    }

    static func operatorProblem(kind: OperatorKind, beta: Double, slot: OperatorSlot) -> String? {
        guard beta.isFinite, beta > 0, beta <= maximumBeta else { return "β must lie in (0, \(maximumBeta)]" }
        guard kind.isApplicable(to: slot) else { return "\(kind) does not apply to slot \(slot.index) '\(slot.name)'" }
        return nil
    }

    /// The first tensor that is missing, unexpected, or of another shape than `expected`.
    static func tensorNamesProblem(expected: [String: [Int]], actual: [String: [Int]]) -> String? {
        for name in expected.keys.sorted() {
            guard let shape = actual[name] else { return "missing tensor '\(name)' of shape \(expected[name]!)" }
            guard shape == expected[name]! else { return "tensor '\(name)' has shape \(shape), the operator needs \(expected[name]!)" }
        }
        if let extra = actual.keys.sorted().first(where: { expected[$0] == nil }) {
            return "unexpected tensor '\(extra)' (the operator has \(expected.keys.sorted().joined(separator: ", ")))"
        }
        return nil
    }

    /// A decoding error in a sentence: what went wrong and where (the JSON key path).
    private static func describe(_ error: Error) -> String {
        func path(_ keys: [CodingKey]) -> String {
            keys.isEmpty ? "" : " at " + keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        }
        guard let error = error as? DecodingError else { return "\(error)" }
        switch error {
        case let .typeMismatch(_, c), let .valueNotFound(_, c), let .dataCorrupted(c):
            return c.debugDescription + path(c.codingPath)
        case let .keyNotFound(key, c):
            return "missing key '\(key.stringValue)'" + path(c.codingPath)
        @unknown default:
            return "\(error)"
        }
    }
}
