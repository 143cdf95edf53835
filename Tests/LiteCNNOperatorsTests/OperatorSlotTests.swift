import LiteCNN
import XCTest

/// Where operators can go: slots and their units on the hosts the issue names, and on an imported-style graph.
final class OperatorSlotTests: XCTestCase {
    func zooGraph(_ name: String, resolution: Int = 32) throws -> Graph {
        let model = try ModelZoo.build(name, options: ModelOptions(classCount: 10))
        model.eval()
        return try exportGraph(model, inputChannels: 3, height: resolution, width: resolution)
    }

    func testResNet18HasItsStemAndSixteen3x3Convolutions() throws {
        let slots = try OperatorSlots.find(in: try zooGraph("resnet18"), imageShape: [3, 32, 32])
        XCTAssertEqual(slots.count, 17)
        XCTAssertEqual(slots[0].kernel, [7, 7])
        XCTAssertEqual(slots[0].strides, [2, 2])
        XCTAssertEqual(slots[0].outputSize, [16, 16])
        XCTAssertTrue(slots.dropFirst().allSatisfy { $0.kernel == [3, 3] })
        XCTAssertEqual(slots.map(\.index), Array(0..<17))
        // A basic block's first convolution ends in ReLU; its second feeds the residual Add, so no ReLU in the unit.
        XCTAssertTrue(slots[1].hasBatchNorm && slots[1].hasReLU)
        XCTAssertTrue(slots[2].hasBatchNorm && !slots[2].hasReLU)
        XCTAssertEqual(slots[1].nodes.count, 3)
        XCTAssertEqual(slots[2].nodes.count, 2)
        // The slots' multiply-adds are most of the network's.
        let total = try StructuredPruning.multiplyAdds(try zooGraph("resnet18"), imageShape: [3, 32, 32])
        let inSlots = slots.reduce(0) { $0 + $1.multiplyAdds }
        XCTAssertGreaterThan(Double(inSlots) / Double(total), 0.95)
        XCTAssertTrue(slots.allSatisfy(\.isSamePadded))
    }

    func testVGG16HasThirteenConvolutionsWithBiasAndReLUButNoBatchNorm() throws {
        let slots = try OperatorSlots.find(in: try zooGraph("vgg16"), imageShape: [3, 32, 32])
        XCTAssertEqual(slots.count, 13)
        XCTAssertTrue(slots.allSatisfy { !$0.hasBatchNorm && $0.hasReLU && $0.bias != nil })
        XCTAssertEqual(slots.last!.inputSize, [2, 2])
        XCTAssertEqual(slots[0].parameterCount, 64 * 3 * 9 + 64)
    }

    func testMobileNetV1HasOnlyItsStem() throws {
        let slots = try OperatorSlots.find(in: try zooGraph("mobilenet_v1"), imageShape: [3, 32, 32])
        XCTAssertEqual(slots.count, 1, "the depthwise convolutions (group = C) are not slots")
        XCTAssertEqual(slots[0].inputChannels, 3)
        XCTAssertEqual(slots[0].strides, [2, 2])
    }

    func testAlexNetStemIsNotSamePadded() throws {
        let slots = try OperatorSlots.find(in: try zooGraph("alexnet", resolution: 64), imageShape: [3, 64, 64])
        XCTAssertEqual(slots.count, 5)
        XCTAssertEqual(slots[0].kernel, [11, 11])
        XCTAssertFalse(slots[0].isSamePadded, "11×11 with pads 2 does not keep ⌈H/s⌉")
        XCTAssertTrue(slots[2].isSamePadded)
    }

    func testAutoPadAndUnitsWithoutBatchNorm() throws {
        // Conv (auto_pad SAME_UPPER, no bias) → Relu, and a 1×1 and a grouped 3×3 that are not slots.
        let w1 = Tensor(shape: [4, 3, 3, 3], scalars: (0..<108).map { Float($0 % 7) - 3 })
        let w2 = Tensor(shape: [4, 4, 1, 1], scalars: (0..<16).map { Float($0 % 3) })
        let w3 = Tensor(shape: [4, 2, 3, 3], scalars: (0..<72).map { Float($0 % 5) })
        let graph = Graph(inputs: [ValueInfo(name: "x", shape: [.symbolic("N"), .fixed(3), .fixed(10), .fixed(10)])],
                          outputs: [ValueInfo(name: "y", shape: nil)],
                          nodes: [Node(name: "c1", opType: "Conv", inputs: ["x", "w1"], outputs: ["a"],
                                       attributes: ["auto_pad": .string("SAME_UPPER"), "strides": .ints([2, 2])]),
                                  Node(name: "r1", opType: "Relu", inputs: ["a"], outputs: ["b"]),
                                  Node(name: "c2", opType: "Conv", inputs: ["b", "w2"], outputs: ["c"]),
                                  Node(name: "c3", opType: "Conv", inputs: ["c", "w3"], outputs: ["y"],
                                       attributes: ["group": .int(2), "pads": .ints([1, 1, 1, 1])])],
                          initializers: ["w1": .float(w1), "w2": .float(w2), "w3": .float(w3)])
        let slots = try OperatorSlots.find(in: graph, imageShape: [3, 10, 10])
        XCTAssertEqual(slots.count, 1)
        XCTAssertEqual(slots[0].pads, [0, 0, 1, 1], "SAME_UPPER with stride 2 on 10 pixels pads 1 at the end")
        XCTAssertEqual(slots[0].outputSize, [5, 5])
        XCTAssertEqual(slots[0].output, "b")
        XCTAssertTrue(slots[0].hasReLU)
        XCTAssertFalse(slots[0].hasBatchNorm)
        XCTAssertFalse(slots[0].isSamePadded)
        XCTAssertEqual(slots[0].multiplyAdds, 5 * 5 * 4 * 3 * 9)
    }
}
