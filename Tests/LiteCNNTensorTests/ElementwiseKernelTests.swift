import LiteCNNTensor
import XCTest

/// The runtime's elementwise kernels (activation pass, residual add + activation, squeeze-and-excitation scaling)
/// against their scalar definitions, on odd lengths (vector bodies plus scalar tails), in place and out of place,
/// at every instruction-set level.
final class ElementwiseKernelTests: XCTestCase {
    private let activations: [FusedActivation] = [.none, .relu, .relu6, .hardSwish, .sigmoid, .hardSigmoid, .silu]

    func testActivationMatchesDefinition() {
        for count in [1, 7, 17, 33, 70_001] {
            let x = randomFloats(count, seed: UInt64(count), range: -9...9)
            forEachInstructionSet { level in
                for activation in activations {
                    var y = [Float](repeating: .nan, count: count)
                    Kernels.activate(activation, src: x, dst: &y, count: count)
                    assertClose(y, x.map { activation.apply($0) }, depth: 1, "\(activation) n=\(count) level \(level)")
                    var inPlace = x
                    inPlace.withUnsafeMutableBufferPointer { Kernels.activate(activation, src: $0.baseAddress!, dst: $0.baseAddress!, count: count) }
                    XCTAssertEqual(inPlace, y, "in place \(activation) n=\(count) level \(level)")
                }
            }
        }
    }

    func testAddActivateMatchesDefinition() {
        for count in [1, 9, 31, 65_537] {
            let a = randomFloats(count, seed: 7 + UInt64(count), range: -5...5)
            let b = randomFloats(count, seed: 8 + UInt64(count), range: -5...5)
            forEachInstructionSet { level in
                for activation in activations {
                    var y = [Float](repeating: .nan, count: count)
                    Kernels.addActivate(activation, a: a, b: b, dst: &y, count: count)
                    assertClose(y, zip(a, b).map { activation.apply($0 + $1) }, depth: 1, "\(activation) n=\(count) level \(level)")
                }
            }
        }
    }

    func testScaleChannelsMatchesDefinition() {
        for (batch, positions, channels) in [(1, 1, 1), (2, 5, 17), (3, 49, 40), (1, 3136, 96), (2, 13, 1)] {
            let x = randomFloats(batch * positions * channels, seed: UInt64(positions * channels))
            let scale = randomFloats(batch * channels, seed: UInt64(channels), range: 0...1)
            var expected = x
            for n in 0..<batch { for p in 0..<positions { for c in 0..<channels {
                expected[(n * positions + p) * channels + c] *= scale[n * channels + c]
            } } }
            forEachInstructionSet { level in
                var y = [Float](repeating: .nan, count: x.count)
                Kernels.scaleChannels(input: x, scale: scale, output: &y, batch: batch, positions: positions, channels: channels)
                XCTAssertEqual(y, expected, "N=\(batch) P=\(positions) C=\(channels) level \(level)")
            }
        }
    }
}
