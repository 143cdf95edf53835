// Tests of the image transforms on small hand-computed cases (and a few values from PyTorch's
// F.interpolate(mode="bilinear", align_corners=False)), of parameter validation, and of the standard recipes' shapes.
import Foundation
import LiteCNNData
import LiteCNNTensor
import XCTest

/// An HWC image from rows of pixels, each pixel a list of channel values.
private func image(_ rows: [[[Float]]]) -> Tensor {
    Tensor(shape: [rows.count, rows[0].count, rows[0][0].count], scalars: rows.flatMap { $0.flatMap { $0 } }, layout: .plain)
}

/// A single-channel `height × width` image with `value(y, x)`.
private func gray(_ height: Int, _ width: Int, _ value: (Int, Int) -> Float) -> Tensor {
    Tensor(shape: [height, width, 1], scalars: (0..<height).flatMap { y in (0..<width).map { x in value(y, x) } }, layout: .plain)
}

private func assertClose(_ a: [Float], _ b: [Float], accuracy: Float = 1e-5, _ message: String = "",
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    for (i, (x, y)) in zip(a, b).enumerated() where abs(x - y) > accuracy {
        XCTFail("\(message) element \(i): \(x) vs \(y)", file: file, line: line)
        return
    }
}

final class TransformTests: XCTestCase {
    var generator = SeededGenerator(seed: 42)

    // MARK: Resize

    func testResizeUpsamplesLikeAlignCornersFalse() throws {
        // 2×2 → 4×4: source rows/cols sampled at max(0, (d + 0.5)/2 − 0.5) = 0, 0.25, 0.75, 1.25→clamped to 1.
        let out = try Resize(height: 4, width: 4).apply(gray(2, 2) { y, x in Float(2 * y + x) }, generator: &generator)
        XCTAssertEqual(out.shape, [4, 4, 1])
        assertClose(out.scalars, [0, 0.25, 0.75, 1, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2, 2.25, 2.75, 3])
    }

    func testResizeDownsamplesByAveragingNeighbourPairs() throws {
        // 4×4 → 2×2: samples at 0.5 and 2.5 — the mean of each 2×2 block (no antialias filter beyond that).
        let out = try Resize(height: 2, width: 2).apply(gray(4, 4) { y, x in Float(4 * y + x) }, generator: &generator)
        assertClose(out.scalars, [2.5, 4.5, 10.5, 12.5])
    }

    func testResizeMatchesPyTorchOnNonIntegerRatios() throws {
        // x = (i² mod 7) for i in 0..<15 as [1, 1, 3, 5]; values from torch.nn.functional.interpolate.
        let input = gray(3, 5) { y, x in Float(((5 * y + x) * (5 * y + x)) % 7) }
        let small = try Resize(height: 4, width: 2).apply(input, generator: &generator)
        assertClose(small.scalars, [0.75, 2.0, 1.375, 1.84375, 1.84375, 1.375, 2.0, 0.75])
        let large = try Resize(height: 7, width: 3).apply(input, generator: &generator)
        assertClose(large.scalars, [0.33333331, 4.0, 2.0, 0.71428573, 3.42857146, 2.14285707, 1.85714293, 1.71428561,
                                    2.5714283, 3.0, 0.0, 2.99999952, 2.57142854, 1.71428585, 1.85714257, 2.14285707,
                                    3.4285717, 0.71428561, 2.0, 4.0, 0.33333349], accuracy: 2e-5)
    }

    func testResizeKeepsChannelsSeparateAndSameSizeIsIdentity() throws {
        let rgb = image([[[0, 10, 100], [1, 11, 101]]])     // 1×2×3
        let out = try Resize(height: 1, width: 4).apply(rgb, generator: &generator)
        XCTAssertEqual(out.shape, [1, 4, 3])
        assertClose(out.scalars, [0, 10, 100, 0.25, 10.25, 100.25, 0.75, 10.75, 100.75, 1, 11, 101])
        XCTAssertEqual(try Resize(height: 1, width: 2).apply(rgb, generator: &generator), rgb)
    }

