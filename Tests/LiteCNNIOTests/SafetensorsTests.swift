import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class SafetensorsTests: XCTestCase {
    // MARK: Round trips

    func testEncodeThenParseIsBitExactIncludingSpecialValues() throws {
        let special: [Float] = [0, -0.0, .infinity, -.infinity, .nan, Float(bitPattern: 0x7FC0_1234),
                                .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1.5, -3.25e-20]
        let tensors: [(name: String, tensor: Tensor)] = [
            ("a.weight", Tensor(shape: [2, 5], scalars: special)),
            ("scalar", Tensor(7)),
            ("empty", Tensor(shape: [0, 3])),
            ("b.bias", randomTensor([3, 1, 2, 2], seed: 3)),
        ]
        let bytes = Safetensors.encode(tensors, metadata: ["k": "v \"quoted\" \\ é\n"])
        XCTAssertEqual(Int(bytes[0]) % 8, 0, "header is padded to a multiple of 8")
        let file = try Safetensors.File(bytes: bytes, fileName: "memory")
        XCTAssertEqual(file.metadata, ["k": "v \"quoted\" \\ é\n"])
        XCTAssertEqual(file.names, ["a.weight", "scalar", "empty", "b.bias"])
        for (name, tensor) in tensors {
            let read = try file.tensor(named: name)
            XCTAssertEqual(read.shape, tensor.shape, name)
            XCTAssertEqual(read.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern), name)
        }
    }

    func testSaveAndLoadModelIsBitExactForWeightsAndBuffers() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let source = makeSmallModel()
        randomize(source, seed: 11)
        // A NaN with a payload and −0 must survive too.
        source.namedParameters()[0].parameter.value.scalars[0] = Float(bitPattern: 0x7FC0_0ABC)
        source.namedParameters()[0].parameter.value.scalars[1] = -0.0
        let url = directory.appendingPathComponent("small.safetensors")
        try saveWeights(source, to: url, metadata: ["purpose": "test"])

        let target = makeSmallModel()
        randomize(target, seed: 99)
        XCTAssertNotEqual(bitPatterns(target), bitPatterns(source))
        try loadWeights(into: target, from: url)
        XCTAssertEqual(bitPatterns(target), bitPatterns(source))

        let names = source.namedParameters().map(\.name)
        XCTAssertEqual(names, ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                               "3.weight", "5.weight", "5.bias"])
        let file = try Safetensors.read(url)
        XCTAssertEqual(Set(file.names), Set(names))
        XCTAssertEqual(file.metadata["purpose"], "test")
        XCTAssertEqual(file.metadata["format"], "pt")
        XCTAssertTrue(file.tensors.allSatisfy { $0.dtype == .f32 })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["small.safetensors"])
    }

    // MARK: Files written elsewhere

    func testReadsHandAssembledFileWithEveryDtype() throws {
        let file = try Safetensors.File(bytes: Fixtures.safetensorsMixed, fileName: "mixed")
        XCTAssertEqual(file.metadata, ["format": "pt", "note": "hand-written"])
        XCTAssertEqual(try file.tensor(named: "conv.weight").scalars, Fixtures.mixedWeight)
        XCTAssertEqual(try file.tensor(named: "conv.weight").shape, [2, 3])
        XCTAssertEqual(try file.tensor(named: "half").scalars, Fixtures.mixedHalf)
        XCTAssertEqual(try file.tensor(named: "brain").scalars, Fixtures.mixedBrain)
        XCTAssertEqual(try file.tensor(named: "double").scalars, Fixtures.mixedDouble)
        XCTAssertEqual(try file.tensor(named: "long").scalars, [5, -9])
        XCTAssertEqual(try file.tensor(named: "int").scalars, [7, -1])
        XCTAssertEqual(try file.tensor(named: "int").shape, [2, 1])
        let counter = try file.tensor(named: "bn.num_batches_tracked")
        XCTAssertEqual(counter.shape, [])
        XCTAssertEqual(counter.scalars, [12])
        XCTAssertEqual(file.info(named: "half")?.dtype, .f16)
        let missing = assertFormatError(try file.tensor(named: "nope"))
        XCTAssertEqual(missing?.tensor, "nope")
    }

    func testHalfPrecisionSpecialValues() throws {
        // +inf, −inf, NaN, largest subnormal, −0 as F16 bit patterns.
        let bits: [UInt16] = [0x7C00, 0xFC00, 0x7E00, 0x03FF, 0x8000]
        var data: [UInt8] = []
        for b in bits { withUnsafeBytes(of: b.littleEndian) { data += $0 } }
        let bytes = safetensorsBytes(header: #"{"h":{"dtype":"F16","shape":[5],"data_offsets":[0,10]}}"#, data: data)
        let values = try Safetensors.File(bytes: bytes, fileName: "half").tensor(named: "h").scalars
        XCTAssertEqual(values[0], .infinity)
        XCTAssertEqual(values[1], -.infinity)
        XCTAssertTrue(values[2].isNaN)
        XCTAssertEqual(values[3], Float(1023) * Float(sign: .plus, exponent: -24, significand: 1))
        XCTAssertEqual(values[4].bitPattern, (-0.0 as Float).bitPattern)
    }

    // MARK: Malformed files

    /// Every proper prefix of a valid file is refused with an error, never a crash.
    func testEveryTruncationThrows() throws {
        let model = makeSmallModel(classes: 2, convOutput: 2)
        let bytes = Safetensors.encode(model.namedParameters().map { ($0.name, $0.parameter.value) }, metadata: ["a": "b"])
        XCTAssertNoThrow(try Safetensors.File(bytes: bytes, fileName: "full"))
        for length in 0..<bytes.count {
            let error = assertFormatError(try Safetensors.File(bytes: Array(bytes.prefix(length)), fileName: "cut"),
                                          "prefix of \(length) bytes")
            XCTAssertEqual(error?.file, "cut")
        }
    }

    /// Random byte flips either parse (data bytes) or throw (header bytes); nothing traps.
    func testRandomByteFlipsNeverCrash() throws {
        let model = makeSmallModel(classes: 3, convOutput: 2)
        let bytes = Safetensors.encode(model.namedParameters().map { ($0.name, $0.parameter.value) }, metadata: ["m": "x"])
        var generator = SeededGenerator(seed: 5)
        var thrown = 0, parsed = 0
        for trial in 0..<3000 {
            var corrupted = bytes
            let flips = 1 + trial % 3
            for _ in 0..<flips {
                // Half the trials aim at the length field and header, where parsing decisions are made.
                let limit = trial % 2 == 0 ? min(bytes.count, 8 + Int(bytes[0]) + Int(bytes[1]) << 8) : bytes.count
                let position = Int(generator.next() % UInt64(limit))
                corrupted[position] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            }
            do {
                let file = try Safetensors.File(bytes: corrupted, fileName: "flipped")
                _ = file.allTensors()
                parsed += 1
            } catch is FileFormatError {
                thrown += 1
            }
        }
        XCTAssertGreaterThan(thrown, 500)
        XCTAssertGreaterThan(parsed, 100)
    }

    func testLyingHeaderLengthIsRefusedWithoutAllocating() throws {
        let valid = Safetensors.encode([("x", Tensor(shape: [2], scalars: [1, 2]))])
        for declared in [UInt64.max, UInt64(1) << 40, UInt64(valid.count - 7), 0, 1] {
            var bytes = valid
            withUnsafeBytes(of: declared.littleEndian) { for i in 0..<8 { bytes[i] = $0[i] } }
            let error = assertFormatError(try Safetensors.File(bytes: bytes, fileName: "liar"), "declared \(declared)")
            XCTAssertEqual(error?.offset, 0, "declared \(declared)")
        }
        let huge = safetensorsBytes(header: "{}", data: [], declaredLength: 200_000_000)
        XCTAssertTrue(assertFormatError(try Safetensors.File(bytes: huge, fileName: "huge"))?.reason.contains("exceeds") ?? false)
    }

    func testOverlappingOffsetsAreRefused() throws {
        let header = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}"#
        let error = assertFormatError(try Safetensors.File(bytes: safetensorsBytes(header: header, data: .init(repeating: 0, count: 12)),
                                                           fileName: "overlap"))
        XCTAssertEqual(error?.tensor, "b")
        XCTAssertTrue(error?.reason.contains("overlap") ?? false, error?.description ?? "")
        XCTAssertTrue(error?.description.hasPrefix("overlap: byte ") ?? false, error?.description ?? "")
    }

    func testMalformedHeadersAreRefusedWithContext() throws {
        let cases: [(header: String, data: Int, expect: String)] = [
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 12, "cover"),                 // trailing bytes
            (#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, 8, "gap"),                    // hole at the start
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, 8, "needs 12 bytes"),         // shape × size
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#, 8, "past"),                  // out of bounds
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}"#, 8, "begin"),                  // reversed
            (#"{"a":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}}"#, 8, "unsupported dtype Q7"),
            (#"{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}"#, 8, "non-negative"),
            (#"{"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}}"#, 8, "non-negative"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}"#, 8, "unexpected field"),
            (#"{"a":{"dtype":"F32","shape":[2]}}"#, 8, "missing data_offsets"),
            (#"{"a":{"dtype":"F32","shape":[99999999999,99999999999,99999999999],"data_offsets":[0,8]}}"#, 8, "too many"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,99999999999999999999999]}}"#, 8, "non-negative integers"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, "duplicate"),
            (#"{"__metadata__":{"k":1},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, 8, "not a string"),
            (#"{"a":[1,2]}"#, 8, "expected an object"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#, 8, "not valid JSON"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}} x"#, 8, "not valid JSON"),
            ("[1]", 0, "does not start with '{'"),
            (String(repeating: "{\"a\":", count: 100) + "1" + String(repeating: "}", count: 100), 0, "nested"),
        ]
        for (header, dataLength, expected) in cases {
            let bytes = safetensorsBytes(header: header, data: .init(repeating: 0, count: dataLength))
            let error = assertFormatError(try Safetensors.File(bytes: bytes, fileName: "bad.safetensors"), header)
            XCTAssertTrue(error?.description.contains(expected) ?? false, "\(header): \(error?.description ?? "no error")")
            XCTAssertTrue(error?.description.hasPrefix("bad.safetensors: ") ?? false)
        }
    }

    // MARK: Atomic writes

    func testWriteIntoMissingDirectoryThrowsAndCreatesNothing() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("missing/w.safetensors")
        let error = assertFormatError(try Safetensors.write([("x", Tensor(1))], to: url))
        XCTAssertTrue(error?.description.contains("does not exist") ?? false, error?.description ?? "")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), [])
    }

    func testFailedRenameLeavesNoTemporaryFile() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // The target is an existing non-empty directory, so the final rename fails after the data was written.
        let target = directory.appendingPathComponent("occupied")
        try FileManager.default.createDirectory(at: target, withIntermediateDirectories: false)
        try Data([1]).write(to: target.appendingPathComponent("keep"))
        assertFormatError(try Safetensors.write([("x", Tensor(1))], to: target))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["occupied"])
    }

    func testOverwriteReplacesTheFileCompletely() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let url = directory.appendingPathComponent("w.safetensors")
        try Safetensors.write([("big", Tensor(shape: [100], repeating: 1))], to: url)
        try Safetensors.write([("small", Tensor(2))], to: url)
        let file = try Safetensors.read(url)
        XCTAssertEqual(file.names, ["small"])
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: directory.path), ["w.safetensors"])
    }
}
