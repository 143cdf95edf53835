// Float16 operator banks (.lcb 1.1): the binary16 conversion on known values, on all 65 536 bit patterns
// and at every rounding boundary (against Swift's Float16 where it exists); bit-exact round trips of rounded banks at
// half the payload; 1.0 files still read; float16 files fuzzed; unrounded or out-of-range banks refused.
import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class OperatorBankPrecisionTests: XCTestCase {
    typealias F = BankTestFixtures
    typealias H = HalfPrecision

    private func error(_ bytes: [UInt8], file: StaticString = #filePath, line: UInt = #line) -> OperatorBankError? {
        F.parseError(bytes, file: file, line: line)
    }

    private func tensors(_ json: [String: Any], entry i: Int) -> [[String: Any]] {
        (json["entries"] as! [[String: Any]])[i]["tensors"] as! [[String: Any]]
    }

    private func withTensor(_ json: [String: Any], entry i: Int, tensor t: Int, _ change: (inout [String: Any]) -> Void) -> [String: Any] {
        var j = json, entries = json["entries"] as! [[String: Any]], list = entries[i]["tensors"] as! [[String: Any]]
        change(&list[t])
        entries[i]["tensors"] = list
        j["entries"] = entries
        return j
    }

    /// The byte offset of a file's payload.
    private func payloadStart(_ file: [UInt8]) -> Int { 24 + F.u64(file, 8) }

    /// The first tensor (by name) of an entry with at least `count` values.
    private func tensorName(_ bank: OperatorBank, entry i: Int, atLeast count: Int) -> String {
        bank.entries[i].op.tensors.keys.sorted().first { bank.entries[i].op.tensors[$0]!.count >= count }!
    }

    /// The tiny bank rounded to half, with special values in a tensor of entry 0: signed zero, the smallest
    /// subnormal, the largest finite magnitude and values that round to them.
    private func halfBank() throws -> (original: OperatorBank, rounded: OperatorBank) {
        var bank = try F.tinyBank()
        let name = tensorName(bank, entry: 0, atLeast: 9)
        let specials: [Float] = [-0.0, 0x1p-24, -65504, 65519, 1e-9, 0.1, -0x1p-25, 3 * 0x1p-25, 0x1p-14 - 0x1p-25]
        for (k, v) in specials.enumerated() { bank.entries[0].op.tensors[name]!.scalars[k] = v }
        return (bank, bank.roundedToHalfPrecision())
    }

    // MARK: Conversion

    func testHalfConversionOfKnownValues() {
        let cases: [(Float, UInt16)] = [
            (1, 0x3C00), (65504, 0x7BFF), (0x1p-24, 0x0001), (0.1, 0x2E66), (-2, 0xC000), (0, 0x0000), (-0.0, 0x8000),
            (0.5, 0x3800), (0x1p-14, 0x0400), (1023 * 0x1p-24, 0x03FF), (-65504, 0xFBFF), (.infinity, 0x7C00),
            (-.infinity, 0xFC00), (0.333333343, 0x3555), (3.14159274, 0x4248),
            // Rounding: ties to even, in normals and subnormals, across the normal boundary and into infinity.
            (1 + 0x1p-11, 0x3C00), (1 + 3 * 0x1p-11, 0x3C02), (1 + 0x1p-11 + 0x1p-20, 0x3C01), (2049, 0x6800),
            (2051, 0x6802), (0x1p-25, 0x0000), (-0x1p-25, 0x8000), (0x1p-25 + 0x1p-40, 0x0001), (3 * 0x1p-25, 0x0002),
            (5 * 0x1p-25, 0x0002), (0x1p-14 - 0x1p-25, 0x0400), (65519, 0x7BFF), (65519.996, 0x7BFF), (65520, 0x7C00),
            (-65520, 0xFC00), (1e10, 0x7C00), (.greatestFiniteMagnitude, 0x7C00), (.leastNonzeroMagnitude, 0x0000),
            (-.leastNormalMagnitude, 0x8000), (1e-9, 0x0000),
        ]
        for (value, bits) in cases {
            XCTAssertEqual(H.bits(from: value), bits, "\(value) → 0x\(String(H.bits(from: value), radix: 16))")
        }
        let values: [(UInt16, Float)] = [
            (0x3C00, 1), (0x7BFF, 65504), (0x0001, 0x1p-24), (0x03FF, 1023 * 0x1p-24), (0x0400, 0x1p-14), (0xC000, -2),
            (0x2E66, 0.0999755859375), (0x7C00, .infinity), (0xFC00, -.infinity), (0x3555, 0.333251953125),
        ]
        for (bits, value) in values { XCTAssertEqual(H.value(fromBits: bits), value, "0x\(String(bits, radix: 16))") }
        XCTAssertEqual(H.value(fromBits: 0x8000).bitPattern, (-0.0 as Float).bitPattern, "−0 keeps its sign")
        for nan in [Float.nan, -Float.nan, .signalingNaN, Float(bitPattern: 0x7F80_0001)] {
            let h = H.bits(from: nan)
            XCTAssertEqual(h & 0x7C00, 0x7C00)
            XCTAssertNotEqual(h & 0x3FF, 0, "NaN stays NaN (not ∞) for \(nan.bitPattern)")
            XCTAssertEqual(h & 0x8000 != 0, nan.sign == .minus)
            XCTAssertTrue(H.value(fromBits: h).isNaN)
        }
        XCTAssertTrue(H.value(fromBits: 0x7E00).isNaN)
        XCTAssertTrue(H.value(fromBits: 0xFC01).isNaN)
        XCTAssertTrue(H.isExactlyRepresentable(0.0999755859375))
        XCTAssertFalse(H.isExactlyRepresentable(0.1))
        XCTAssertFalse(H.isExactlyRepresentable(.infinity))
        XCTAssertFalse(H.isExactlyRepresentable(.nan))
    }

    func testEveryBitPatternRoundTripsAndEveryBoundaryRoundsToNearestEven() {
        for h in 0...UInt16.max {
            let v = H.value(fromBits: h)
            if h & 0x7C00 == 0x7C00 && h & 0x3FF != 0 {
                XCTAssertTrue(v.isNaN, "0x\(String(h, radix: 16))")
                continue
            }
            XCTAssertEqual(H.bits(from: v), h, "0x\(String(h, radix: 16)) → \(v)")
            XCTAssertEqual(H.isExactlyRepresentable(v), v.isFinite)
            XCTAssertEqual(H.rounded(v).bitPattern, v.bitPattern)
            #if !(os(macOS) && arch(x86_64))
            XCTAssertEqual(Float(Float16(bitPattern: h)).bitPattern, v.bitPattern, "0x\(String(h, radix: 16))")
            #endif
        }
        // Between each pair of neighbouring positive finite halves (and between 65504 and the overflow threshold): the
        // midpoint goes to the even one, the floats just below and above it to the nearer one; negatives mirror them.
        for h in UInt16(0)...0x7BFF {
            let low = H.value(fromBits: h), high = h == 0x7BFF ? 65536 : H.value(fromBits: h + 1)
            let mid = (low + high) / 2  // exact: 12 significant bits
            XCTAssertEqual(Double(mid), (Double(low) + Double(high)) / 2)
            for (x, expected) in [(mid, h & 1 == 0 ? h : h + 1), (mid.nextDown, h), (mid.nextUp, h + 1)] {
                XCTAssertEqual(H.bits(from: x), expected, "\(x) between 0x\(String(h, radix: 16)) and the next")
                XCTAssertEqual(H.bits(from: -x), expected | 0x8000, "\(-x)")
                #if !(os(macOS) && arch(x86_64))
                XCTAssertEqual(Float16(x).bitPattern, expected, "Float16(\(x))")
                #endif
            }
        }
    }

    func testRandomFloatsRoundToTheNearestHalf() {
        var random = F.Random(state: 16)
        for _ in 0..<200_000 {
            // Every exponent equally often, so that subnormals, overflow and the float32 subnormals all come up.
            let x = Float(bitPattern: UInt32(truncatingIfNeeded: random.next()))
            guard !x.isNaN else { continue }
            let h = H.bits(from: x)
            #if !(os(macOS) && arch(x86_64))
            XCTAssertEqual(h, Float16(x).bitPattern, "\(x)")
            #endif
            guard x.isFinite, x.magnitude < H.overflowThreshold else {
                XCTAssertEqual(h & 0x7FFF, 0x7C00, "\(x) overflows to ∞")
                continue
            }
            // No binary16 value is nearer; at a tie the even one wins.
            let r = Double(H.value(fromBits: h)), d = abs(Double(x) - r)
            for n in [h & 0x7FFF == 0 ? h : h - 1, h & 0x7FFF == 0x7BFF ? h : h + 1] {
                let other = abs(Double(x) - Double(H.value(fromBits: n)))
                XCTAssertTrue(d < other || (d == other && (n == h || h & 1 == 0)), "\(x) → \(r), but 0x\(String(n, radix: 16)) is nearer")
            }
        }
    }

    // MARK: Float16 banks

    func testRoundedBankRoundTripsBitForBitAtHalfThePayload() throws {
        let (original, rounded) = try halfBank()
        XCTAssertEqual(original.precision, .float32)
        XCTAssertEqual(rounded.precision, .float16)
        XCTAssertNotEqual(rounded, original)
        for (a, b) in zip(original.entries, rounded.entries) {
            XCTAssertEqual(a.measurement, b.measurement)
            for (name, t) in a.op.tensors {
                XCTAssertEqual(b.op.tensors[name]!.scalars.map(\.bitPattern), t.scalars.map { H.rounded($0).bitPattern }, name)
                XCTAssertEqual(b.op.tensors[name]!.shape, t.shape)
                XCTAssertEqual(b.op.tensors[name]!.layout, t.layout)
            }
        }
        let name = tensorName(rounded, entry: 0, atLeast: 9)
        XCTAssertEqual(Array(rounded.entries[0].op.tensors[name]!.scalars[0..<9]).map(\.bitPattern),
                       ([-0.0, 0x1p-24, -65504, 65504, 0, 0.0999755859375, -0.0, 0x1p-23, 0x1p-14] as [Float]).map(\.bitPattern))
        XCTAssertEqual(rounded.roundedToHalfPrecision(), rounded, "rounding is idempotent")
        XCTAssertNoThrow(try OperatorBankFile.check(rounded))

        let bytes = OperatorBankFile.serialize(rounded)
        let back = try OperatorBankFile.parse(bytes, file: "half.lcb")
        XCTAssertEqual(back, rounded)
        XCTAssertEqual(back.precision, .float16)
        for (a, b) in zip(rounded.entries, back.entries) {
            for (name, t) in a.op.tensors {
                XCTAssertEqual(b.op.tensors[name]?.scalars.map(\.bitPattern), t.scalars.map(\.bitPattern), name)
            }
        }
        XCTAssertEqual(OperatorBankFile.serialize(back), bytes, "serialization is deterministic")
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("half-\(UUID().uuidString).lcb")
        defer { try? FileManager.default.removeItem(at: url) }
        try OperatorBankFile.write(rounded, to: url)
        XCTAssertEqual(try OperatorBankFile.read(from: url), rounded)

        // The layout: version 1.1, "precision": "float16", 2 bytes per value; the same header otherwise.
        let single = OperatorBankFile.serialize(original)
        XCTAssertEqual(Array(bytes[4..<8]), [1, 0, 1, 0])
        let (json, payload) = F.parts(bytes), (json32, payload32) = F.parts(single)
        XCTAssertEqual(json["precision"] as? String, "float16")
        XCTAssertEqual(json32["precision"] as? String, "float32")
        let values = rounded.entries.reduce(0) { $0 + $1.op.tensors.values.reduce(0) { $0 + $1.count } }
        XCTAssertEqual(payload.count, 2 * values)
        XCTAssertEqual(payload32.count, 4 * values)
        XCTAssertEqual(bytes.count, single.count - payload32.count / 2, "the header is as long; the payload is half")
        func text(_ j: [String: Any]) -> Data {
            try! JSONSerialization.data(withJSONObject: j.filter { $0.key != "precision" }, options: [.sortedKeys])
        }
        XCTAssertEqual(text(json), text(json32), "the same header: offsets and counts are in elements")
        let record = tensors(json, entry: 4)[1]
        let tensor = record["name"] as! String, offset = record["offset"] as! Int
        XCTAssertEqual(UInt16(payload[2 * offset]) | UInt16(payload[2 * offset + 1]) << 8,
                       H.bits(from: rounded.entries[4].op.tensors[tensor]!.scalars[0]))
    }

    func testVersion10FilesStillReadAsFloat32AndThePrecisionKeyIsChecked() throws {
        let bank = try F.tinyBank()
        let bytes = OperatorBankFile.serialize(bank)
        let parts = F.parts(bytes), payload = parts.payload
        var json = parts.json
        XCTAssertEqual(try OperatorBankFile.parse(bytes).precision, .float32)
        // A 1.0 file: no precision key.
        json["precision"] = nil
        let old = F.assemble(json, payload, version: (1, 0))
        let parsed = try OperatorBankFile.parse(old, file: "old.lcb")
        XCTAssertEqual(parsed, bank)
        XCTAssertEqual(parsed.precision, .float32)
        XCTAssertEqual(OperatorBankFile.serialize(parsed), bytes, "rewritten as 1.1")
        // An unknown or mistyped precision.
        for (value, fragment) in [("bfloat16", "unknown precision 'bfloat16' (known: float32, float16)"), ("FLOAT16", "unknown precision")] {
            var j = json
            j["precision"] = value
            let e = error(F.assemble(j, payload, version: (1, 1)))
            XCTAssertEqual(e?.section, "header")
            XCTAssertEqual(e?.offset, 16)
            XCTAssertTrue(e?.message.contains(fragment) ?? false, "\(String(describing: e))")
        }
        var numeric = json
        numeric["precision"] = 16
        XCTAssertEqual(error(F.assemble(numeric, payload, version: (1, 1)))?.section, "header")
        // A float32 payload labelled float16 has twice the elements its tensors claim; a float16 payload labelled
        // float32 has half — a 1.0 reader, which ignores the key, refuses a float16 file the same way.
        var relabelled = json
        relabelled["precision"] = "float16"
        let e16 = error(F.assemble(relabelled, payload, version: (1, 1)))
        XCTAssertEqual(e16?.section, "payload")
        XCTAssertTrue(e16?.message.contains("belong to no tensor") ?? false, "\(String(describing: e16))")
        let (json16, payload16) = F.parts(OperatorBankFile.serialize(try halfBank().rounded))
        for precision in ["float32", nil] as [String?] {
            var j = json16
            if let precision { j["precision"] = precision } else { j.removeValue(forKey: "precision") }
            let e = error(F.assemble(j, payload16, version: (1, 0)))
            XCTAssertEqual(e?.section, "payload", "\(String(describing: e))")
        }
    }

    // MARK: Hostile float16 files

    func testEveryTruncationOfAFloat16FileThrows() throws {
        let bytes = OperatorBankFile.serialize(try halfBank().rounded)
        for length in 0..<bytes.count {
            guard let e = error(Array(bytes[0..<length])) else { return }
            XCTAssertEqual(e.file, "bank.lcb")
            XCTAssertNotNil(e.offset)
            XCTAssertTrue(e.description.hasPrefix("bank.lcb: \(e.section) at byte "), e.description)
        }
        XCTAssertEqual(error(Array(bytes[0..<(bytes.count - 2)]))?.section, "checksum")
        XCTAssertEqual(error(bytes + [0, 0])?.section, "checksum", "bytes after the checksum")
    }

    func testEveryBitFlipOfAFloat16FileThrows() throws {
        let bytes = OperatorBankFile.serialize(try halfBank().rounded)
        let h = F.u64(bytes, 8)
        for i in 0..<bytes.count {
            for bit in 0..<8 {
                var b = bytes
                b[i] ^= UInt8(1 << bit)
                guard let e = error(b) else { return }
                if i < 4 { XCTAssertEqual(e.section, "magic") }
                if (16..<(16 + h)).contains(i) || i >= 24 + h { XCTAssertEqual(e.section, "checksum", "byte \(i) bit \(bit)") }
            }
        }
    }

    func testFloat16PayloadProblemsNameTheTensorAndTheByte() throws {
        let (json, payload) = F.parts(OperatorBankFile.serialize(try halfBank().rounded))
        // Non-finite halves: ±∞ and NaNs, each at the byte of its element.
        let record = tensors(json, entry: 3)[1]
        let name = record["name"] as! String, offset = record["offset"] as! Int
        for bad: UInt16 in [0x7C00, 0xFC00, 0x7E00, 0x7C01, 0xFFFF] {
            var p = payload
            p[2 * (offset + 2)] = UInt8(truncatingIfNeeded: bad)
            p[2 * (offset + 2) + 1] = UInt8(truncatingIfNeeded: bad >> 8)
            let file = F.assemble(json, p, version: (1, 1))
            guard let e = error(file) else { return }
            XCTAssertEqual(e.section, "payload")
            XCTAssertEqual(e.offset, payloadStart(file) + 2 * (offset + 2), e.description)
            XCTAssertTrue(e.message.contains("'\(name)'") && e.message.contains("entry 3") && e.message.contains("non-finite"), e.description)
        }
        // The largest finite half and a subnormal are fine.
        var p = payload
        p[2 * offset] = 0xFF; p[2 * offset + 1] = 0x7B
        p[2 * offset + 2] = 0x01; p[2 * offset + 3] = 0x80
        let edited = try OperatorBankFile.parse(F.assemble(json, p, version: (1, 1)))
        XCTAssertEqual(Array(edited.entries[3].op.tensors[name]!.scalars[0..<2]), [65504, -0x1p-24])

        // Lengths and ranges, at byte offsets in 2-byte elements.
        let elements = payload.count / 2
        let longer = F.assemble(json, payload + [0, 0], version: (1, 1))
        let extra = error(longer)
        XCTAssertEqual(extra?.offset, payloadStart(longer) + payload.count)
        XCTAssertTrue(extra?.message.contains("float16 values \(elements) ..< \(elements + 1) of the payload belong to no tensor") ?? false,
                      "\(String(describing: extra))")
        let oddFile = F.assemble(json, payload + [0], version: (1, 1))
        let odd = error(oddFile)
        XCTAssertEqual(odd?.section, "payload")
        XCTAssertEqual(odd?.offset, payloadStart(oddFile) - 8, "at the payload length")
        XCTAssertTrue(odd?.message.contains("odd") ?? false)
        let t0 = tensors(json, entry: 0)[0]["offset"] as! Int
        let overlapping = F.assemble(withTensor(json, entry: 0, tensor: 1) { $0["offset"] = t0 }, payload, version: (1, 1))
        let overlap = error(overlapping)
        XCTAssertEqual(overlap?.offset, payloadStart(overlapping) + 2 * t0)
        XCTAssertTrue(overlap?.message.contains("overlaps") ?? false)
        let beyond = F.assemble(withTensor(json, entry: 5, tensor: 0) { $0["offset"] = elements - 1 }, payload, version: (1, 1))
        let outside = error(beyond)
        XCTAssertEqual(outside?.section, "payload")
        XCTAssertEqual(outside?.offset, payloadStart(beyond))
        XCTAssertTrue(outside?.message.contains("outside the payload's \(elements) float16 values") ?? false, "\(String(describing: outside))")
        // A float32 file whose payload is a whole number of halves but not of floats.
        let (json32, payload32) = F.parts(OperatorBankFile.serialize(try F.tinyBank()))
        let file32 = F.assemble(json32, payload32 + [0, 0], version: (1, 1))
        let short = error(file32)
        XCTAssertEqual(short?.section, "payload")
        XCTAssertEqual(short?.offset, 16 + F.u64(file32, 8))
        XCTAssertTrue(short?.message.contains("not a whole number of float32 values (4 bytes each)") ?? false, "\(String(describing: short))")
    }

    // MARK: Banks that cannot be written as float16

    func testUnroundedAndOutOfRangeFloat16BanksAreRefused() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("refused-\(UUID().uuidString).lcb")
        defer { try? FileManager.default.removeItem(at: url) }
        func refused(_ bank: OperatorBank, _ fragments: [String], line: UInt = #line) {
            XCTAssertThrowsError(try OperatorBankFile.check(bank), line: line) { e in
                XCTAssertEqual((e as? OperatorBankError)?.section, "bank", line: line)
                for f in fragments { XCTAssertTrue("\(e)".contains(f), "\(e) lacks '\(f)'", line: line) }
            }
            XCTAssertThrowsError(try OperatorBankFile.write(bank, to: url), line: line)
            XCTAssertFalse(FileManager.default.fileExists(atPath: url.path), line: line)
        }
        let bank = try F.tinyBank()
        // Marked float16 but not rounded: the first tensor (by name) of entry 0 names its first unrounded element.
        var unrounded = bank
        unrounded.precision = .float16
        let name = bank.entries[0].op.tensors.keys.sorted()[0]
        let scalars = bank.entries[0].op.tensors[name]!.scalars
        let k = try XCTUnwrap(scalars.firstIndex { !H.isExactlyRepresentable($0) })
        refused(unrounded, ["entry 0 (slot 0, lowrank β 0.5)", "tensor '\(name)'", "holds \(scalars[k]) at element \(k)",
                            "float16 cannot represent exactly", "the nearest is \(H.rounded(scalars[k]))", "roundedToHalfPrecision()"])
        XCTAssertNoThrow(try OperatorBankFile.check(bank), "the same values are fine in float32")

        // Out of range: rounding leaves magnitudes ≥ 65520 alone (they would become ±∞) and check names them; a value
        // just above 65504 that was never rounded is out of range too.
        let rounded = bank.roundedToHalfPrecision()
        let target = tensorName(rounded, entry: 4, atLeast: 4)
        for (v, afterRounding) in [(70000, 70000), (-65520, -65520), (1e30, 1e30), (65519, 65504)] as [(Float, Float)] {
            var b = bank
            b.entries[4].op.tensors[target]!.scalars[3] = v
            let r = b.roundedToHalfPrecision()
            XCTAssertEqual(r.entries[4].op.tensors[target]!.scalars[3], afterRounding, "\(v)")
            if afterRounding.magnitude > 65504 {
                refused(r, ["entry 4 (slot 1, depthwise β 1.0)", "tensor '\(target)'", "holds \(v) at element 3",
                            "outside the float16 range ±65504"])
            } else {
                XCTAssertNoThrow(try OperatorBankFile.check(r))
            }
        }
        var above = rounded
        above.entries[4].op.tensors[target]!.scalars[3] = 65505
        refused(above, ["tensor '\(target)'", "holds 65505.0 at element 3", "outside the float16 range ±65504"])
        // Non-finite values stay non-finite and are refused as in float32.
        var nan = bank
        nan.entries[1].op.tensors[bank.entries[1].op.tensors.keys.sorted()[0]]!.scalars[0] = .nan
        refused(nan.roundedToHalfPrecision(), ["entry 1", "non-finite"])
        // And a rounded bank is fine.
        XCTAssertNoThrow(try OperatorBankFile.write(rounded, to: url))
        XCTAssertEqual(try OperatorBankFile.read(from: url), rounded)
    }
}
