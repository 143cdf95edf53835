import LiteCNNLayers
import LiteCNNTensor
import XCTest
import _TestSupport

final class ReshapingTests: XCTestCase {
    func testFlattenUsesPyTorchChannelMajorOrder() {
        let x = randomTensor([2, 3, 2, 4], seed: 61)
        let y = Flatten().forward(x)
        XCTAssertEqual(y.shape, [2, 24])
        // Feature index c·H·W + h·W + w, as torch.flatten on NCHW.
        for b in 0..<2 { for h in 0..<3 { for w in 0..<2 { for c in 0..<4 {
            XCTAssertEqual(y[b, c * 6 + h * 2 + w], x[b, h, w, c])
        } } } }
        XCTAssertEqual(y.scalars, x.nhwcToNCHW().scalars)
    }

    func testFlattenPassesVectorsThroughAndReshapesOneByOne() {
        let v = randomTensor([3, 7], seed: 62)
        XCTAssertEqual(Flatten().forward(v), v)
        let pooled = randomTensor([3, 1, 1, 7], seed: 63)
        XCTAssertEqual(Flatten().forward(pooled).scalars, pooled.scalars)
        XCTAssertEqual(Flatten().outputShape(for: [3, 1, 1, 7]), [3, 7])
    }

    func testFlattenGradient() {
        checkGradients(Flatten(), input: randomTensor([2, 3, 5, 4], seed: 64))
        checkGradients(Flatten(), input: randomTensor([2, 1, 1, 4], seed: 65))
    }

    func testChannelShuffleMatchesPyTorchPermutation() {
        // 6 channels, 3 groups: [0 1 | 2 3 | 4 5] → [0 2 4 1 3 5].
        let x = Tensor(shape: [1, 1, 2, 6], scalars: [0, 1, 2, 3, 4, 5, 10, 11, 12, 13, 14, 15])
        let y = ChannelShuffle(groups: 3).forward(x)
        XCTAssertEqual(y.scalars, [0, 2, 4, 1, 3, 5, 10, 12, 14, 11, 13, 15])
    }

    func testChannelShuffleGradient() {
        checkGradients(ChannelShuffle(groups: 2), input: randomTensor([2, 3, 3, 8], seed: 66))
        checkGradients(ChannelShuffle(groups: 3), input: randomTensor([1, 2, 2, 12], seed: 67))
    }
}
