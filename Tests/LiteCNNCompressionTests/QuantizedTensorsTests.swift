import LiteCNN
import XCTest

final class QuantizedTensorsTests: XCTestCase {
    func testLinearPerChannelDecodesWithItsOwnScale() {
        let q = LinearQuantizedTensor(shape: [2, 3], bits: 8, symmetric: false, axis: 0, scales: [0.5, 2],
                                      zeroPoints: [1, 3], values: [1, 2, 3, 3, 4, 0])
        XCTAssertEqual(q.decoded().scalars, [0, 0.5, 1, 0, 2, -6])
        XCTAssertEqual(q.range, 0...255)
        XCTAssertEqual(LinearQuantizedTensor(shape: [1], bits: 4, symmetric: true, axis: nil, scales: [1], zeroPoints: [0], values: [7]).range, -7...7)
    }

    func testCodebookDecodesEntries() {
        let c = CodebookTensor(shape: [4], bits: 2, codebook: [0, -1, 2], indices: [2, 0, 1, 2])
        XCTAssertEqual(c.decoded().scalars, [2, 0, -1, 2])
        XCTAssertEqual(c.zeroIndex, 0)
        XCTAssertEqual(WeightEncoding.codebook(c).decoded().scalars, [2, 0, -1, 2])
    }
}
