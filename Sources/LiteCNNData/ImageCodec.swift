// PNG and JPEG decoding to HWC float tensors, and PNG/JPEG encoding, through the system's libpng and libjpeg(-turbo).
// The C side (Sources/CImageDecode) keeps the libraries' longjmp error handling out of Swift.
import CImageDecode
import Foundation
import LiteCNNIO
import LiteCNNTensor

/// Decodes PNG and JPEG files to `[height, width, channels]` `Float` tensors in [0, 1] and encodes tensors as PNG/JPEG.
///
/// Decoding gives `channels` = 1 for grayscale files and 3 for everything else, the way torchvision's
/// `read_image(mode=ImageReadMode.UNCHANGED)` then dropping alpha would:
/// - PNG: every color type and bit depth. Palette images are expanded to RGB, 1/2/4-bit gray to 8 bits; 16-bit samples
///   are divided by 65535 (8-bit by 255, as `ToTensor`); alpha (an alpha channel or a palette's tRNS) is dropped without
///   compositing, as `PIL.Image.convert("RGB")` does; Adam7-interlaced files work.
/// - JPEG: baseline and progressive, gray or YCbCr/RGB (converted to RGB by libjpeg); CMYK/YCCK files are refused; a
///   file that ends before its image data does is an error (libjpeg alone would pad it with gray).
///
/// Images with more than `maximumPixels` pixels are refused before pixel memory is allocated (decompression bombs).
/// Every failure is a `FileFormatError` whose description starts with the file name.
public enum ImageCodec {
    /// The largest width × height decoded: 2^26 (67 M pixels, e.g. 8192 × 8192).
    public static let maximumPixels = 1 << 26

    /// The container a file's first bytes announce.
    public enum Format: String, Sendable {
        case png, jpeg
    }

    /// The format of `bytes` from its signature (`\x89PNG\r\n\x1a\n` or `FF D8 FF`), or nil.
    public static func format(of bytes: [UInt8]) -> Format? {
        if bytes.count >= 8, bytes[0..<8].elementsEqual([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]) { return .png }
        if bytes.count >= 3, bytes[0] == 0xFF, bytes[1] == 0xD8, bytes[2] == 0xFF { return .jpeg }
        return nil
    }

    /// Decodes PNG or JPEG `bytes` (the format is taken from the signature, not the name) to `[H, W, C]` in [0, 1],
    /// C = 1 (gray) or 3 (RGB). `fileName` is used in error messages.
    public static func decode(_ bytes: [UInt8], fileName: String) throws -> Tensor {
        guard let format = format(of: bytes) else {
            let start = bytes.prefix(8).map { String(format: "%02X", $0) }.joined(separator: " ")
            throw FileFormatError(file: fileName, offset: 0,
                                  reason: bytes.isEmpty ? "file is empty (expected a PNG or JPEG image)"
                                                        : "not a PNG or JPEG image (it starts with \(start))")
        }
        var image = LiteCNNImage()
        var message = [CChar](repeating: 0, count: Int(LITECNN_MESSAGE_CAPACITY))
        let status = bytes.withUnsafeBufferPointer { input in
            message.withUnsafeMutableBufferPointer { text in
                switch format {
                case .png:
                    litecnn_decode_png(input.baseAddress, input.count, UInt64(maximumPixels), &image, text.baseAddress)
                case .jpeg:
                    litecnn_decode_jpeg(input.baseAddress, input.count, UInt64(maximumPixels), &image, text.baseAddress)
                }
            }
        }
        defer { litecnn_image_free(&image) }
        guard status == Int32(LITECNN_OK), let pixels = image.pixels else {
            let reason = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw FileFormatError(file: fileName, reason: "cannot decode \(format == .png ? "PNG" : "JPEG"): \(reason)")
        }
        let height = Int(image.height), width = Int(image.width), channels = Int(image.channels)
        let count = height * width * channels
        if image.bytesPerSample == 2 {
            let samples = pixels.assumingMemoryBound(to: UInt16.self)
            return Tensor(shape: [height, width, channels], layout: .plain) { out in
                for i in 0..<count { out[i] = Float(samples[i]) / 65535 }
            }
        }
        let samples = pixels.assumingMemoryBound(to: UInt8.self)
        return Tensor(shape: [height, width, channels], layout: .plain) { out in
            for i in 0..<count { out[i] = Float(samples[i]) / 255 }
        }
    }

    /// Reads and decodes the PNG or JPEG file at `url`; errors name its path.
    public static func decode(contentsOf url: URL) throws -> Tensor {
        try decode(readDataFile(url), fileName: url.path)
    }

    /// The width, height and decoded channel count (1 or 3) of a PNG or JPEG, read from its header only.
    public static func probe(_ bytes: [UInt8], fileName: String) throws -> (width: Int, height: Int, channels: Int) {
        var image = LiteCNNImage()
        var message = [CChar](repeating: 0, count: Int(LITECNN_MESSAGE_CAPACITY))
        let status = bytes.withUnsafeBufferPointer { input in
            message.withUnsafeMutableBufferPointer { litecnn_probe_image(input.baseAddress, input.count, &image, $0.baseAddress) }
        }
        guard status == Int32(LITECNN_OK) else {
            let reason = String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw FileFormatError(file: fileName, reason: "cannot read the image header: \(reason)")
        }
        return (Int(image.width), Int(image.height), Int(image.channels))
    }

