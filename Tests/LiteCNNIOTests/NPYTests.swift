import Foundation
import LiteCNN
import XCTest
import _TestSupport

final class NPYTests: XCTestCase {
    func testRoundTripEveryRankBitExact() throws {
        let directory = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        for (index, shape) in [[], [5], [2, 3], [2, 1, 4], [1, 2, 3, 2], [2, 1, 1, 2, 3], [0, 4]].enumerated() {
            var tensor = randomTensor(shape, seed: UInt64(index))
            if tensor.count > 1 { tensor.scalars[0] = Float(bitPattern: 0x7FC0_0001); tensor.scalars[1] = -0.0 }
            let url = directory.appendingPathComponent("t\(index).npy")
            try NPY.write(tensor, to: url)
            let bytes = [UInt8](try Data(contentsOf: url))
            let headerEnd = 10 + Int(bytes[8]) + Int(bytes[9]) << 8
            XCTAssertEqual(headerEnd % 64, 0, "data starts 64-byte aligned")
            let read = try NPY.read(url)
            XCTAssertEqual(read.shape, shape)
            XCTAssertEqual(read.scalars.map(\.bitPattern), tensor.scalars.map(\.bitPattern))
        }
    }

    func testReadsNumPyWrittenFiles() throws {
        let f32 = try NPY.decode(Fixtures.npyFloat32, fileName: "f32")
        XCTAssertEqual(f32.shape, [2, 3, 4])
        XCTAssertEqual(f32.scalars, Fixtures.npyFloat32Values)
        let f64 = try NPY.decode(Fixtures.npyFloat64, fileName: "f64")
        XCTAssertEqual(f64.shape, [5])
        XCTAssertEqual(f64.scalars, Fixtures.npyFloat64Values)
        let u8 = try NPY.decode(Fixtures.npyUInt8, fileName: "u8")
        XCTAssertEqual(u8.shape, [2, 3])
        XCTAssertEqual(u8.scalars, [0, 40, 80, 120, 160, 200])
        let i64 = try NPY.decode(Fixtures.npyInt64, fileName: "i64")
        XCTAssertEqual(i64.scalars, [-3, 0, 7, 1_048_576])
        let scalar = try NPY.decode(Fixtures.npyScalar, fileName: "scalar")
        XCTAssertEqual(scalar.shape, [])
        XCTAssertEqual(scalar.scalars, [2.5])
        XCTAssertEqual(try NPY.decode(Fixtures.npyEmpty, fileName: "empty").shape, [0, 3])
        XCTAssertEqual(try NPY.decode(Fixtures.npyVersion2, fileName: "v2").scalars, [0, 1, 2])
        XCTAssertEqual(try NPY.decode(Fixtures.npyVersion3, fileName: "v3").scalars, [0.5, 1.5, 2.5])
        // LiteCNN's own encoding of the same array matches NumPy's byte for byte.
        XCTAssertEqual(NPY.encode(f32), Fixtures.npyFloat32)
    }

    func testFortranOrderAndBigEndianAreRefusedClearly() throws {
        let fortran = assertFormatError(try NPY.decode(Fixtures.npyFortran, fileName: "f.npy"))
        XCTAssertTrue(fortran?.description.contains("Fortran") ?? false, fortran?.description ?? "")
        XCTAssertTrue(fortran?.description.hasPrefix("f.npy: byte ") ?? false)
        let big = assertFormatError(try NPY.decode(Fixtures.npyBigEndian, fileName: "b.npy"))
        XCTAssertTrue(big?.description.contains(">f4") ?? false, big?.description ?? "")
    }

    func testEveryTruncationAndLyingHeaderThrows() throws {
        let bytes = NPY.encode(randomTensor([2, 3], seed: 1))
        for length in 0..<bytes.count {
            assertFormatError(try NPY.decode(Array(bytes.prefix(length)), fileName: "cut"), "prefix \(length)")
        }
        var lying = bytes
        lying[8] = 0xFF; lying[9] = 0xFF
        XCTAssertEqual(assertFormatError(try NPY.decode(lying, fileName: "lie"))?.offset, 8)
        var badVersion = bytes
        badVersion[6] = 9
        assertFormatError(try NPY.decode(badVersion, fileName: "v9"))
        var generator = SeededGenerator(seed: 3)
        for _ in 0..<2000 {
            var corrupted = bytes
            let position = Int(generator.next() % 128)
            corrupted[position] ^= UInt8(truncatingIfNeeded: generator.next() | 1)
            _ = try? NPY.decode(corrupted, fileName: "flip")
        }
    }

    func testHeaderDictVariants() throws {
        func file(_ header: String, data: [UInt8]) -> [UInt8] {
            let text = Array(header.utf8)
            return NPY.magic + [1, 0, UInt8(text.count & 0xFF), UInt8(text.count >> 8)] + text + data
        }
        let four: [UInt8] = [0, 0, 128, 63]  // 1.0 as <f4
        // Key order, double quotes, Python 2 long suffix, no trailing comma.
        let t = try NPY.decode(file(#"{"shape": (1L,), "fortran_order": False, "descr": "<f4"}"#, data: four), fileName: "x")
        XCTAssertEqual(t.scalars, [1])
        assertFormatError(try NPY.decode(file("{'descr': '<f4', 'shape': (1,), }", data: four), fileName: "x"))
        assertFormatError(try NPY.decode(file("{'descr': '<f4', 'fortran_order': False, 'shape': (-1,), }", data: four), fileName: "x"))
        assertFormatError(try NPY.decode(file("{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }", data: four), fileName: "x"))
        assertFormatError(try NPY.decode(file("{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", data: four), fileName: "x"))
        assertFormatError(try NPY.decode(file("{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", data: four), fileName: "x"))
        assertFormatError(try NPY.decode(file("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", data: four), fileName: "x"))
    }
}
