// The built-in procedural data set ("shapes"): ten classes of geometric shapes drawn with random position, scale,
// rotation and colour over a cluttered, noisy background. It needs no download, exists at any resolution, and every
// sample is a pure function of (seed, split, index), so it can be generated lazily on any thread in any order.
// Shapes are rasterised with analytic anti-aliasing: coverage = clamp(0.5 − d, 0, 1) where d is the signed distance
// from the pixel centre to the shape's outline in pixels (the usual signed-distance-field rendering).
// See docs/DATA.md for the classes, the generation process and how hard the set is for a linear classifier.
import LiteCNNTensor

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A bad argument for a data set, transform or loader, named: `--resolution: must be at least 16, got 8`.
public struct DataArgumentError: Error, CustomStringConvertible, Equatable {
    /// The argument (flag or parameter name) that is wrong.
    public var argument: String
    /// What is wrong with it, in words.
    public var reason: String

    public init(argument: String, reason: String) {
        self.argument = argument
        self.reason = reason
    }

    public var description: String { "\(argument): \(reason)" }
}

/// The built-in procedural data set: 10 shape classes at any resolution (torchvision has no equivalent; think of a
/// small, harder CIFAR-10 that is generated instead of downloaded).
///
/// Sample `index` is `[resolution, resolution, channels]` (HWC, layout `.plain`) with values in [0, 1] and label
/// `index % 10`, so every prefix of 10·k samples is exactly balanced. It is generated from a `SeededGenerator` seeded
/// with `mixSeeds(seed, split tag, index)`: the same (seed, split, index) always gives the same pixels, and the train
/// and test splits draw from different streams, so they are disjoint by construction. Nothing is cached; generating
/// one 32×32 sample takes a few tens of microseconds.
///
/// Each image is made of, in drawing order:
/// 1. a linear gradient between two random palette colours in a random direction;
/// 2. 2–4 distractors: anti-aliased line strokes and soft Gaussian blobs in random palette colours (never class shapes);
/// 3. the class shape, radius 22–42 % of the image side, random centre (fully inside), uniform random rotation, a
///    random palette colour whose luminance differs from the background's under the shape by at least 0.25 when
///    possible, with occasional strokes drawn over it (occlusion);
/// 4. for `channels == 1`, conversion to luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B);
/// 5. additive Gaussian-like noise with a per-image standard deviation in [0.02, 0.08], then clamping to [0, 1].
public struct ShapesDataset: Dataset {
    /// The classes, indexed by label.
    public static let classNames: [String] = [
        "circle", "square", "triangle", "star", "cross", "ring", "hexagon", "crescent", "arrow", "ellipse",
    ]

    /// Which stream a sample comes from. Train and test never share a sample.
    public enum Split: String, Sendable {
        case train, test

        /// The tag mixed into every sample's seed ("trai" / "test" in ASCII).
        var tag: UInt64 { self == .train ? 0x7472_6169 : 0x7465_7374 }
    }

    /// The smallest supported resolution (shapes become unrecognisable below it).
    public static let minimumResolution = 16
    /// The largest supported resolution (a bound on memory per sample: 4096² × 3 floats = 200 MB).
    public static let maximumResolution = 4096

    public let count: Int
    /// Side of every (square) image in pixels.
    public let resolution: Int
    public let channels: Int
    public let seed: UInt64
    public let split: Split

    public var classNames: [String] { Self.classNames }
    public var imageSize: (height: Int, width: Int)? { (resolution, resolution) }

    /// A split of `samples` images of `resolution × resolution × channels`.
    ///
    /// Preconditions (check user input with `validate` first, which throws instead): `samples ≥ 0`,
    /// `16 ≤ resolution ≤ 4096`, `channels` is 1 or 3.
    public init(samples: Int, resolution: Int = 32, channels: Int = 3, seed: UInt64 = 0, split: Split = .train) {
        precondition(samples >= 0, "ShapesDataset: negative sample count \(samples)")
        precondition((Self.minimumResolution...Self.maximumResolution).contains(resolution),
                     "ShapesDataset: resolution \(resolution) outside \(Self.minimumResolution)...\(Self.maximumResolution)")
        precondition(channels == 1 || channels == 3, "ShapesDataset: channels must be 1 or 3, got \(channels)")
        self.count = samples
        self.resolution = resolution
        self.channels = channels
        self.seed = seed
        self.split = split
    }