    /// Encodes `image` (`[H, W, 1]` gray or `[H, W, 3]` RGB, values in [0, 1], clamped) as an 8-bit PNG; each value is
    /// stored as `round(v · 255)`, so decoding gives back `round(v · 255) / 255` exactly.
    public static func encodePNG(_ image: Tensor) throws -> [UInt8] {
        let (height, width, channels) = try checkedImageShape(image, context: "encodePNG")
        let samples = quantized(image)
        return try encodePNG(samples: samples, width: width, height: height,
                             colorType: channels == 1 ? 0 : 2, bitDepth: 8, context: "PNG encoder")
    }

    /// Encodes `image` (`[H, W, 1|3]` in [0, 1], clamped) as a JFIF JPEG of `quality` 1…100 (libjpeg's scale),
    /// progressive when `progressive` is true.
    public static func encodeJPEG(_ image: Tensor, quality: Int = 90, progressive: Bool = false) throws -> [UInt8] {
        let (height, width, channels) = try checkedImageShape(image, context: "encodeJPEG")
        guard (1...100).contains(quality) else {
            throw FileFormatError(file: "JPEG encoder", reason: "quality must be in 1…100, got \(quality)")
        }
        let samples = quantized(image)
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: Int(LITECNN_MESSAGE_CAPACITY))
        let status = samples.withUnsafeBufferPointer { pixels in
            message.withUnsafeMutableBufferPointer {
                litecnn_encode_jpeg(pixels.baseAddress, Int32(width), Int32(height), Int32(channels), Int32(quality),
                                    progressive ? 1 : 0, &output, &length, $0.baseAddress)
            }
        }
        defer { litecnn_buffer_free(output) }
        guard status == Int32(LITECNN_OK), let output else {
            throw FileFormatError(file: "JPEG encoder", reason: cString(message))
        }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    /// Encodes raw samples with libpng: `colorType` 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA; `bitDepth` 8
    /// (`samples` holds bytes) or 16 (`samples` holds host-endian `UInt16`s as bytes); `palette` holds RGB triples and
    /// `paletteAlphas` optional tRNS entries for palette images. Used to produce every PNG variant in tests.
    public static func encodePNG(samples: [UInt8], width: Int, height: Int, colorType: Int, bitDepth: Int,
                                 palette: [UInt8] = [], paletteAlphas: [UInt8] = [], interlaced: Bool = false,
                                 context: String = "PNG encoder") throws -> [UInt8] {
        let channels = [0: 1, 2: 3, 3: 1, 4: 2, 6: 4][colorType] ?? 0
        guard channels > 0, bitDepth == 8 || bitDepth == 16, width > 0, height > 0,
              samples.count == width * height * channels * bitDepth / 8 else {
            throw FileFormatError(file: context, reason: "\(samples.count) bytes do not hold a \(width)×\(height) PNG of color type \(colorType) at \(bitDepth) bits")
        }
        var output: UnsafeMutablePointer<UInt8>?
        var length = 0
        var message = [CChar](repeating: 0, count: Int(LITECNN_MESSAGE_CAPACITY))
        let status = samples.withUnsafeBufferPointer { pixels in
            palette.withUnsafeBufferPointer { paletteBytes in
                paletteAlphas.withUnsafeBufferPointer { alphaBytes in
                    message.withUnsafeMutableBufferPointer {
                        litecnn_encode_png(pixels.baseAddress, Int32(width), Int32(height), Int32(colorType), Int32(bitDepth),
                                           paletteBytes.baseAddress, Int32(palette.count / 3), alphaBytes.baseAddress,
                                           Int32(paletteAlphas.count), interlaced ? 1 : 0, &output, &length, $0.baseAddress)
                    }
                }
            }
        }
        defer { litecnn_buffer_free(output) }
        guard status == Int32(LITECNN_OK), let output else { throw FileFormatError(file: context, reason: cString(message)) }
        return Array(UnsafeBufferPointer(start: output, count: length))
    }

    // MARK: Helpers

    private static func checkedImageShape(_ image: Tensor, context: String) throws -> (Int, Int, Int) {
        guard image.rank == 3, image.shape[0] > 0, image.shape[1] > 0, image.shape[2] == 1 || image.shape[2] == 3 else {
            throw TensorError.shapeMismatch(expected: [-1, -1, 3], actual: image.shape, context: "\(context) (an [H, W, 1 or 3] image)")
        }
        return (image.shape[0], image.shape[1], image.shape[2])
    }

    private static func quantized(_ image: Tensor) -> [UInt8] {
        image.scalars.map { value in
            let clamped = value.isNaN ? 0 : min(max(value, 0), 1)
            return UInt8((clamped * 255).rounded())
        }
    }

    private static func cString(_ message: [CChar]) -> String {
        String(decoding: message.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Reads a whole file, with a `FileFormatError` naming it when that fails.
func readDataFile(_ url: URL) throws -> [UInt8] {
    do {
        return [UInt8](try Data(contentsOf: url))
    } catch {
        throw FileFormatError(file: url.path, reason: "cannot read file (\(error.localizedDescription))")
    }
}

/// The size of the file at `url` in bytes, with an error naming it.
func dataFileSize(_ url: URL) throws -> Int {
    do {
        let attributes = try FileManager.default.attributesOfItem(atPath: url.path)
        return (attributes[.size] as? NSNumber)?.intValue ?? 0
    } catch {
        throw FileFormatError(file: url.path, reason: "cannot read file (\(error.localizedDescription))")
    }
}
