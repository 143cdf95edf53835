// Tests of PNG/JPEG decoding and encoding (ImageCodec): exact PNG pixels for every color type and bit depth, JPEG
// within tolerance (baseline, progressive, gray), and errors naming the file for corrupt, truncated and huge images.
import CImageDecode
import Foundation
import LiteCNNData
import LiteCNNIO
import LiteCNNTensor
import XCTest

/// CRC-32 (ISO 3309, as PNG chunks use), to build PNGs with chosen header fields.
private func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for byte in bytes {
        crc ^= UInt32(byte)
        for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
}

private func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8(value >> 16 & 0xFF), UInt8(value >> 8 & 0xFF), UInt8(value & 0xFF)]
}

/// The bytes of host-endian `UInt16` samples.
private func sampleBytes(_ samples: [UInt16]) -> [UInt8] {
    samples.withUnsafeBytes { Array($0) }
}

private func smoothImage(height: Int, width: Int, channels: Int) -> Tensor {
    var values: [Float] = []
    for y in 0..<height { for x in 0..<width { for c in 0..<channels {
        values.append([Float(x + y) / Float(width + height), Float(x) / Float(width), Float(y) / Float(height)][c] * 0.8 + 0.1)
    } } }
    return Tensor(shape: [height, width, channels], scalars: values, layout: .plain)
}

final class ImageCodecTests: XCTestCase {
    func testPNGRoundTripIsExactForGrayAndRGB() throws {
        for channels in [1, 3] {
            let image = DataFixtures.patternImage(height: 7, width: 5, channels: channels, step: 13)
            let png = try ImageCodec.encodePNG(image)
            XCTAssertEqual(ImageCodec.format(of: png), .png)
            let decoded = try ImageCodec.decode(png, fileName: "x.png")
            XCTAssertEqual(decoded.shape, [7, 5, channels])
            XCTAssertEqual(decoded.scalars, image.scalars)
            XCTAssertEqual(try ImageCodec.probe(png, fileName: "x.png").channels, channels)
        }
        // Values are clamped and rounded to the nearest of 256 levels.
        let odd = Tensor(shape: [1, 3, 1], scalars: [-1, 0.5, 7], layout: .plain)
        XCTAssertEqual(try ImageCodec.decode(ImageCodec.encodePNG(odd), fileName: "odd").scalars, [0, 128 / 255, 1])
        XCTAssertThrowsError(try ImageCodec.encodePNG(Tensor(shape: [2, 2, 2], repeating: 0)))
    }

