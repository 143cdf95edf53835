import LiteCNNTensor
import XCTest
import _TestSupport

/// The tensor operations of `TensorOps.swift` (owned with the layers).
final class TensorOpsTests: XCTestCase {
    func testElementwiseArithmetic() {
        let a = Tensor(shape: [2, 2], scalars: [1, 2, 3, 4]), b = Tensor(shape: [2, 2], scalars: [0.5, -1, 2, 0])
        XCTAssertEqual((a + b).scalars, [1.5, 1, 5, 4])
        XCTAssertEqual((a - b).scalars, [0.5, 3, 1, 4])
        XCTAssertEqual((a * b).scalars, [0.5, -2, 6, 0])
        XCTAssertEqual(a.adding(b), a + b)
        XCTAssertEqual(a.scaled(by: -2).scalars, [-2, -4, -6, -8])
        var c = a
        c += b
        c.add(b, scaledBy: 2)
        XCTAssertEqual(c.scalars, [2.5, -1, 9, 4])
        c.scale(by: 2)
        XCTAssertEqual(c.scalars, [5, -2, 18, 8])
        // Large enough to be split over threads.
        let big = randomTensor([300, 400], seed: 121), other = randomTensor([300, 400], seed: 122)
        let sum = big + other
        for i in stride(from: 0, to: big.count, by: 1013) { XCTAssertEqual(sum.scalars[i], big.scalars[i] + other.scalars[i]) }
    }

    func testConcatenateAndSplitAreInverse() {
        let a = randomTensor([2, 3, 2, 4], seed: 123), b = randomTensor([2, 3, 2, 1], seed: 124)
        let joined = Tensor.concatenated([a, b], axis: -1)
        XCTAssertEqual(joined.shape, [2, 3, 2, 5])
        XCTAssertEqual(joined[1, 2, 1, 4], b[1, 2, 1, 0])
        XCTAssertEqual(joined[1, 2, 1, 3], a[1, 2, 1, 3])
        let pieces = joined.split(axis: 3, sizes: [4, 1])
        XCTAssertEqual(pieces, [a, b])
        let rows = Tensor.concatenated([a, a], axis: 0)
        XCTAssertEqual(rows.shape, [4, 3, 2, 4])
        XCTAssertEqual(rows.split(axis: 0, sizes: [2, 2]), [a, a])
        let column = randomTensor([2, 3, 1, 4], seed: 126)
        let middle = Tensor.concatenated([a, column], axis: 2)
        XCTAssertEqual(middle.shape, [2, 3, 3, 4])
        XCTAssertEqual(middle[0, 1, 2, 3], column[0, 1, 0, 3])
        XCTAssertEqual(middle[1, 2, 1, 0], a[1, 2, 1, 0])
        XCTAssertEqual(middle.split(axis: 2, sizes: [2, 1]), [a, column])
    }

    func testChannelShuffleAndItsInverse() {
        let x = Tensor(shape: [1, 6], scalars: [0, 1, 2, 3, 4, 5])
        XCTAssertEqual(x.channelShuffled(groups: 2).scalars, [0, 3, 1, 4, 2, 5])
        let y = randomTensor([2, 3, 3, 12], seed: 125)
        XCTAssertEqual(y.channelShuffled(groups: 3).channelShuffled(groups: 4), y)
    }

    func testReductions() {
        let x = Tensor(shape: [2, 3], scalars: [1, 5, 3, -2, 8, 8])
        XCTAssertEqual(x.sum(), 23)
        XCTAssertEqual(x.mean(), 23.0 / 6, accuracy: 1e-6)
        XCTAssertEqual(x.max(), 8)
        XCTAssertEqual(x.argmax(axis: 1), [1, 1])
        XCTAssertEqual(x.argmax(axis: 0), [0, 1, 1])
        XCTAssertEqual(x.sum(alongAxes: [0]), Tensor(shape: [1, 3], scalars: [-1, 13, 11]))
        XCTAssertEqual(x.sum(alongAxes: 1), Tensor(shape: [2, 1], scalars: [9, 14]))
        XCTAssertEqual(x.sum(alongAxes: [0, 1]).scalars, [23])
        let ones = Tensor(shape: [1000, 1000], repeating: 0.1)
        XCTAssertEqual(ones.sum(), 100_000, accuracy: 0.1)
    }
}