    /// Throws `DataArgumentError` naming the CLI flag (`--samples`, `--test-samples`, `--resolution`, `--channels`)
    /// when the arguments are out of range; `init` and `splits` trap on the same values.
    public static func validate(samples: Int, testSamples: Int? = nil, resolution: Int, channels: Int) throws {
        guard (1...1_000_000_000).contains(samples) else {
            throw DataArgumentError(argument: "--samples", reason: "must be between 1 and 1000000000, got \(samples)")
        }
        if let testSamples, !(1...1_000_000_000).contains(testSamples) {
            throw DataArgumentError(argument: "--test-samples", reason: "must be between 1 and 1000000000, got \(testSamples)")
        }
        guard (minimumResolution...maximumResolution).contains(resolution) else {
            throw DataArgumentError(argument: "--resolution",
                                    reason: "must be between \(minimumResolution) and \(maximumResolution), got \(resolution)")
        }
        guard channels == 1 || channels == 3 else {
            throw DataArgumentError(argument: "--channels", reason: "must be 1 (gray) or 3 (RGB), got \(channels)")
        }
    }

    /// The default size of the held-out split for `samples` training images: `max(100, samples / 5)`.
    public static func defaultTestSamples(for samples: Int) -> Int { max(100, samples / 5) }

    /// A train split with `samples` images and a disjoint test split with `testSamples` images (default
    /// `max(100, samples / 5)`), same resolution, channels and seed.
    public static func splits(samples: Int, testSamples: Int? = nil, resolution: Int = 32, channels: Int = 3,
                              seed: UInt64 = 0) -> DatasetSplits {
        let test = testSamples ?? defaultTestSamples(for: samples)
        return DatasetSplits(
            train: ShapesDataset(samples: samples, resolution: resolution, channels: channels, seed: seed, split: .train),
            test: ShapesDataset(samples: test, resolution: resolution, channels: channels, seed: seed, split: .test),
            description: "shapes (procedural, \(classNames.count) classes, \(resolution)×\(resolution)×\(channels), seed \(seed))")
    }

    /// The label of sample `index`: `index % 10`.
    public func label(at index: Int) -> Int { index % Self.classNames.count }

    /// Sample `index` in `0..<count` (never throws for a valid index; an index out of range is a programming error).
    public func sample(at index: Int) throws -> LabeledImage {
        precondition(index >= 0 && index < count, "ShapesDataset: index \(index) out of 0..<\(count)")
        let label = label(at: index)
        let pixels = ShapeRenderer.render(shape: label, size: resolution, channels: channels,
                                          seed: mixSeeds(seed, split.tag, UInt64(index)))
        return LabeledImage(image: Tensor(shape: [resolution, resolution, channels], scalars: pixels), label: label)
    }
}

// MARK: - Rendering

/// Draws one sample into an RGB float buffer. All geometry is in pixel units with pixel centres at (x + 0.5, y + 0.5).
enum ShapeRenderer {
    typealias Colour = (r: Float, g: Float, b: Float)

    /// Shared by backgrounds, distractors and shapes, so colour says nothing about the class.
    static let palette: [Colour] = [
        (0.86, 0.16, 0.14), (0.96, 0.56, 0.10), (0.95, 0.88, 0.22), (0.22, 0.68, 0.26),
        (0.10, 0.58, 0.60), (0.16, 0.32, 0.86), (0.55, 0.26, 0.76), (0.96, 0.52, 0.70),
        (0.50, 0.32, 0.16), (0.94, 0.94, 0.92), (0.50, 0.50, 0.50), (0.08, 0.08, 0.10),
    ]

    static func luminance(_ c: Colour) -> Float { 0.299 * c.r + 0.587 * c.g + 0.114 * c.b }

