import LiteCNN
import XCTest
import _TestSupport

final class LowRankTests: XCTestCase {
    // MARK: Graph helpers

    private func conv(_ name: String, _ x: String, _ w: String, _ b: String?, _ y: String, kernel: [Int], strides: [Int],
                      pads: [Int], dilations: [Int] = [1, 1], group: Int = 1) -> Node {
        Node(name: name, opType: "Conv", inputs: [x, w] + (b.map { [$0] } ?? []), outputs: [y], attributes: [
            "kernel_shape": .ints(kernel), "strides": .ints(strides), "pads": .ints(pads), "dilations": .ints(dilations),
            "group": .int(group)])
    }

    /// x [1, C, H, W] → Conv → Relu → y
    private func convGraph(weight: Tensor, bias: Tensor?, strides: [Int], pads: [Int], dilations: [Int] = [1, 1],
                           inputShape: [Int], group: Int = 1) -> Graph {
        var inits: [String: Constant] = ["features.0.weight": .float(weight)]
        if let bias { inits["features.0.bias"] = .float(bias) }
        return Graph(inputs: [ValueInfo(name: "input", shape: inputShape.map { .fixed($0) })],
                     outputs: [ValueInfo(name: "output", shape: nil)],
                     nodes: [conv("features.0/Conv", "input", "features.0.weight", bias == nil ? nil : "features.0.bias", "c",
                                  kernel: [weight.shape[2], weight.shape[3]], strides: strides, pads: pads,
                                  dilations: dilations, group: group),
                             Node(name: "features.1/Relu", opType: "Relu", inputs: ["c"], outputs: ["output"])],
                     initializers: inits)
    }

    private func run(_ graph: Graph, _ input: Tensor) throws -> [Float] {
        try InferenceEngine(graph: graph).run(input).scalars
    }