    func testResizeShorterSideKeepsAspectLikeTorchvision() throws {
        let resize = try Resize(shorterSide: 20)
        XCTAssertEqual(resize.outputShape(for: [30, 45, 3]), [20, 30, 3])
        XCTAssertEqual(resize.outputShape(for: [45, 31, 1]), [29, 20, 1])   // ⌊20·45/31⌋ = 29
        XCTAssertEqual(resize.apply(Tensor(shape: [30, 45, 3], repeating: 0.5, layout: .plain), generator: &generator).shape, [20, 30, 3])
        XCTAssertEqual(resize.outputShape(for: [-1, -1, 3]), [-1, -1, 3])
    }

    // MARK: Crops

    func testCenterCropUsesHalfToEvenRoundingAndZeroPadsSmallImages() throws {
        let input = gray(4, 5) { y, x in Float(10 * y + x) }
        // top = round(2/2) = 1, left = round(3/2) = 2 (Python rounds 1.5 to 2).
        let out = try CenterCrop(size: 2).apply(input, generator: &generator)
        XCTAssertEqual(out.scalars, [12, 13, 22, 23])
        // left = round(1/2) = 0 for a 4-wide crop of a 5-wide image.
        XCTAssertEqual(try CenterCrop(height: 1, width: 4).apply(input, generator: &generator).scalars, [20, 21, 22, 23])
        let padded = try CenterCrop(size: 4).apply(gray(2, 2) { y, x in Float(1 + 2 * y + x) }, generator: &generator)
        XCTAssertEqual(padded.scalars, [0, 0, 0, 0, 0, 1, 2, 0, 0, 3, 4, 0, 0, 0, 0, 0])
    }

    func testRandomCropWithPaddingTakesAWindowOfTheZeroPaddedImage() throws {
        let input = gray(2, 2) { y, x in Float(1 + 2 * y + x) }      // [[1, 2], [3, 4]]
        let crop = try RandomCrop(size: 2, padding: 1)
        // Padded: 4×4 with [[1,2],[3,4]] in the middle; every one of the 3×3 origins must occur, nothing else.
        var padded = [[Float]](repeating: [0, 0, 0, 0], count: 4)
        padded[1][1] = 1; padded[1][2] = 2; padded[2][1] = 3; padded[2][2] = 4
        var origins = Set<[Int]>()
        for seed in 0..<200 {
            var g = SeededGenerator(seed: UInt64(seed)), copy = g
            let out = crop.apply(input, generator: &g)
            let origin = crop.origin(inputHeight: 2, inputWidth: 2, generator: &copy)
            let top = origin.top + 1, left = origin.left + 1
            XCTAssertEqual(out.shape, [2, 2, 1])
            XCTAssertEqual(out.scalars, [padded[top][left], padded[top][left + 1], padded[top + 1][left], padded[top + 1][left + 1]])
            origins.insert([top, left])
        }
        XCTAssertEqual(origins.count, 9)
        // Without padding and the same size the crop is the image; a crop larger than the padded image is centred.
        XCTAssertEqual(try RandomCrop(size: 2).apply(input, generator: &generator), input)
        XCTAssertEqual(try RandomCrop(size: 4).apply(input, generator: &generator).scalars, padded.flatMap { $0 })
    }

    func testRandomResizedCropBoxRespectsScaleAndRatio() throws {
        let crop = try RandomResizedCrop(size: 16)
        var fallbacks = 0
        for seed in 0..<2000 {
            var g = SeededGenerator(seed: UInt64(seed))
            let box = crop.cropBox(inputHeight: 100, inputWidth: 80, generator: &g)
            XCTAssertTrue(box.top >= 0 && box.left >= 0 && box.top + box.height <= 100 && box.left + box.width <= 80, "\(box)")
            let area = Double(box.height * box.width) / 8000, ratio = Double(box.width) / Double(box.height)
            if box.height == 100 && box.width == 80 { fallbacks += 1; continue }
            // Rounding w and h to integers moves area and ratio slightly.
            XCTAssertTrue(area >= 0.08 * 0.9 && area <= 1.0, "area fraction \(area)")
            XCTAssertTrue(ratio >= 0.75 * 0.93 && ratio <= 4.0 / 3 * 1.07, "aspect \(ratio)")
        }
        XCTAssertLessThan(fallbacks, 100)
        // Nothing fits (aspect ≥ 2 at full area of a square): the central window with the ratio clamped to 2.
        let wide = try RandomResizedCrop(size: 8, scale: 0.99...1, ratio: 2...3)
        var g = SeededGenerator(seed: 3)
        let box = wide.cropBox(inputHeight: 40, inputWidth: 40, generator: &g)
        XCTAssertEqual([box.top, box.left, box.height, box.width], [10, 0, 20, 40])
    }