    static func randomColour(_ g: inout SeededGenerator) -> Colour {
        let base = palette[Int(g.next() % UInt64(palette.count))]
        func jitter(_ v: Float, _ g: inout SeededGenerator) -> Float { min(1, max(0, v + (g.nextUnit() - 0.5) * 0.16)) }
        return (jitter(base.r, &g), jitter(base.g, &g), jitter(base.b, &g))
    }

    @inline(__always) static func uniform(_ g: inout SeededGenerator, _ lo: Float, _ hi: Float) -> Float {
        lo + (hi - lo) * g.nextUnit()
    }

    /// A standard-normal-like value from one 64-bit draw: the sum of four 16-bit uniforms, centred and scaled to unit
    /// variance (Irwin–Hall, n = 4). Much cheaper than Box–Muller and indistinguishable for image noise.
    @inline(__always) static func noise(_ g: inout SeededGenerator) -> Float {
        let v = g.next()
        let s = Float(v & 0xFFFF) + Float((v >> 16) & 0xFFFF) + Float((v >> 32) & 0xFFFF) + Float(v >> 48)
        return (s * (1 / 65_536) - 2) * 1.732_050_8
    }

    /// Alpha-blends `colour` with coverage `alpha` into pixel `p` of the RGB buffer.
    @inline(__always) static func blend(_ rgb: UnsafeMutableBufferPointer<Float>, _ p: Int, _ c: Colour, _ alpha: Float) {
        let o = p * 3
        rgb[o] += (c.r - rgb[o]) * alpha
        rgb[o + 1] += (c.g - rgb[o + 1]) * alpha
        rgb[o + 2] += (c.b - rgb[o + 2]) * alpha
    }

    static func render(shape: Int, size: Int, channels: Int, seed: UInt64) -> [Float] {
        var g = SeededGenerator(seed: seed)
        let n = Float(size)
        var rgb = [Float](repeating: 0, count: size * size * 3)
        rgb.withUnsafeMutableBufferPointer { buffer in
            // 1. Background gradient.
            let c0 = randomColour(&g), c1 = randomColour(&g)
            let angle = uniform(&g, 0, 2 * .pi), steepness = uniform(&g, 0.5, 1.6)
            let dx = cos(angle) * steepness / n, dy = sin(angle) * steepness / n
            for y in 0..<size {
                for x in 0..<size {
                    let t = min(1, max(0, 0.5 + (Float(x) + 0.5 - n / 2) * dx + (Float(y) + 0.5 - n / 2) * dy))
                    let o = (y * size + x) * 3
                    buffer[o] = c0.r + (c1.r - c0.r) * t
                    buffer[o + 1] = c0.g + (c1.g - c0.g) * t
                    buffer[o + 2] = c0.b + (c1.b - c0.b) * t
                }
            }
            // 2. Distractors under the shape.
            let distractors = 2 + Int(g.next() % 3)
            for _ in 0..<distractors {
                if g.nextUnit() < 0.6 { drawStroke(buffer, size: size, &g) } else { drawBlob(buffer, size: size, &g) }
            }
            // 3. The shape.
            let radius = n * uniform(&g, 0.22, 0.42)
            let margin = radius * 0.95
            let cx = uniform(&g, margin, n - margin), cy = uniform(&g, margin, n - margin)
            let rotation = uniform(&g, 0, 2 * .pi)
            let pixel = min(size - 1, max(0, Int(cy))) * size + min(size - 1, max(0, Int(cx)))
            let background = (buffer[pixel * 3], buffer[pixel * 3 + 1], buffer[pixel * 3 + 2])
            var colour = randomColour(&g)
            var best = abs(luminance(colour) - luminance(background))
            for _ in 0..<8 where best < 0.25 {
                let candidate = randomColour(&g)
                let contrast = abs(luminance(candidate) - luminance(background))
                if contrast > best { best = contrast; colour = candidate }
            }
            drawShape(buffer, size: size, shape: shape, cx: cx, cy: cy, radius: radius, rotation: rotation, colour: colour)
            // Occasional occluding stroke over the shape.
            if g.nextUnit() < 0.3 { drawStroke(buffer, size: size, &g) }
        }
        // 4–5. Channels, noise, clamp.
        let sigma = uniform(&g, 0.02, 0.08)
        if channels == 3 {
            for i in 0..<rgb.count { rgb[i] = min(1, max(0, rgb[i] + sigma * noise(&g))) }
            return rgb
        }
        var gray = [Float](repeating: 0, count: size * size)
        for i in 0..<gray.count {
            let l = 0.299 * rgb[3 * i] + 0.587 * rgb[3 * i + 1] + 0.114 * rgb[3 * i + 2]
            gray[i] = min(1, max(0, l + sigma * noise(&g)))
        }
        return gray
    }

