import Foundation
import LiteCNN
import XCTest
import _TestSupport

/// A fresh empty directory under the system temporary directory, removed by the caller.
func makeTemporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("litecnn-io-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// Conv2D + BatchNorm2D + ReLU + GlobalAvgPool + Linear: weights, a bias-free conv, and buffers.
func makeSmallModel(classes: Int = 5, convOutput: Int = 4) -> Sequential {
    Sequential(
        Conv2D(3, convOutput, kernelSize: 3, padding: 1),
        BatchNorm2D(convOutput),
        ReLU(),
        Conv2D(convOutput, convOutput, kernelSize: 1, bias: false),
        GlobalAvgPool(),
        Linear(convOutput, classes)
    )
}

/// Fills every parameter and buffer with seeded random values (buffers too, so they are checked).
func randomize(_ model: any Layer, seed: UInt64) {
    for (index, entry) in model.namedParameters().enumerated() {
        entry.parameter.value = randomTensor(entry.parameter.shape, seed: seed &+ UInt64(index), range: -2...2)
    }
}

/// The bit patterns of every named tensor (so NaN payloads and −0 compare exactly).
func bitPatterns(_ model: any Layer) -> [String: [UInt32]] {
    Dictionary(uniqueKeysWithValues: model.namedParameters().map { ($0.name, $0.parameter.value.scalars.map(\.bitPattern)) })
}

/// Asserts that `body` throws a `FileFormatError` and returns it.
@discardableResult
func assertFormatError<T>(_ body: @autoclosure () throws -> T, _ message: String = "",
                          file: StaticString = #filePath, line: UInt = #line) -> FileFormatError? {
    do {
        _ = try body()
        XCTFail("expected a FileFormatError. \(message)", file: file, line: line)
    } catch let error as FileFormatError {
        return error
    } catch {
        XCTFail("expected a FileFormatError, got \(error). \(message)", file: file, line: line)
    }
    return nil
}

/// Builds safetensors bytes from a header written as JSON text and raw data (for malformed-file tests).
func safetensorsBytes(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> [UInt8] {
    let text = Array(header.utf8)
    var bytes: [UInt8] = []
    withUnsafeBytes(of: (declaredLength ?? UInt64(text.count)).littleEndian) { bytes += $0 }
    return bytes + text + data
}
