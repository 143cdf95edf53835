import Foundation
import LiteCNN
import XCTest

/// Opt-in (LITECNN_RUNTIME_BENCH=1): runs the PyTorch-exported zoo in ~/.cache/litecnn-bench/onnx through the engine,
/// checks it against the exported outputs and prints median latencies. Skipped in CI (needs the large local files).
final class ZooParityBenchmark: XCTestCase {
    func testZooParityAndLatency() throws {
        guard ProcessInfo.processInfo.environment["LITECNN_RUNTIME_BENCH"] == "1" else { throw XCTSkip("set LITECNN_RUNTIME_BENCH=1") }
        let dir = URL(fileURLWithPath: "/root/.cache/litecnn-bench/onnx")
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dir.path))?.filter { $0.hasSuffix(".onnx") }.sorted() ?? []
        let threads = Int(ProcessInfo.processInfo.environment["LITECNN_THREADS"] ?? "") ?? 2
        for file in files {
            let name = String(file.dropLast(5))
            do {
                let graph = try ONNXFile.load(contentsOf: dir.appendingPathComponent(file))
                let input = try NPY.read(dir.appendingPathComponent(name + ".input.npy"))
                let expected = try NPY.read(dir.appendingPathComponent(name + ".output.npy"))
                let engine = try InferenceEngine(graph: graph, options: .init(threads: threads))
                let x = Tensor(shape: input.shape, scalars: input.scalars, layout: .nchw)
                let out = try engine.run(x)
                let diff = zip(out.scalars, expected.scalars).map { abs($0 - $1) }.max() ?? .nan
                var times: [Double] = []
                for _ in 0..<7 {
                    let t0 = DispatchTime.now().uptimeNanoseconds
                    _ = try engine.run(x)
                    times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
                }
                times.sort()
                print(String(format: "ZOO %-22@ maxAbsDiff %.2e  median %.2f ms  peak %.1f MB", name as NSString, diff, times[3],
                             Double(engine.peakActivationBytes) / 1e6))
            } catch {
                print("ZOO \(name) FAILED: \(error)")
            }
        }
    }
}
