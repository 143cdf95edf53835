import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes `bytes` to `url` atomically: a temporary file in the same directory is written in full, then renamed over
/// the target. Readers see either the old file or the new one, never a half-written one; on any failure the
/// temporary file is removed and nothing is left behind.
public func writeFileAtomically(_ bytes: [UInt8], to url: URL) throws {
    let target = url.standardizedFileURL
    let directory = target.deletingLastPathComponent()
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: directory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
        throw FileFormatError(file: target.path, reason: "cannot write: directory \(directory.path) does not exist")
    }
    let temporary = directory.appendingPathComponent(".\(target.lastPathComponent).tmp-\(UInt32.random(in: 0...UInt32.max))")
    do {
        try Data(bytes).write(to: temporary)
    } catch {
        try? FileManager.default.removeItem(at: temporary)
        throw FileFormatError(file: target.path, reason: "cannot write (\(error.localizedDescription))")
    }
    if rename(temporary.path, target.path) != 0 {
        let code = errno
        try? FileManager.default.removeItem(at: temporary)
        throw FileFormatError(file: target.path, reason: "cannot move the written file into place (\(String(cString: strerror(code))))")
    }
}