    /// A straight anti-aliased stroke: length 25–80 % of the side, width 0.7–2 px at 32 px (scaled with size).
    static func drawStroke(_ rgb: UnsafeMutableBufferPointer<Float>, size: Int, _ g: inout SeededGenerator) {
        let n = Float(size), scale = n / 32
        let colour = randomColour(&g)
        let alpha = uniform(&g, 0.5, 1)
        let halfWidth = uniform(&g, 0.35, 1.0) * scale
        let length = n * uniform(&g, 0.25, 0.8), angle = uniform(&g, 0, .pi)
        let mx = uniform(&g, 0, n), my = uniform(&g, 0, n)
        let ax = mx - cos(angle) * length / 2, ay = my - sin(angle) * length / 2
        let ex = cos(angle) * length, ey = sin(angle) * length
        let lengthSquared = ex * ex + ey * ey
        let x0 = max(0, Int(min(ax, ax + ex) - halfWidth - 1)), x1 = min(size - 1, Int(max(ax, ax + ex) + halfWidth + 1))
        let y0 = max(0, Int(min(ay, ay + ey) - halfWidth - 1)), y1 = min(size - 1, Int(max(ay, ay + ey) + halfWidth + 1))
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 {
            for x in x0...x1 {
                let wx = Float(x) + 0.5 - ax, wy = Float(y) + 0.5 - ay
                let t = min(1, max(0, (wx * ex + wy * ey) / lengthSquared))
                let qx = wx - ex * t, qy = wy - ey * t
                let coverage = min(1, max(0, 0.5 + halfWidth - (qx * qx + qy * qy).squareRoot()))
                if coverage > 0 { blend(rgb, y * size + x, colour, coverage * alpha) }
            }
        }
    }

    /// A soft Gaussian blob, σ 4–10 % of the side, peak opacity 0.4–0.8 (no hard outline, so never a circle).
    static func drawBlob(_ rgb: UnsafeMutableBufferPointer<Float>, size: Int, _ g: inout SeededGenerator) {
        let n = Float(size)
        let colour = randomColour(&g)
        let alpha = uniform(&g, 0.4, 0.8)
        let sigma = n * uniform(&g, 0.04, 0.10)
        let cx = uniform(&g, 0, n), cy = uniform(&g, 0, n)
        let reach = 3 * sigma, inverse = -1 / (2 * sigma * sigma)
        let x0 = max(0, Int(cx - reach)), x1 = min(size - 1, Int(cx + reach))
        let y0 = max(0, Int(cy - reach)), y1 = min(size - 1, Int(cy + reach))
        guard x0 <= x1, y0 <= y1 else { return }
        for y in y0...y1 {
            for x in x0...x1 {
                let px = Float(x) + 0.5 - cx, py = Float(y) + 0.5 - cy
                blend(rgb, y * size + x, colour, alpha * exp((px * px + py * py) * inverse))
            }
        }
    }