    func testRandomResizedCropIsAResizeOfItsBox() throws {
        let input = gray(20, 30) { y, x in Float(y * 30 + x) / 600 }
        let crop = try RandomResizedCrop(height: 8, width: 12, scale: 0.2...0.9)
        for seed in 0..<20 {
            var g = SeededGenerator(seed: UInt64(seed)), copy = g
            let out = crop.apply(input, generator: &g)
            XCTAssertEqual(out.shape, [8, 12, 1])
            let box = crop.cropBox(inputHeight: 20, inputWidth: 30, generator: &copy)
            let window = gray(box.height, box.width) { y, x in input.scalars[(box.top + y) * 30 + box.left + x] }
            assertClose(out.scalars, try Resize(height: 8, width: 12).apply(window, generator: &generator).scalars)
        }
    }

    // MARK: Flip, normalize, channels

    func testHorizontalFlipMirrorsColumnsWithTheGivenProbability() throws {
        let input = image([[[1, 10], [2, 20], [3, 30]], [[4, 40], [5, 50], [6, 60]]])
        let flipped = try RandomHorizontalFlip(probability: 1).apply(input, generator: &generator)
        XCTAssertEqual(flipped.scalars, [3, 30, 2, 20, 1, 10, 6, 60, 5, 50, 4, 40])
        XCTAssertEqual(try RandomHorizontalFlip(probability: 0).apply(input, generator: &generator), input)
        let half = try RandomHorizontalFlip()
        let flips = (0..<1000).filter { _ in half.apply(input, generator: &generator) != input }.count
        XCTAssertTrue((430...570).contains(flips), "\(flips) flips in 1000 at p = 0.5")
    }

    func testNormalizePerChannelAndBroadcast() throws {
        let input = image([[[0.5, 0.25, 1], [0, 1, 0.5]]])
        let out = try Normalize(mean: [0.5, 0.25, 0.5], std: [0.5, 0.25, 0.25]).apply(input, generator: &generator)
        assertClose(out.scalars, [0, 0, 2, -1, 3, 0])
        let single = try Normalize(mean: [0.5], std: [2]).apply(input, generator: &generator)
        assertClose(single.scalars, [0, -0.125, 0.25, -0.25, 0.25, 0])
        XCTAssertEqual(Normalize.imageNet.mean, [0.485, 0.456, 0.406])
        XCTAssertEqual(Normalize.imageNet.std, [0.229, 0.224, 0.225])
        XCTAssertEqual(Normalize.imageNet(channels: 1).mean.count, 1)
        assertClose(Normalize.imageNetGray.mean, [0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406], accuracy: 1e-3)
    }