    private func assertClose(_ a: [Float], _ b: [Float], relative: Float = 1e-4, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, file: file, line: line)
        let scale = max(b.map(abs).max() ?? 0, 1e-6)
        var worst: Float = 0
        for (x, y) in zip(a, b) { worst = max(worst, abs(x - y)) }
        XCTAssertLessThanOrEqual(worst / scale, relative, "max |difference| \(worst) vs scale \(scale)", file: file, line: line)
    }

    /// OIHW weight whose reshape M[(c, y), (o, x)] has rank r.
    private func spatialRankWeight(o: Int, c: Int, kh: Int, kw: Int, rank: Int, seed: UInt64) -> Tensor {
        let m = SVDTests.lowRankMatrix(rows: c * kh, cols: o * kw, rank: rank, seed: seed)
        var w = [Float](repeating: 0, count: o * c * kh * kw)
        for oo in 0..<o { for cc in 0..<c { for y in 0..<kh { for x in 0..<kw {
            w[((oo * c + cc) * kh + y) * kw + x] = m[(cc * kh + y) * (o * kw) + oo * kw + x]
        } } } }
        return Tensor(shape: [o, c, kh, kw], scalars: w, layout: .plain)
    }

    /// OIHW weight with multilinear ranks (r_out, r_in) in the output and input modes: G ×₀ A ×₁ B.
    private func tuckerRankWeight(o: Int, c: Int, kh: Int, kw: Int, rOut: Int, rIn: Int, seed: UInt64) -> Tensor {
        let g = randomTensor([rOut, rIn, kh, kw], seed: seed).scalars
        let a = randomTensor([o, rOut], seed: seed + 1).scalars, b = randomTensor([c, rIn], seed: seed + 2).scalars
        let area = kh * kw
        var w = [Float](repeating: 0, count: o * c * area)
        for oo in 0..<o { for cc in 0..<c { for p in 0..<area {
            var s: Float = 0
            for i in 0..<rOut { for j in 0..<rIn { s += a[oo * rOut + i] * b[cc * rIn + j] * g[(i * rIn + j) * area + p] } }
            w[(oo * c + cc) * area + p] = s
        } } }
        return Tensor(shape: [o, c, kh, kw], scalars: w, layout: .plain)
    }

    private func initializer(_ g: Graph, _ name: String) -> Tensor? {
        if case let .float(t)? = g.initializers[name] { return t } else { return nil }
    }

    // MARK: Linear

    func testTruncatedSVDOfGemmIsExactAtTrueRank() throws {
        for transB in [1, 0] {
            let (inF, out, r) = (48, 10, 4)
            let wMat = SVDTests.lowRankMatrix(rows: out, cols: inF, rank: r, seed: 20)      // [out, in]
            var stored = wMat
            if transB == 0 { for o in 0..<out { for i in 0..<inF { stored[i * out + o] = wMat[o * inF + i] } } }
            let graph = Graph(
                inputs: [ValueInfo(name: "input", shape: [.fixed(2), .fixed(3), .fixed(4), .fixed(4)])],
                outputs: [ValueInfo(name: "output", shape: nil)],
                nodes: [Node(name: "flatten", opType: "Flatten", inputs: ["input"], outputs: ["f"], attributes: ["axis": .int(1)]),
                        Node(name: "classifier.0/Gemm", opType: "Gemm", inputs: ["f", "classifier.0.weight", "classifier.0.bias"],
                             outputs: ["output"], attributes: ["alpha": .float(0.5), "beta": .float(2), "transB": .int(transB)])],
                initializers: ["classifier.0.weight": .float(Tensor(shape: transB == 1 ? [out, inF] : [inF, out], scalars: stored)),
                               "classifier.0.bias": .float(randomTensor([out], seed: 21))])
            let (rewritten, report) = try LowRank.factorizeLinear(graph, node: "classifier.0/Gemm", rank: .count(r))
            let x = randomTensor([2, 3, 4, 4], seed: 22)
            assertClose(try run(rewritten, x), try run(graph, x))
            XCTAssertEqual(report.ranks, [r])
            XCTAssertEqual(report.parametersBefore, out * inF + out)
            XCTAssertEqual(report.parametersAfter, r * (out + inF) + out)
            XCTAssertEqual(report.multiplyAddsBefore, out * inF)
            XCTAssertEqual(report.multiplyAddsAfter, r * (out + inF))
            XCTAssertEqual(report.keptEnergy, 1, accuracy: 1e-5)
            XCTAssertLessThan(report.relativeError, 1e-5)
            XCTAssertEqual(rewritten.nodes.map(\.opType), ["Flatten", "Gemm", "Gemm"])
            XCTAssertEqual(rewritten.nodes.last?.inputs.last, "classifier.0.bias", "bias on the second Gemm")
            XCTAssertEqual(initializer(rewritten, "classifier.0.lowrank.0.weight")?.shape, [r, inF])
            XCTAssertEqual(initializer(rewritten, "classifier.0.lowrank.1.weight")?.shape, [out, r])
            XCTAssertNil(rewritten.initializers["classifier.0.weight"], "the unused original weight is dropped")
            XCTAssertEqual(Set(rewritten.nodes.map(\.name)).count, rewritten.nodes.count)
            // A lower rank is an approximation that reports its error.
            let (_, lower) = try LowRank.factorizeLinear(graph, node: "classifier.0/Gemm", rank: .count(2))
            XCTAssertLessThan(lower.keptEnergy, 1)
            XCTAssertEqual(lower.relativeError, (1 - lower.keptEnergy).squareRoot(), accuracy: 1e-4)
        }
    }

    func testMatMulFactorizationAndEnergyRankSelection() throws {
        // W = U·diag(s)·Vᵀ with chosen singular values: energy 0.99 needs exactly the first three.
        let (inF, out) = (12, 9)
        let basisU = SVD.decompose(randomTensor([out, out], seed: 30).scalars, rows: out, cols: out).u
        let basisV = SVD.decompose(randomTensor([inF, inF], seed: 31).scalars, rows: inF, cols: inF).u
        let s: [Float] = [10, 6, 3, 0.5, 0.2, 0.1, 0.05, 0.01, 0]
        var w = [Float](repeating: 0, count: out * inF)          // [out, in]
        for o in 0..<out { for i in 0..<inF { for k in 0..<out { w[o * inF + i] += basisU[o * out + k] * s[k] * basisV[i * inF + k] } } }
        let total = s.reduce(0) { $0 + $1 * $1 }
        let expected = (1...s.count).first { k in s.prefix(k).reduce(0) { $0 + $1 * $1 } >= 0.99 * total }!
        XCTAssertEqual(expected, 3)
        var b = [Float](repeating: 0, count: inF * out)         // MatMul B [in, out]
        for o in 0..<out { for i in 0..<inF { b[i * out + o] = w[o * inF + i] } }
        let graph = Graph(inputs: [ValueInfo(name: "x", shape: [.fixed(5), .fixed(inF)])],
                          outputs: [ValueInfo(name: "y", shape: nil)],
                          nodes: [Node(name: "mm", opType: "MatMul", inputs: ["x", "B"], outputs: ["y"])],
                          initializers: ["B": .float(Tensor(shape: [inF, out], scalars: b))])
        let (rewritten, report) = try LowRank.factorizeLinear(graph, node: "mm", rank: .energy(0.99))
        XCTAssertEqual(report.ranks, [expected])
        XCTAssertEqual(report.keptEnergy, Double(s.prefix(3).reduce(0) { $0 + $1 * $1 } / total), accuracy: 1e-5)
        XCTAssertEqual(rewritten.nodes.map(\.opType), ["MatMul", "MatMul"])
        XCTAssertNotNil(rewritten.initializers["B.lowrank.0"])
        let x = randomTensor([5, inF], seed: 32)
        let y0 = try run(graph, x), y1 = try run(rewritten, x)
        // The dropped energy bounds the output error.
        var err: Float = 0, norm: Float = 0
        for (p, q) in zip(y0, y1) { err += (p - q) * (p - q); norm += p * p }
        XCTAssertLessThan((err / norm).squareRoot(), 0.1)
        XCTAssertGreaterThan((err / norm).squareRoot(), 1e-4, "rank 3 < true rank: not exact")
        // Full energy → full rank → exact.
        let (exact, full) = try LowRank.factorizeLinear(graph, node: "mm", rank: .energy(1))
        XCTAssertEqual(full.ranks, [9], ".energy(1) is the full rank")
        assertClose(try run(exact, x), y0)
    }

    // MARK: Spatial k×1 + 1×k

    func testSpatialFactorizationIsExactAtTrueRankWithStridesPadsAndDilations() throws {
        let cases: [(kh: Int, kw: Int, strides: [Int], pads: [Int], dilations: [Int])] = [
            (3, 3, [1, 1], [1, 1, 1, 1], [1, 1]),
            (3, 5, [2, 1], [1, 2, 0, 1], [1, 1]),      // asymmetric pads, stride on height only
            (5, 3, [1, 2], [2, 0, 1, 1], [2, 1]),      // dilation on height
        ]
        for (n, t) in cases.enumerated() {
            let (o, c, r) = (6, 4, 3)
            let w = spatialRankWeight(o: o, c: c, kh: t.kh, kw: t.kw, rank: r, seed: 40 + UInt64(n))
            let graph = convGraph(weight: w, bias: randomTensor([o], seed: 50), strides: t.strides, pads: t.pads,
                                  dilations: t.dilations, inputShape: [2, c, 11, 10])
            let (rewritten, report) = try LowRank.factorizeSpatial(graph, node: "features.0/Conv", rank: .count(r),
                                                                   imageShape: [c, 11, 10])
            let x = randomTensor([2, c, 11, 10], seed: 60)
            assertClose(try run(rewritten, x), try run(graph, x))
            XCTAssertEqual(report.ranks, [r])
            XCTAssertLessThan(report.relativeError, 1e-5)
            XCTAssertEqual(initializer(rewritten, "features.0.lowrank.0.weight")?.shape, [r, c, t.kh, 1])
            XCTAssertEqual(initializer(rewritten, "features.0.lowrank.1.weight")?.shape, [o, r, 1, t.kw])
            XCTAssertEqual(report.parametersAfter, r * c * t.kh + o * r * t.kw + o)
            // Energy selection finds the true rank.
            let (_, byEnergy) = try LowRank.factorizeSpatial(graph, node: "features.0/Conv", rank: .energy(1 - 1e-8))
            XCTAssertEqual(byEnergy.ranks, [r])
            XCTAssertNil(byEnergy.multiplyAddsBefore, "no image shape, no multiply-adds")
            // Multiply-adds: output 5×? etc. computed from the real geometry.
            let ho = (11 + t.pads[0] + t.pads[2] - t.dilations[0] * (t.kh - 1) - 1) / t.strides[0] + 1
            let wo = (10 + t.pads[1] + t.pads[3] - t.dilations[1] * (t.kw - 1) - 1) / t.strides[1] + 1
            XCTAssertEqual(report.multiplyAddsBefore, o * c * t.kh * t.kw * ho * wo)
            XCTAssertEqual(report.multiplyAddsAfter, r * c * t.kh * ho * 10 + o * r * t.kw * ho * wo)
        }
    }

    func testSpatialFactorizationInsideALargerGraph() throws {
        // Two convs; the second (after Relu) is factorized: its input size comes from running the graph.
        let w0 = randomTensor([5, 3, 3, 3], seed: 70), w1 = spatialRankWeight(o: 4, c: 5, kh: 3, kw: 3, rank: 2, seed: 71)
        let graph = Graph(inputs: [ValueInfo(name: "input", shape: [.fixed(1), .fixed(3), .fixed(12), .fixed(12)])],
                          outputs: [ValueInfo(name: "output", shape: nil)],
                          nodes: [conv("c0", "input", "a.weight", nil, "h", kernel: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1]),
                                  Node(name: "r0", opType: "Relu", inputs: ["h"], outputs: ["h1"]),
                                  conv("c1", "h1", "b.weight", "b.bias", "output", kernel: [3, 3], strides: [1, 1], pads: [1, 1, 1, 1])],
                          initializers: ["a.weight": .float(w0), "b.weight": .float(w1), "b.bias": .float(randomTensor([4], seed: 72))])
        let (rewritten, report) = try LowRank.factorizeSpatial(graph, node: "c1", rank: .count(2), imageShape: [3, 12, 12])
        XCTAssertEqual(report.multiplyAddsBefore, 4 * 5 * 9 * 6 * 6)
        XCTAssertEqual(rewritten.nodes.map(\.name), ["c0", "r0", "c1.lowrank.0", "c1.lowrank.1"])
        let x = randomTensor([1, 3, 12, 12], seed: 73)
        assertClose(try run(rewritten, x), try run(graph, x))
        // Factorizing again does not collide with the names already used.
        let (twice, _) = try LowRank.factorizeSpatial(rewritten, node: "c0", rank: .count(3))
        XCTAssertEqual(Set(twice.nodes.map(\.name)).count, twice.nodes.count)
        XCTAssertNotNil(twice.initializers["a.lowrank.0.weight"])
    }

    // MARK: Tucker-2

    func testTucker2IsExactAtTrueMultilinearRanks() throws {
        for (n, t) in [(strides: [1, 1], pads: [1, 1, 1, 1], k: 3), (strides: [2, 2], pads: [0, 1, 2, 1], k: 3),
                       (strides: [1, 1], pads: [0, 0, 0, 0], k: 1)].enumerated() {
            let (o, c, rOut, rIn) = (8, 7, 3, 2)
            let w = tuckerRankWeight(o: o, c: c, kh: t.k, kw: t.k, rOut: rOut, rIn: rIn, seed: 80 + UInt64(n))
            let graph = convGraph(weight: w, bias: randomTensor([o], seed: 90), strides: t.strides, pads: t.pads,
                                  inputShape: [1, c, 9, 9])
            let (rewritten, report) = try LowRank.tucker2(graph, node: "features.0/Conv", inputRank: .count(rIn),
                                                          outputRank: .count(rOut), imageShape: [c, 9, 9])
            let x = randomTensor([1, c, 9, 9], seed: 91)
            assertClose(try run(rewritten, x), try run(graph, x))
            XCTAssertEqual(report.ranks, [rIn, rOut])
            XCTAssertEqual(report.keptEnergy, 1, accuracy: 1e-5)
            XCTAssertLessThan(report.relativeError, 1e-5)
            XCTAssertEqual(rewritten.nodes.map(\.opType), ["Conv", "Conv", "Conv", "Relu"])
            XCTAssertEqual(initializer(rewritten, "features.0.lowrank.0.weight")?.shape, [rIn, c, 1, 1])
            XCTAssertEqual(initializer(rewritten, "features.0.lowrank.1.weight")?.shape, [rOut, rIn, t.k, t.k])
            XCTAssertEqual(initializer(rewritten, "features.0.lowrank.2.weight")?.shape, [o, rOut, 1, 1])
            XCTAssertEqual(rewritten.nodes[2].inputs.last, "features.0.bias")
            XCTAssertEqual(report.parametersAfter, rIn * c + rOut * rIn * t.k * t.k + o * rOut + o)
            let ho = (9 + t.pads[0] + t.pads[2] - t.k) / t.strides[0] + 1, wo = (9 + t.pads[1] + t.pads[3] - t.k) / t.strides[1] + 1
            XCTAssertEqual(report.multiplyAddsBefore, o * c * t.k * t.k * ho * wo)
            XCTAssertEqual(report.multiplyAddsAfter, rIn * c * 81 + rOut * rIn * t.k * t.k * ho * wo + o * rOut * ho * wo)
            // Energy selection recovers both ranks.
            let (_, e) = try LowRank.tucker2(graph, node: "features.0/Conv", inputRank: .energy(1 - 1e-8),
                                             outputRank: .energy(1 - 1e-8))
            // (the output-mode rank is also bounded by r_in·k², which binds for the 1×1 case)
            XCTAssertEqual(e.ranks, [rIn, min(rOut, rIn * t.k * t.k)])
            // Below the true rank it is an approximation.
            let (_, low) = try LowRank.tucker2(graph, node: "features.0/Conv", inputRank: .count(1), outputRank: .count(2))
            XCTAssertLessThan(low.keptEnergy, 0.9999)
            XCTAssertEqual(low.relativeError, (1 - low.keptEnergy).squareRoot(), accuracy: 1e-3)
        }
    }

    // MARK: Errors

    func testClearErrorsOnUnsupportedLayers() {
        let grouped = convGraph(weight: randomTensor([4, 2, 3, 3], seed: 1), bias: nil, strides: [1, 1], pads: [1, 1, 1, 1],
                                inputShape: [1, 4, 6, 6], group: 2)
        XCTAssertThrowsError(try LowRank.tucker2(grouped, node: "features.0/Conv", inputRank: .count(1), outputRank: .count(1))) {
            XCTAssertTrue("\($0)".contains("group"), "\($0)")
        }
        XCTAssertThrowsError(try LowRank.factorizeSpatial(grouped, node: "features.0/Conv", rank: .count(1)))
        let pointwise = convGraph(weight: randomTensor([4, 2, 1, 1], seed: 1), bias: nil, strides: [1, 1], pads: [0, 0, 0, 0],
                                  inputShape: [1, 2, 6, 6])
        XCTAssertThrowsError(try LowRank.factorizeSpatial(pointwise, node: "features.0/Conv", rank: .count(1)))
        XCTAssertThrowsError(try LowRank.factorizeSpatial(pointwise, node: "nope", rank: .count(1))) {
            XCTAssertTrue("\($0)".contains("nope"))
        }
        XCTAssertThrowsError(try LowRank.factorizeLinear(pointwise, node: "features.0/Conv", rank: .count(1)))
        XCTAssertThrowsError(try LowRank.factorizeLinear(pointwise, node: "features.1/Relu", rank: .count(1)))
        let full = convGraph(weight: randomTensor([4, 2, 3, 3], seed: 1), bias: nil, strides: [1, 1], pads: [1, 1, 1, 1],
                             inputShape: [1, 2, 6, 6])
        XCTAssertThrowsError(try LowRank.factorizeSpatial(full, node: "features.0/Conv", rank: .count(0)))
        XCTAssertThrowsError(try LowRank.factorizeSpatial(full, node: "features.0/Conv", rank: .count(7)))
        XCTAssertThrowsError(try LowRank.factorizeSpatial(full, node: "features.0/Conv", rank: .energy(1.5)))
    }

    // MARK: A zoo model

    func testZooModelLayersFactorizeAndStillRun() throws {
        let model = try ModelZoo.build("resnet18", options: ModelOptions(classCount: 5))
        ClosedFormWeights.fill(model)
        model.eval()
        let graph = try exportGraph(model, inputChannels: 3, height: 32, width: 32)
        let convs = graph.nodes.filter { $0.opType == "Conv" }.map(\.name)
        let gemms = graph.nodes.filter { $0.opType == "Gemm" }.map(\.name)
        var g = graph
        var reports: [LowRankReport] = []
        var r: LowRankReport
        (g, r) = try LowRank.tucker2(g, node: convs[1], inputRank: .energy(1), outputRank: .energy(1), imageShape: [3, 32, 32])
        reports.append(r)
        (g, r) = try LowRank.factorizeSpatial(g, node: convs[2], rank: .energy(1), imageShape: [3, 32, 32])
        reports.append(r)
        (g, r) = try LowRank.factorizeLinear(g, node: gemms.last!, rank: .energy(1))
        reports.append(r)
        for report in reports { XCTAssertLessThan(report.relativeError, 1e-4, report.node) }
        for report in reports.prefix(2) { XCTAssertNotNil(report.multiplyAddsBefore, report.node) }
        let x = randomTensor([1, 3, 32, 32], seed: 5)
        assertClose(try run(g, x), try run(graph, x), relative: 1e-3)
    }
}
