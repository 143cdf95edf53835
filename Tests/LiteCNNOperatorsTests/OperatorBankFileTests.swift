// Operator bank files (.lcb): exact round trip, the documented byte layout, every truncation, bit flips and lying
// lengths, offsets and fields refused with section and byte offset; the base fingerprint and validate(against:).
import Foundation
import LiteCNN
import XCTest
import _TestSupport

/// Tiny bases and banks shared by the bank and selection tests.
enum BankTestFixtures {
    /// The `OperatorBankError` parsing `bytes` throws; records a failure when it parses or throws something else.
    static func parseError(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> OperatorBankError? {
        do {
            _ = try OperatorBankFile.parse(bytes, file: "bank.lcb")
            XCTFail("parsed a bad file", file: file, line: line)
        } catch let e as OperatorBankError {
            return e
        } catch {
            XCTFail("threw \(type(of: error)), not OperatorBankError: \(error)", file: file, line: line)
        }
        return nil
    }


    /// A deterministic generator for fixtures (LiteCNN's `SeededGenerator`).
    struct Random {
        var generator: SeededGenerator
        init(state: UInt64) { generator = SeededGenerator(seed: state) }
        mutating func next() -> UInt64 { generator.next() }
        mutating func unit() -> Double { Double(next() >> 11) / Double(1 << 53) }
        mutating func int(_ range: ClosedRange<Int>) -> Int { range.lowerBound + Int(next() % UInt64(range.count)) }
    }

    /// input `[1, 3, H, W]` → for each `(C_out, k, stride, bn, relu)`: Conv k×k (pad k/2) [+ BN] [+ ReLU] →
    /// GlobalAveragePool. Weights are seeded by `seed`.
    static func chain(_ layers: [(channels: Int, kernel: Int, stride: Int, batchNorm: Bool, relu: Bool)],
                      size: Int = 8, seed: UInt64 = 1, bias: Bool = false) -> Graph {
        var b = GraphBuilder(name: "tiny", opset: 17)
        b.addInput("input", shape: [.fixed(1), .fixed(3), .fixed(size), .fixed(size)])
        var x = "input", c = 3, s = seed
        for (i, layer) in layers.enumerated() {
            s += 10
            var inputs = [x, b.addInitializer("conv\(i).weight", randomTensor([layer.channels, c, layer.kernel, layer.kernel], seed: s))]
            if bias { inputs.append(b.addInitializer("conv\(i).bias", randomTensor([layer.channels], seed: s + 1))) }
            let p = layer.kernel / 2
            x = b.add("Conv", name: "/conv\(i)/Conv", inputs: inputs, attributes: [
                "kernel_shape": .ints([layer.kernel, layer.kernel]), "pads": .ints([p, p, p, p]),
                "strides": .ints([layer.stride, layer.stride]),
            ])
            if layer.batchNorm {
                let n = layer.channels
                x = b.add("BatchNormalization", name: "/bn\(i)/BatchNormalization", inputs: [
                    x, b.addInitializer("bn\(i).weight", randomTensor([n], seed: s + 2, range: 0.5...1.5)),
                    b.addInitializer("bn\(i).bias", randomTensor([n], seed: s + 3)),
                    b.addInitializer("bn\(i).running_mean", randomTensor([n], seed: s + 4)),
                    b.addInitializer("bn\(i).running_var", randomTensor([n], seed: s + 5, range: 0.5...1.5)),
                ], attributes: ["epsilon": .float(1e-5)])
            }
            if layer.relu { x = b.add("Relu", name: "/relu\(i)/Relu", inputs: [x]) }
            c = layer.channels
        }
        let y = b.add("GlobalAveragePool", name: "/pool/GlobalAveragePool", inputs: [x])
        b.renameValue(y, to: "output")
        b.addOutput("output", shape: [.fixed(1), .fixed(c), .fixed(1), .fixed(1)])
        return b.build()
    }

    /// Two slots: 3→4 3×3 with BN and ReLU, then 4→6 3×3 stride 2 with BN and no ReLU (a residual block's second).
    static func tinyBase(seed: UInt64 = 1) -> Graph {
        chain([(4, 3, 1, true, true), (6, 3, 2, true, false)], seed: seed)
    }

    /// A bank for `tinyBase`: per slot low rank β 0.5, depthwise and Fire β 0.25, tensors of the exact shapes with
    /// seeded values, and every measurement field filled.
    static func tinyBank(graph: Graph = tinyBase()) throws -> OperatorBank {
        let slots = try OperatorSlots.find(in: graph, imageShape: [3, 8, 8])
        var entries: [BankEntry] = []
        var seed: UInt64 = 500
        for slot in slots {
            for (kind, beta) in [(OperatorKind.lowRank, 0.5), (.depthwise, 1.0), (.fire, 0.25)] {
                var tensors: [String: Tensor] = [:]
                for (name, shape) in PluggableOperator.tensorShapes(kind: kind, beta: beta, slot: slot) {
                    seed += 1
                    tensors[name] = randomTensor(shape, seed: seed)
                }
                let op = PluggableOperator(kind: kind, beta: beta, slot: slot, tensors: tensors)
                let m = OperatorMeasurement(parameters: op.parameterCount, multiplyAdds: op.multiplyAdds,
                                            latencyMs: 0.1 + Double(entries.count) / 64, top1: 0.7 - Double(entries.count) / 128,
                                            distillationError: 0.01 * Double(entries.count + 1))
                entries.append(BankEntry(op: op, measurement: m))
            }
        }
        let base = BaseMeasurement(top1: 0.71, top5: 0.93, multiplyAdds: slots.reduce(0) { $0 + $1.multiplyAdds } + 100,
                                   parameters: slots.reduce(0) { $0 + $1.parameterCount } + 10, latencyMs: 1.5,
                                   slotLatencyMs: slots.map { 0.25 + Double($0.index) / 8 })
        return OperatorBank(baseFingerprint: BaseFingerprint.of(graph), imageShape: [3, 8, 8], slots: slots, base: base,
                            entries: entries, metadata: ["model": "tiny", "note": "ünïcode / \"quoted\""])
    }

    // MARK: File bytes

    /// The little-endian integer of `count` bytes at `at`.
    static func u64(_ bytes: [UInt8], _ at: Int, count: Int = 8) -> Int {
        (0..<count).reduce(0) { $0 | Int(bytes[at + $1]) << (8 * $1) }
    }

    static func put(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64, count: Int = 8) {
        for k in 0..<count { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
    }

    /// Recomputes the trailing CRC, so that a test reaches the checks behind it.
    static func resealed(_ bytes: [UInt8]) -> [UInt8] {
        var b = bytes
        put(&b, b.count - 4, UInt64(CRC32.checksum(b, range: 0..<(b.count - 4))), count: 4)
        return b
    }

    /// A file's JSON header and payload bytes.
    static func parts(_ bytes: [UInt8]) -> (json: [String: Any], payload: [UInt8]) {
        let h = u64(bytes, 8)
        let json = try! JSONSerialization.jsonObject(with: Data(bytes[16..<(16 + h)])) as! [String: Any]
        let p = u64(bytes, 16 + h)
        return (json, Array(bytes[(24 + h)..<(24 + h + p)]))
    }

    /// A file with `json` as its header and `payload`, lengths and CRC consistent.
    static func assemble(_ json: [String: Any], _ payload: [UInt8], version: (UInt16, UInt16) = (1, 0)) -> [UInt8] {
        let header = [UInt8](try! JSONSerialization.data(withJSONObject: json, options: [.sortedKeys]))
        var b = Array("LCOB".utf8) + [0, 0, 0, 0] + [UInt8](repeating: 0, count: 8) + header + [UInt8](repeating: 0, count: 8)
            + payload + [0, 0, 0, 0]
        put(&b, 4, UInt64(version.0), count: 2)
        put(&b, 6, UInt64(version.1), count: 2)
        put(&b, 8, UInt64(header.count))
        put(&b, 16 + header.count, UInt64(payload.count))
        return resealed(b)
    }
}

final class OperatorBankFileTests: XCTestCase {
    typealias F = BankTestFixtures

    // MARK: Helpers

    private func u64(_ bytes: [UInt8], _ at: Int) -> Int { F.u64(bytes, at) }
    private func put(_ bytes: inout [UInt8], _ at: Int, _ value: UInt64, count: Int = 8) { F.put(&bytes, at, value, count: count) }
    private func resealed(_ bytes: [UInt8]) -> [UInt8] { F.resealed(bytes) }
    private func parts(_ bytes: [UInt8]) -> (json: [String: Any], payload: [UInt8]) { F.parts(bytes) }
    private func assemble(_ json: [String: Any], _ payload: [UInt8], version: (UInt16, UInt16) = (1, 0)) -> [UInt8] {
        F.assemble(json, payload, version: version)
    }

    private func error(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> OperatorBankError? {
        F.parseError(bytes, file: file, line: line)
    }

    private func entry(_ json: [String: Any], _ i: Int) -> [String: Any] { (json["entries"] as! [[String: Any]])[i] }

    private func with(_ json: [String: Any], entry i: Int, _ change: (inout [String: Any]) -> Void) -> [String: Any] {
        var j = json, entries = json["entries"] as! [[String: Any]]
        change(&entries[i])
        j["entries"] = entries
        return j
    }

    private func withTensor(_ json: [String: Any], entry i: Int, tensor t: Int, _ change: (inout [String: Any]) -> Void) -> [String: Any] {
        with(json, entry: i) { e in
            var tensors = e["tensors"] as! [[String: Any]]
            change(&tensors[t])
            e["tensors"] = tensors
        }
    }

    // MARK: Round trip and layout

    func testRoundTripIsExactForTensorsMeasurementsAndMetadata() throws {
        var bank = try F.tinyBank()
        // Bit patterns that == would not tell apart, and a non-default layout tag.
        let name = bank.entries[0].op.tensors.keys.sorted()[0]
        var t = bank.entries[0].op.tensors[name]!
        t.scalars[0] = -0.0
        t.scalars[1] = .leastNonzeroMagnitude
        t.scalars[2] = -.greatestFiniteMagnitude
        t.layout = .nchw
        bank.entries[0].op.tensors[name] = t
        bank.entries[1].measurement = OperatorMeasurement(parameters: 7, multiplyAdds: 9)  // optionals absent
        let bytes = OperatorBankFile.serialize(bank)
        let back = try OperatorBankFile.parse(bytes, file: "bank.lcb")
        XCTAssertEqual(back, bank)
        for (a, b) in zip(bank.entries, back.entries) {
            for (name, tensor) in a.op.tensors {
                XCTAssertEqual(tensor.scalars.map(\.bitPattern), b.op.tensors[name]?.scalars.map(\.bitPattern), name)
                XCTAssertEqual(tensor.layout, b.op.tensors[name]?.layout)
            }
        }
        XCTAssertEqual(OperatorBankFile.serialize(back), bytes, "serialization is deterministic")

        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bank-\(UUID().uuidString).lcb")
        defer { try? FileManager.default.removeItem(at: url) }
        try OperatorBankFile.write(bank, to: url)
        XCTAssertEqual(try OperatorBankFile.read(from: url), bank)
    }

    func testTheByteLayoutIsTheDocumentedOne() throws {
        let bank = try F.tinyBank()
        let bytes = OperatorBankFile.serialize(bank)
        XCTAssertEqual(Array(bytes[0..<4]), Array("LCOB".utf8))
        XCTAssertEqual(Array(bytes[4..<8]), [1, 0, 1, 0], "version 1.1")
        let h = u64(bytes, 8), p = u64(bytes, 16 + h)
        XCTAssertEqual(bytes.count, 16 + h + 8 + p + 4)
        XCTAssertEqual(p, 4 * bank.entries.reduce(0) { $0 + $1.op.tensors.values.reduce(0) { $0 + $1.count } })
        XCTAssertEqual(UInt32(truncatingIfNeeded: u64(bytes + [0, 0, 0, 0], bytes.count - 4)), CRC32.checksum(bytes, range: 0..<(bytes.count - 4)))
        let (json, payload) = parts(bytes)
        XCTAssertEqual(Set(json.keys), ["base_fingerprint", "image_shape", "slots", "base", "metadata", "entries", "precision"])
        XCTAssertEqual(json["precision"] as? String, "float32")
        XCTAssertEqual(json["base_fingerprint"] as? Int, Int(bank.baseFingerprint))
        XCTAssertEqual((json["base"] as? [String: Any])?["slot_latency_ms"] as? [Double], bank.base.slotLatencyMs)
        let slot = (json["slots"] as! [[String: Any]])[1]
        XCTAssertEqual(slot["input_channels"] as? Int, 4)
        XCTAssertEqual(slot["output_size"] as? [Int], [4, 4])
        XCTAssertEqual(slot["has_relu"] as? Bool, false)
        let e = entry(json, 4)
        XCTAssertEqual(e["kind"] as? String, "depthwise")
        XCTAssertEqual(e["slot"] as? Int, 1)
        XCTAssertEqual((e["measurement"] as? [String: Any])?["multiply_adds"] as? Int, bank.entries[4].measurement.multiplyAdds)
        // A tensor's values are `count` little-endian float32 from element `offset`.
        let record = (e["tensors"] as! [[String: Any]])[0]
        let name = record["name"] as! String, offset = record["offset"] as! Int
        let first = UInt32(payload[4 * offset]) | UInt32(payload[4 * offset + 1]) << 8 | UInt32(payload[4 * offset + 2]) << 16
            | UInt32(payload[4 * offset + 3]) << 24
        XCTAssertEqual(first, bank.entries[4].op.tensors[name]!.scalars[0].bitPattern)
        XCTAssertEqual(record["count"] as? Int, bank.entries[4].op.tensors[name]!.count)
    }

    // MARK: Hostile files

    func testEveryTruncationThrows() throws {
        let bytes = OperatorBankFile.serialize(try F.tinyBank())
        for length in 0..<bytes.count {
            guard let e = error(Array(bytes[0..<length])) else { return }
            XCTAssertEqual(e.file, "bank.lcb")
            XCTAssertNotNil(e.offset)
            XCTAssertTrue(e.description.hasPrefix("bank.lcb: \(e.section) at byte "), e.description)
        }
        XCTAssertEqual(error(Array(bytes[0..<3]))?.section, "magic")
        XCTAssertEqual(error(Array(bytes[0..<12]))?.section, "header")
        XCTAssertEqual(error(Array(bytes[0..<(bytes.count - 2)]))?.section, "checksum")
        XCTAssertEqual(error(bytes + [0])?.section, "checksum", "a byte after the checksum")
    }

    func testSingleBitFlipsThrow() throws {
        let bytes = OperatorBankFile.serialize(try F.tinyBank())
        let h = u64(bytes, 8)
        for i in 0..<bytes.count {
            let bits = i < 24 || i >= bytes.count - 4 ? Array(0..<8) : [i % 8]
            for bit in bits {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                guard let e = error(b) else { return }
                if i < 4 { XCTAssertEqual(e.section, "magic") }
                if (16..<(16 + h)).contains(i) || i >= 24 + h { XCTAssertEqual(e.section, "checksum", "byte \(i)") }
            }
        }
    }

    func testLyingLengthFieldsAreRefusedBeforeAllocating() throws {
        let bytes = OperatorBankFile.serialize(try F.tinyBank())
        let h = u64(bytes, 8), p = u64(bytes, 16 + h)
        // (field offset, lie, expected section and offset; nil where the bytes then misread decide).
        let cases: [(at: Int, value: UInt64, section: String?, offset: Int?)] = [
            (8, .max, "header", 8), (8, 1 << 63, "header", 8), (8, UInt64(bytes.count), "header", 8),
            (8, UInt64(bytes.count - 16), "payload", bytes.count), (8, UInt64(h + 1), nil, nil),
            (8, UInt64(h - 1), "payload", 15 + h), (8, 0, "payload", 16), (8, 1, nil, nil),
            (16 + h, .max, "payload", 16 + h), (16 + h, 1 << 63, "payload", 16 + h), (16 + h, UInt64(p + 4), "checksum", bytes.count),
            (16 + h, UInt64(p + 1), "payload", 16 + h), (16 + h, UInt64(p - 4), "checksum", bytes.count - 4),
            (16 + h, UInt64(p + 8), "payload", 16 + h), (16 + h, 0, "checksum", 24 + h + 4),
            (16 + h, UInt64(Int.max) + 1, "payload", 16 + h), (16 + h, UInt64(bitPattern: -4), "payload", 16 + h),
        ]
        for c in cases {
            var b = bytes
            put(&b, c.at, c.value)
            guard let e = error(resealed(b)) else { return }
            if let section = c.section { XCTAssertEqual(e.section, section, "\(c) → \(e)") }
            if let offset = c.offset { XCTAssertEqual(e.offset, offset, "\(c) → \(e)") }
        }
        XCTAssertTrue(error(resealed({ var b = bytes; put(&b, 16 + h, UInt64(p - 4)); return b }()))?.message
            .contains("4 bytes follow the checksum") ?? false)
    }

    func testLyingTensorRecordsAndFieldsAreRefusedWithSectionAndOffset() throws {
        let bank = try F.tinyBank()
        let bytes = OperatorBankFile.serialize(bank)
        let (json, payload) = parts(bytes)
        let elements = payload.count / 4, payloadAt = -1  // -1: the payload's start in the reassembled file
        let t0 = (entry(json, 0)["tensors"] as! [[String: Any]])[0]
        let cases: [(String, [String: Any], String, Int?, String)] = [
            ("negative offset", withTensor(json, entry: 0, tensor: 0) { $0["offset"] = -1 }, "payload", payloadAt, "outside the payload"),
            ("huge offset", withTensor(json, entry: 0, tensor: 0) { $0["offset"] = Int.max }, "payload", payloadAt, "outside the payload"),
            ("offset past the end", withTensor(json, entry: 5, tensor: 0) { $0["offset"] = elements - 1 }, "payload", payloadAt, "outside the payload"),
            ("overlap", withTensor(json, entry: 0, tensor: 1) { $0["offset"] = t0["offset"]! }, "payload", nil, "overlaps"),
            ("huge count", withTensor(json, entry: 0, tensor: 0) { $0["count"] = Int.max }, "header", 16, "count"),
            ("negative count", withTensor(json, entry: 0, tensor: 0) { $0["count"] = -5 }, "header", 16, "count"),
            ("count off by one", withTensor(json, entry: 2, tensor: 0) { $0["count"] = ($0["count"] as! Int) + 1 }, "header", 16, "count"),
            ("wrong shape", withTensor(json, entry: 1, tensor: 0) { $0["shape"] = [1, 2, 3] }, "header", 16, "shape"),
            ("renamed tensor", withTensor(json, entry: 1, tensor: 0) { $0["name"] = "mystery.weight" }, "header", 16, "missing tensor"),
            ("duplicate tensor", with(json, entry: 1) { e in var t = e["tensors"] as! [[String: Any]]; t[1] = t[0]; e["tensors"] = t }, "header", 16, "twice"),
            ("unknown kind", with(json, entry: 0) { $0["kind"] = "octonion" }, "header", 16, "unknown operator kind 'octonion'"),
            ("slot out of range", with(json, entry: 0) { $0["slot"] = 7 }, "header", 16, "out of range"),
            ("negative slot", with(json, entry: 0) { $0["slot"] = -1 }, "header", 16, "out of range"),
            ("slot of another name", with(json, entry: 0) { $0["slot_name"] = "/elsewhere/Conv" }, "header", 16, "names slot"),
            ("entry moved to the other slot", with(json, entry: 0) { $0["slot"] = 1; $0["slot_name"] = bank.slots[1].name }, "header", 16, "tensor"),
            ("zero beta", with(json, entry: 0) { $0["beta"] = 0 }, "header", 16, "β"),
            ("huge beta", with(json, entry: 0) { $0["beta"] = 1e308 }, "header", 16, "β"),
            ("duplicate entry", with(json, entry: 1) { $0 = self.entry(json, 0) }, "header", 16, "repeats entry 0"),
            ("negative measurement", with(json, entry: 0) { e in var m = e["measurement"] as! [String: Any]; m["multiply_adds"] = -3; e["measurement"] = m }, "header", 16, "≥ 0"),
            ("fractional slot", with(json, entry: 0) { $0["slot"] = 0.5 }, "header", 16, "not valid"),
            ("slot index out of order", { var j = json; var s = j["slots"] as! [[String: Any]]; s[1]["index"] = 0; j["slots"] = s; return j }(), "header", 16, "index"),
            ("slot with a short kernel", { var j = json; var s = j["slots"] as! [[String: Any]]; s[0]["kernel"] = [3]; j["slots"] = s; return j }(), "header", 16, "2 values"),
            ("slot output size that does not follow", { var j = json; var s = j["slots"] as! [[String: Any]]; s[1]["output_size"] = [5, 4]; j["slots"] = s; return j }(), "header", 16, "output size"),
            ("huge channels", { var j = json; var s = j["slots"] as! [[String: Any]]; s[0]["output_channels"] = 1 << 40; j["slots"] = s; return j }(), "header", 16, "channels"),
            ("missing key", { var j = json; j["slots"] = nil; return j }(), "header", 16, "slots"),
            ("wrong slot latency count", { var j = json; var b = j["base"] as! [String: Any]; b["slot_latency_ms"] = [1.0]; j["base"] = b; return j }(), "header", 16, "slot latencies"),
            ("image shape", { var j = json; j["image_shape"] = [3, 8]; return j }(), "header", 16, "image shape"),
        ]
        for (label, j, section, offset, fragment) in cases {
            let file = assemble(j, payload)
            guard let e = error(file) else { return XCTFail(label) }
            XCTAssertEqual(e.section, section, "\(label): \(e)")
            if let offset { XCTAssertEqual(e.offset, offset == -1 ? 24 + u64(file, 8) : offset, "\(label): \(e)") }
            XCTAssertTrue(e.message.contains(fragment), "\(label): \(e)")
        }
        // Unused payload, malformed JSON, a header that is not UTF-8.
        XCTAssertTrue(error(assemble(json, payload + [0, 0, 0, 0]))?.message.contains("belong to no tensor") ?? false)
        var broken = bytes
        broken[16] = UInt8(ascii: "[")
        XCTAssertEqual(error(resealed(broken))?.section, "header")
        broken[16] = 0xFF
        XCTAssertEqual(error(resealed(broken))?.offset, 16)
        // The untouched parts reassemble into a readable file (the cases above fail for their change alone).
        XCTAssertEqual(try OperatorBankFile.parse(assemble(json, payload)), bank)
    }

    func testNonFiniteValuesAreRefusedWithTheTensorName() throws {
        let bank = try F.tinyBank()
        let bytes = OperatorBankFile.serialize(bank)
        let (json, payload) = parts(bytes)
        let record = (entry(json, 3)["tensors"] as! [[String: Any]])[1]
        let name = record["name"] as! String, offset = record["offset"] as! Int
        for bad: Float in [.nan, .infinity, -.infinity] {
            var p = payload
            for k in 0..<4 { p[4 * (offset + 2) + k] = UInt8(truncatingIfNeeded: bad.bitPattern >> (8 * UInt32(k))) }
            let file = assemble(json, p)
            guard let e = error(file) else { return }
            XCTAssertEqual(e.section, "payload")
            XCTAssertEqual(e.offset, 24 + u64(file, 8) + 4 * (offset + 2))
            XCTAssertTrue(e.message.contains("'\(name)'") && e.message.contains("entry 3") && e.message.contains("non-finite"), e.description)
        }
    }

    func testVersions() throws {
        let bytes = OperatorBankFile.serialize(try F.tinyBank())
        let (json, payload) = parts(bytes)
        let newer = error(assemble(json, payload, version: (2, 0)))
        XCTAssertEqual(newer?.section, "version")
        XCTAssertEqual(newer?.offset, 4)
        XCTAssertTrue(newer?.message.contains("format version 2.0 is newer than this reader (1.x)") ?? false, "\(String(describing: newer))")
        XCTAssertEqual(error(assemble(json, payload, version: (0, 9)))?.section, "version")
        // A newer minor version may add keys; this reader ignores them.
        var extended = json
        extended["calibration"] = ["images": 512]
        XCTAssertEqual(try OperatorBankFile.parse(assemble(extended, payload, version: (1, 3))), try OperatorBankFile.parse(bytes))
    }

    func testWriteRefusesABankThatCouldNotBeReadBack() throws {
        let bank = try F.tinyBank()
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("bad-\(UUID().uuidString).lcb")
        defer { try? FileManager.default.removeItem(at: url) }
        var wrongShape = bank
        let name = wrongShape.entries[2].op.tensors.keys.sorted()[0]
        wrongShape.entries[2].op.tensors[name] = Tensor(shape: [1], scalars: [0])
        var nonFinite = bank
        let first = nonFinite.entries[1].op.tensors.keys.sorted()[0]
        nonFinite.entries[1].op.tensors[first]!.scalars[0] = .nan
        var foreignSlot = bank
        foreignSlot.entries[0].op.slot.name = "/other/Conv"
        var badLatency = bank
        badLatency.base.slotLatencyMs = [1]
        for (label, b, fragment) in [("shape", wrongShape, "shape"), ("NaN", nonFinite, "non-finite"),
                                     ("slot", foreignSlot, "slot differs"), ("latency", badLatency, "slot latencies")] {
            XCTAssertThrowsError(try OperatorBankFile.write(b, to: url), label) { e in
                XCTAssertEqual((e as? OperatorBankError)?.section, "bank", label)
                XCTAssertTrue("\(e)".contains(fragment), "\(label): \(e)")
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), label)
        }
    }

    // MARK: Fingerprint and validation

    func testFingerprintIsTheDocumentedCRCOverSortedInitializers() {
        func le(_ v: UInt64, _ n: Int) -> [UInt8] { (0..<n).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
        // 20 000 floats: more than one 64 KiB chunk.
        let big = randomTensor([20_000], seed: 9)
        var g = Graph()
        g.initializers["b"] = .float(Tensor(shape: [2, 1], scalars: [1, -2]))
        g.initializers["a"] = .int([5, -1], shape: [2])
        g.initializers["c"] = .float(big)
        var expected: [UInt8] = [0x49] + le(1, 4) + Array("a".utf8) + le(1, 4) + le(2, 8) + le(5, 8) + le(UInt64(bitPattern: -1), 8)
        expected += [0x46] + le(1, 4) + Array("b".utf8) + le(2, 4) + le(2, 8) + le(1, 8)
            + le(UInt64(Float(1).bitPattern), 4) + le(UInt64(Float(-2).bitPattern), 4)
        expected += [0x46] + le(1, 4) + Array("c".utf8) + le(1, 4) + le(20_000, 8)
        for v in big.scalars { expected += le(UInt64(v.bitPattern), 4) }
        XCTAssertEqual(BaseFingerprint.of(g), CRC32.checksum(expected))

        var changed = g
        guard case var .float(t) = changed.initializers["c"]! else { return XCTFail() }
        t.scalars[19_999] = Float(bitPattern: t.scalars[19_999].bitPattern ^ 1)
        changed.initializers["c"] = .float(t)
        XCTAssertNotEqual(BaseFingerprint.of(changed), BaseFingerprint.of(g), "one bit of one weight")
        var renamed = g
        renamed.initializers["d"] = renamed.initializers.removeValue(forKey: "c")
        XCTAssertNotEqual(BaseFingerprint.of(renamed), BaseFingerprint.of(g), "a renamed initializer")
    }

    func testValidateAcceptsItsBaseAndRefusesOtherWeightsAndOtherSlots() throws {
        let graph = F.tinyBase()
        let bank = try F.tinyBank(graph: graph)
        XCTAssertNoThrow(try bank.validate(against: graph))

        func refusal(_ g: Graph, _ b: OperatorBank, _ fragments: [String], line: UInt = #line) {
            XCTAssertThrowsError(try b.validate(against: g), line: line) { e in
                guard let e = e as? OperatorBankError else { return XCTFail("\(e)", line: line) }
                XCTAssertEqual(e.section, "base", line: line)
                for f in fragments { XCTAssertTrue(e.message.contains(f), "\(e) lacks '\(f)'", line: line) }
            }
        }
        // Same structure, other weights.
        let retrained = F.tinyBase(seed: 2)
        let fingerprint = BaseFingerprint.of(retrained)
        refusal(retrained, bank, ["built for base fingerprint \(hex(bank.baseFingerprint)), this base is \(hex(fingerprint))",
                                  "the base weights differ"])
        // Other slot shapes: a wider second convolution (even with the bank's fingerprint set to this base's).
        let wider = F.chain([(4, 3, 1, true, true), (8, 3, 2, true, false)])
        var b = bank
        b.baseFingerprint = BaseFingerprint.of(wider)
        refusal(wider, b, ["slot 1 '\(bank.slots[1].name)'", "output channels", "6 in the bank, 8 in this base"])
        // A 5×5 kernel; a stride; a missing slot; an extra slot; an image size the base does not take.
        refusal(F.chain([(4, 3, 1, true, true), (6, 5, 2, true, false)]), bank, ["slot 1", "kernel"])
        refusal(F.chain([(4, 3, 1, true, true), (6, 3, 1, true, false)]), bank, ["slot 1", "strides"])
        refusal(F.chain([(4, 3, 1, true, true)]), bank, ["missing slot 1"])
        refusal(F.chain([(4, 3, 1, true, true), (6, 3, 2, true, false), (6, 3, 1, false, false)]), bank, ["extra slot 2"])
        var other = bank
        other.imageShape = [3, 16, 16]
        refusal(graph, other, ["cannot find the slots of this base for image shape [3, 16, 16]"])
    }

    private func hex(_ v: UInt32) -> String {
        let d = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - d.count) + d
    }
}