    /// Polygon outlines in the shape's unit frame (radius ≈ 1, y up), counter-clockwise.
    static let polygons: [Int: [(Float, Float)]] = {
        func regular(_ count: Int, radius: Float, phase: Float) -> [(Float, Float)] {
            (0..<count).map { k in
                let a = phase + 2 * .pi * Float(k) / Float(count)
                return (radius * cos(a), radius * sin(a))
            }
        }
        let star: [(Float, Float)] = (0..<10).map { k in
            let a = Float.pi / 2 + Float.pi * Float(k) / 5
            let r: Float = k % 2 == 0 ? 1.0 : 0.42
            return (r * cos(a), r * sin(a))
        }
        let w: Float = 0.28, l: Float = 0.9
        let cross: [(Float, Float)] = [(w, l), (-w, l), (-w, w), (-l, w), (-l, -w), (-w, -w),
                                       (-w, -l), (w, -l), (w, -w), (l, -w), (l, w), (w, w)]
        let arrow: [(Float, Float)] = [(-0.9, -0.18), (0.15, -0.18), (0.15, -0.6), (0.95, 0), (0.15, 0.6),
                                       (0.15, 0.18), (-0.9, 0.18)]
        return [
            1: [(-0.72, -0.72), (0.72, -0.72), (0.72, 0.72), (-0.72, 0.72)],   // square
            2: regular(3, radius: 1.0, phase: .pi / 2),                        // triangle
            3: star,
            4: cross,
            6: regular(6, radius: 0.9, phase: 0),                              // hexagon
            8: arrow,
        ]
    }()

    /// Signed distance (negative inside) from `(x, y)` to the outline of `vertices`: the distance to the nearest
    /// edge, signed by the even–odd crossing test.
    @inline(__always) static func polygonDistance(_ x: Float, _ y: Float, _ vertices: [(Float, Float)]) -> Float {
        var nearest = Float.greatestFiniteMagnitude
        var inside = false
        var j = vertices.count - 1
        for i in 0..<vertices.count {
            let (ax, ay) = vertices[j], (bx, by) = vertices[i]
            let ex = bx - ax, ey = by - ay, wx = x - ax, wy = y - ay
            let t = min(1, max(0, (wx * ex + wy * ey) / (ex * ex + ey * ey)))
            let qx = wx - ex * t, qy = wy - ey * t
            nearest = min(nearest, qx * qx + qy * qy)
            if (ay > y) != (by > y), x < ex * (y - ay) / ey + ax { inside.toggle() }
            j = i
        }
        return inside ? -nearest.squareRoot() : nearest.squareRoot()
    }

    /// Signed distance in the unit frame for class `shape`.
    @inline(__always) static func distance(shape: Int, _ x: Float, _ y: Float) -> Float {
        switch shape {
        case 0: return (x * x + y * y).squareRoot() - 0.85                                    // circle
        case 5: return abs((x * x + y * y).squareRoot() - 0.7) - 0.2                          // ring 0.5…0.9
        case 7:                                                                               // crescent
            let outer = (x * x + y * y).squareRoot() - 0.9
            let bite = ((x - 0.4) * (x - 0.4) + y * y).squareRoot() - 0.75
            return max(outer, -bite)
        case 9:                                                                               // ellipse 0.95 × 0.5
            let k = ((x / 0.95) * (x / 0.95) + (y / 0.5) * (y / 0.5)).squareRoot()
            return (k - 1) * 0.5
        default: return polygonDistance(x, y, polygons[shape]!)
        }
    }

    static func drawShape(_ rgb: UnsafeMutableBufferPointer<Float>, size: Int, shape: Int, cx: Float, cy: Float,
                          radius: Float, rotation: Float, colour: Colour) {
        let cosR = cos(rotation), sinR = sin(rotation), inverseRadius = 1 / radius
        let reach = radius + 1.5
        let x0 = max(0, Int(cx - reach)), x1 = min(size - 1, Int(cx + reach))
        let y0 = max(0, Int(cy - reach)), y1 = min(size - 1, Int(cy + reach))
        guard x0 <= x1, y0 <= y1 else { return }
        let vertices = polygons[shape]
        for y in y0...y1 {
            for x in x0...x1 {
                // Into the unit frame: translate, rotate by −rotation, scale; flip y so "up" is up.
                let px = Float(x) + 0.5 - cx, py = cy - (Float(y) + 0.5)
                let ux = (px * cosR + py * sinR) * inverseRadius, uy = (-px * sinR + py * cosR) * inverseRadius
                let d: Float
                if let vertices { d = polygonDistance(ux, uy, vertices) } else { d = distance(shape: shape, ux, uy) }
                let coverage = min(1, max(0, 0.5 - d * radius))
                if coverage > 0 { blend(rgb, y * size + x, colour, coverage) }
            }
        }
    }
}