    func testPNGVariantsAlphaPalette16BitInterlaced() throws {
        let (height, width) = (3, 4)
        let pixels = height * width
        // RGBA: alpha dropped without compositing.
        let rgba = (0..<(pixels * 4)).map { UInt8($0 * 5 % 256) }
        var decoded = try ImageCodec.decode(ImageCodec.encodePNG(samples: rgba, width: width, height: height, colorType: 6, bitDepth: 8), fileName: "rgba.png")
        XCTAssertEqual(decoded.shape, [3, 4, 3])
        XCTAssertEqual(decoded.scalars, (0..<pixels).flatMap { p in (0..<3).map { Float(rgba[4 * p + $0]) / 255 } })
        // Gray + alpha: one channel.
        let grayAlpha = (0..<(pixels * 2)).map { UInt8($0 * 9 % 256) }
        decoded = try ImageCodec.decode(ImageCodec.encodePNG(samples: grayAlpha, width: width, height: height, colorType: 4, bitDepth: 8), fileName: "ga.png")
        XCTAssertEqual(decoded.shape, [3, 4, 1])
        XCTAssertEqual(decoded.scalars, (0..<pixels).map { Float(grayAlpha[2 * $0]) / 255 })
        // Palette with transparency: expanded to the palette's RGB, transparency dropped.
        let palette: [UInt8] = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]
        let indices = (0..<pixels).map { UInt8($0 % 4) }
        let palettePNG = try ImageCodec.encodePNG(samples: indices, width: width, height: height, colorType: 3, bitDepth: 8,
                                                  palette: palette, paletteAlphas: [0, 128])
        XCTAssertEqual(try ImageCodec.probe(palettePNG, fileName: "p.png").channels, 3)
        decoded = try ImageCodec.decode(palettePNG, fileName: "p.png")
        XCTAssertEqual(decoded.shape, [3, 4, 3])
        XCTAssertEqual(decoded.scalars, indices.flatMap { i in (0..<3).map { Float(palette[3 * Int(i) + $0]) / 255 } })
        // 16-bit gray and RGBA: full precision, scaled by 1/65535.
        let gray16 = (0..<pixels).map { UInt16(($0 * 5003 + 17) % 65536) }
        decoded = try ImageCodec.decode(ImageCodec.encodePNG(samples: sampleBytes(gray16), width: width, height: height, colorType: 0, bitDepth: 16), fileName: "g16.png")
        XCTAssertEqual(decoded.shape, [3, 4, 1])
        XCTAssertEqual(decoded.scalars, gray16.map { Float($0) / 65535 })
        let rgba16 = (0..<(pixels * 4)).map { UInt16(($0 * 2741 + 3) % 65536) }
        decoded = try ImageCodec.decode(ImageCodec.encodePNG(samples: sampleBytes(rgba16), width: width, height: height, colorType: 6, bitDepth: 16), fileName: "rgba16.png")
        XCTAssertEqual(decoded.shape, [3, 4, 3])
        XCTAssertEqual(decoded.scalars, (0..<pixels).flatMap { p in (0..<3).map { Float(rgba16[4 * p + $0]) / 65535 } })
        // Adam7 interlacing.
        let rgb = (0..<(pixels * 3)).map { UInt8($0 * 23 % 256) }
        decoded = try ImageCodec.decode(ImageCodec.encodePNG(samples: rgb, width: width, height: height, colorType: 2, bitDepth: 8, interlaced: true), fileName: "i.png")
        XCTAssertEqual(decoded.scalars, rgb.map { Float($0) / 255 })
    }

    func testJPEGBaselineProgressiveAndGray() throws {
        for (channels, progressive) in [(3, false), (3, true), (1, false), (1, true)] {
            let image = smoothImage(height: 24, width: 20, channels: channels)
            let jpeg = try ImageCodec.encodeJPEG(image, quality: 95, progressive: progressive)
            XCTAssertEqual(ImageCodec.format(of: jpeg), .jpeg)
            if progressive { XCTAssertTrue(zip(jpeg, jpeg.dropFirst()).contains { $0 == 0xFF && $1 == 0xC2 }, "progressive SOF2 marker") }
            let decoded = try ImageCodec.decode(jpeg, fileName: "x.jpg")
            XCTAssertEqual(decoded.shape, [24, 20, channels])
            let errors = zip(decoded.scalars, image.scalars).map { abs($0 - $1) }
            XCTAssertLessThan(errors.max()!, 0.06, "channels \(channels) progressive \(progressive)")
            XCTAssertLessThan(errors.reduce(0, +) / Float(errors.count), 0.012)
            XCTAssertEqual(try ImageCodec.probe(jpeg, fileName: "x.jpg").channels, channels)
        }
    }

    func testCorruptTruncatedAndHugeImagesNameTheFile() throws {
        let png = try ImageCodec.encodePNG(DataFixtures.patternImage(height: 16, width: 16, channels: 3))
        assertThrowsMentioning(["cut.png", "truncated"]) { _ = try ImageCodec.decode(Array(png.prefix(png.count / 2)), fileName: "cut.png") }
        var flipped = png
        flipped[png.count / 2] ^= 0x55   // inside IDAT: the chunk's CRC no longer matches
        assertThrowsMentioning(["flipped.png", "PNG"]) { _ = try ImageCodec.decode(flipped, fileName: "flipped.png") }
        assertThrowsMentioning(["text.png", "not a PNG or JPEG"]) { _ = try ImageCodec.decode(Array("hello world".utf8), fileName: "text.png") }
        assertThrowsMentioning(["empty.jpg", "empty"]) { _ = try ImageCodec.decode([], fileName: "empty.jpg") }

        // A valid IHDR announcing 100 000 × 100 000 pixels is refused before anything is allocated.
        let ihdr = Array("IHDR".utf8) + bigEndian(100_000) + bigEndian(100_000) + [8, 2, 0, 0, 0]
        let huge = Array(png.prefix(8)) + bigEndian(13) + ihdr + bigEndian(crc32(ihdr)) + Array(png.dropFirst(33))
        assertThrowsMentioning(["huge.png", "10000000000 pixels", "limit"]) { _ = try ImageCodec.decode(huge, fileName: "huge.png") }

        let jpeg = try ImageCodec.encodeJPEG(smoothImage(height: 32, width: 32, channels: 3), quality: 90)
        assertThrowsMentioning(["cut.jpg"]) { _ = try ImageCodec.decode(Array(jpeg.prefix(jpeg.count * 2 / 3)), fileName: "cut.jpg") }
        assertThrowsMentioning(["header.jpg"]) { _ = try ImageCodec.decode(Array(jpeg.prefix(40)), fileName: "header.jpg") }
        assertThrowsMentioning(["zeros.jpg"]) { _ = try ImageCodec.decode([0xFF, 0xD8, 0xFF] + [UInt8](repeating: 0, count: 100), fileName: "zeros.jpg") }
        var hugeJPEG = jpeg
        let sof = try XCTUnwrap(zip(jpeg.indices, jpeg.dropFirst()).first { jpeg[$0.0] == 0xFF && $0.1 == 0xC0 }?.0)
        hugeJPEG[sof + 5] = 0xFF; hugeJPEG[sof + 6] = 0x00   // height 65280 (libjpeg itself stops at 65500)
        hugeJPEG[sof + 7] = 0xFF; hugeJPEG[sof + 8] = 0x00   // width
        assertThrowsMentioning(["huge.jpg", "65280x65280", "limit"]) { _ = try ImageCodec.decode(hugeJPEG, fileName: "huge.jpg") }

        // CMYK JPEGs are refused by name (PIL would convert them; libjpeg gives no RGB for them).
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: 256)
        let cmykPixels = [UInt8](repeating: 60, count: 8 * 8 * 4)
        XCTAssertEqual(litecnn_encode_jpeg(cmykPixels, 8, 8, 4, 90, 0, &output, &length, &message), 0)
        let cmyk = Array(UnsafeBufferPointer(start: output, count: length))
        litecnn_buffer_free(output)
        assertThrowsMentioning(["cmyk.jpg", "CMYK"]) { _ = try ImageCodec.decode(cmyk, fileName: "cmyk.jpg") }
        assertThrowsMentioning(["cmyk.jpg", "CMYK"]) { _ = try ImageCodec.probe(cmyk, fileName: "cmyk.jpg") }

        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-missing-\(UUID().uuidString).png")
        assertThrowsMentioning([missing.path]) { _ = try ImageCodec.decode(contentsOf: missing) }
    }
}