    func testConvertChannelsUsesITU601Luma() throws {
        let rgb = image([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [0.5, 0.5, 0.5]]])
        let toGray = try ConvertChannels(to: 1)
        assertClose(toGray.apply(rgb, generator: &generator).scalars, [0.299, 0.587, 0.114, 0.5])
        let back = try ConvertChannels(to: 3).apply(gray(1, 2) { _, x in Float(x) * 0.25 }, generator: &generator)
        XCTAssertEqual(back.shape, [1, 2, 3])
        XCTAssertEqual(back.scalars, [0, 0, 0, 0.25, 0.25, 0.25])
        XCTAssertEqual(toGray.apply(toGray.apply(rgb, generator: &generator), generator: &generator).shape, [1, 4, 1])
    }

    // MARK: Validation

    func testInvalidParametersThrowAtConstruction() {
        func argument(_ body: () throws -> Any) -> String? {
            do { _ = try body(); return nil } catch let error as DataArgumentError { return error.argument } catch { return "?" }
        }
        XCTAssertEqual(argument { try Resize(height: 0, width: 4) }, "Resize height")
        XCTAssertEqual(argument { try Resize(shorterSide: -2) }, "Resize shorterSide")
        XCTAssertEqual(argument { try CenterCrop(size: 0) }, "CenterCrop height")
        XCTAssertEqual(argument { try RandomCrop(size: 8, padding: -1) }, "RandomCrop padding")
        XCTAssertEqual(argument { try RandomResizedCrop(size: 8, scale: 0...1) }, "RandomResizedCrop scale")
        XCTAssertEqual(argument { try RandomResizedCrop(size: 8, scale: 0.5...1.5) }, "RandomResizedCrop scale")
        XCTAssertEqual(argument { try RandomResizedCrop(size: 8, ratio: 0...1) }, "RandomResizedCrop ratio")
        XCTAssertEqual(argument { try RandomHorizontalFlip(probability: 1.5) }, "RandomHorizontalFlip probability")
        XCTAssertEqual(argument { try Normalize(mean: [0.5, 0.5], std: [1]) }, "Normalize mean/std")
        XCTAssertEqual(argument { try Normalize(mean: [0.5], std: [0]) }, "Normalize mean/std")
        XCTAssertEqual(argument { try Normalize(mean: [], std: []) }, "Normalize mean/std")
        XCTAssertEqual(argument { try ConvertChannels(to: 2) }, "ConvertChannels channels")
        XCTAssertEqual(argument { try StandardTransforms.checkParameters(resolution: 32, channels: 3, mean: [0.5, 0.5], std: [1, 1]) },
                       "--mean/--std")
        XCTAssertEqual(argument { try StandardTransforms.checkParameters(resolution: 0, channels: 3, mean: [0.5], std: [1]) },
                       "--resolution")
        XCTAssertNil(argument { try StandardTransforms.checkParameters(resolution: 32, channels: 1, mean: [0.5], std: [0.2]) })
    }

    func testValidateTransformsCatchesChannelMismatches() throws {
        let pipeline: [any ImageTransform] = [try CenterCrop(size: 4), Normalize.imageNet]
        XCTAssertEqual(try validateTransforms(pipeline, inputShape: [8, 8, 3]), [4, 4, 3])
        XCTAssertThrowsError(try validateTransforms(pipeline, inputShape: [8, 8, 1]))
        XCTAssertEqual(try validateTransforms([try ConvertChannels(to: 3)] + pipeline, inputShape: [8, 8, 1]), [4, 4, 3])
        XCTAssertThrowsError(try validateTransforms([try ConvertChannels(to: 1)], inputShape: [8, 8, 4]))
    }

    // MARK: Recipes

    func testStandardRecipesAlwaysEndAtResolutionAndChannels() throws {
        for augmentation in Augmentation.allCases {
            for channels in [1, 3] {
                let normalize = Normalize.imageNet(channels: channels)
                let training = StandardTransforms.training(resolution: 24, channels: channels, mean: normalize.mean,
                                                           std: normalize.std, augmentation: augmentation)
                let evaluation = StandardTransforms.evaluation(resolution: 24, channels: channels, mean: normalize.mean,
                                                               std: normalize.std, cropFraction: 0.875)
                for shape in [[24, 24, 3], [32, 32, 1], [17, 45, 3], [50, 20, 1], [8, 8, 3]] {
                    var g = SeededGenerator(seed: UInt64(shape[0]))
                    var a = Tensor(shape: shape, repeating: 0.5, layout: .plain), b = a
                    for t in training { a = t.apply(a, generator: &g) }
                    for t in evaluation { b = t.apply(b, generator: &g) }
                    XCTAssertEqual(a.shape, [24, 24, channels], "\(augmentation) training from \(shape)")
                    XCTAssertEqual(b.shape, [24, 24, channels], "evaluation from \(shape)")
                }
            }
        }
        XCTAssertEqual(Augmentation(rawValue: "resized-crop"), .resizedCrop)
        // The CIFAR recipe on 32×32 images: RandomCrop(32, padding 4) and a flip, nothing resized.
        let cifar = StandardTransforms.training(resolution: 32, channels: 3, mean: [0], std: [1], augmentation: .crop)
        let crop = try XCTUnwrap(cifar.compactMap { $0 as? RandomCrop }.first)
        XCTAssertEqual([crop.height, crop.width, crop.padding], [32, 32, 4])
        XCTAssertEqual(cifar.compactMap { $0 as? RandomHorizontalFlip }.count, 1)
        // Evaluation of an already-sized image only normalizes it.
        let evaluation = StandardTransforms.evaluation(resolution: 4, channels: 1, mean: [0.5], std: [0.5])
        var g = SeededGenerator(seed: 0)
        var x = gray(4, 4) { y, x in Float(y * 4 + x) / 16 }
        let expected = x.scalars.map { ($0 - 0.5) / 0.5 }
        for t in evaluation { x = t.apply(x, generator: &g) }
        assertClose(x.scalars, expected)
    }
}
