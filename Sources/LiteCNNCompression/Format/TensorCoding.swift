import LiteCNNTensor

// One tensor record of the TENS section (see docs/COMPRESSED_FORMAT.md, "Tensor record"):
//
//   string   name
//   u8       kind            0 float32, 1 float16, 2 codebook, 3 linear
//   u8       flags           bit 0 sparse, bit 1 huffman, bits 2–3 layout tag of float tensors (0 plain, 1 nhwc,
//                            2 nchw), other bits 0
//   u8       rank            ≤ 16
//   varint   dims[rank]
//   sparse:  u8 indexBits (1…16), varint entries
//   codebook: u8 bits (1…8), varint codebook count (≤ 2^bits), f32 codebook[count]
//   linear:  u8 bits (2…16), u8 symmetric (0/1), u8 axis (255 = per tensor, else < rank),
//            f32 scales[groups], i32 zeroPoints[groups]   (groups = dims[axis], or 1)
//   varint   value stream length, bytes
//   sparse:  varint gap stream length, bytes

/// Byte counts of one tensor record.
struct TensorRecordSize {
    /// Stored entries (non-zeros plus padding when sparse, else every element).
    var entries = 0
    var header = 0
    var values = 0
    var gaps = 0
}

enum TensorKind: UInt8 {
    case float32 = 0, float16 = 1, codebook = 2, linear = 3
}

private let layoutTags: [Tensor.Layout] = [.plain, .nhwc, .nchw]

enum TensorCoding {
    static let maximumRank = 16

    // MARK: Writing

    /// Appends the record of `stored` to `writer`. Throws (naming the tensor) when the encoding holds values it
    /// claims not to: codebook indices past the codebook, integers outside their range, floats not exactly fp16.
    static func write(name: String, stored: StoredTensor, into writer: inout ByteWriter, file: String,
                      baseOffset: Int) throws -> TensorRecordSize {
        func fail(_ reason: String) -> CompressedFileError {
            CompressedFileError(file: file, section: "tensors", offset: baseOffset + writer.bytes.count, tensor: name, reason: reason)
        }
        let shape = stored.encoding.shape
        let count = shape.reduce(1, *)
        guard !name.isEmpty else { throw fail("a tensor needs a name") }
        guard shape.count <= maximumRank else { throw fail("rank \(shape.count) exceeds \(maximumRank)") }
        let start = writer.bytes.count
        writer.string(name)

        // Per-element symbols of the encoding (float bit patterns, codebook indices, integers − qmin) and, per
        // quantization group, the symbol that counts as zero (UInt32.max when none can occur).
        let kind: TensorKind
        var layout: Tensor.Layout = .plain
        var symbolBits = 0               // fixed width of a value symbol (codebook/linear)
        var alphabet = 0
        var symbols: [UInt32]
        var zeroSymbols: [UInt32] = [0]
        var groupStride = max(1, count)
        switch stored.encoding {
        case let .float32(t):
            kind = .float32
            layout = t.layout
            symbols = t.scalars.map(\.bitPattern)
        case let .float16(t):
            kind = .float16
            layout = t.layout
            symbols = [UInt32](repeating: 0, count: count)
            for i in 0..<count {
                let x = t.scalars[i]
                let h = Float16(x)
                guard Float(h).bitPattern == x.bitPattern else {
                    throw fail("element \(i) (\(x)) is not exactly representable in float16")
                }
                symbols[i] = UInt32(h.bitPattern)
            }
        case let .codebook(c):
            kind = .codebook
            symbolBits = c.bits
            alphabet = c.codebook.count
            symbols = c.indices.map { UInt32($0) }
            if let bad = c.indices.firstIndex(where: { Int($0) >= alphabet }) {
                throw fail("index \(c.indices[bad]) at element \(bad) is past the codebook's \(alphabet) entries")
            }
            zeroSymbols = [c.zeroIndex.map { UInt32($0) } ?? UInt32.max]
        case let .linear(q):
            kind = .linear
            symbolBits = q.bits
            alphabet = 1 << q.bits
            if let axis = q.axis, !(0..<shape.count).contains(axis) { throw fail("quantization axis \(axis) outside rank \(shape.count)") }
            let range = q.range
            symbols = [UInt32](repeating: 0, count: count)
            for i in 0..<count {
                let v = q.values[i]
                guard range.contains(v) else { throw fail("integer \(v) at element \(i) is outside the \(q.bits)-bit range \(range)") }
                symbols[i] = UInt32(v - range.lowerBound)
            }
            zeroSymbols = q.zeroPoints.map { range.contains($0) ? UInt32($0 - range.lowerBound) : UInt32.max }
            if q.axis != nil { groupStride = max(1, q.groupStride) }
        }

        writer.u8(kind.rawValue)
        let layoutTag = kind == .float32 || kind == .float16 ? UInt8(layoutTags.firstIndex(of: layout) ?? 0) : 0
        writer.u8((stored.sparse ? 1 : 0) | (stored.huffman ? 2 : 0) | layoutTag << 2)
        writer.u8(UInt8(shape.count))
        for d in shape { writer.varint(d) }

        // Entries: every element, or the non-zeros plus padding.
        var gaps: [UInt32] = []
        var entrySymbols = symbols
        if stored.sparse {
            let groups = zeroSymbols.count
            let e = symbols.withUnsafeBufferPointer { s in
                zeroSymbols.withUnsafeBufferPointer { z in
                    SparseCoding.entries(count: count, indexBits: stored.indexBits) { i in
                        s[i] == z[groups == 1 ? 0 : (i / groupStride) % groups]
                    }
                }
            }
            gaps = e.gaps
            entrySymbols = symbols.withUnsafeBufferPointer { s in e.positions.map { s[$0] } }
            writer.u8(UInt8(stored.indexBits))
            writer.varint(gaps.count)
        }
        let n = entrySymbols.count
        var size = TensorRecordSize()
        size.entries = n

        switch stored.encoding {
        case let .codebook(c):
            writer.u8(UInt8(c.bits))
            writer.varint(c.codebook.count)
            for v in c.codebook { writer.f32(v) }
        case let .linear(q):
            writer.u8(UInt8(q.bits))
            writer.u8(q.symmetric ? 1 : 0)
            writer.u8(q.axis.map { UInt8($0) } ?? 255)
            for s in q.scales { writer.f32(s) }
            for z in q.zeroPoints { writer.i32(z) }
        default:
            break
        }

        // Value stream.
        let values: [UInt8] = entrySymbols.withUnsafeBufferPointer { s in
            switch kind {
            case .float32:
                return [UInt8](unsafeUninitializedCapacity: 4 * n) { out, initialized in
                    for k in 0..<n {
                        let b = s[k]
                        out[4 * k] = UInt8(truncatingIfNeeded: b)
                        out[4 * k + 1] = UInt8(truncatingIfNeeded: b >> 8)
                        out[4 * k + 2] = UInt8(truncatingIfNeeded: b >> 16)
                        out[4 * k + 3] = UInt8(truncatingIfNeeded: b >> 24)
                    }
                    initialized = 4 * n
                }
            case .float16:
                return [UInt8](unsafeUninitializedCapacity: 2 * n) { out, initialized in
                    for k in 0..<n {
                        out[2 * k] = UInt8(truncatingIfNeeded: s[k])
                        out[2 * k + 1] = UInt8(truncatingIfNeeded: s[k] >> 8)
                    }
                    initialized = 2 * n
                }
            case .codebook, .linear:
                if stored.huffman {
                    var counts = [Int](repeating: 0, count: alphabet)
                    for k in 0..<n { counts[Int(s[k])] += 1 }
                    let code = Huffman.Code(counts: counts)
                    var w = BitWriter(reservingBytes: code.encodedBitCount(counts: counts) / 8 + 64)
                    code.writeTable(to: &w)
                    code.encode(count: n, into: &w) { s[$0] }
                    return w.finish()
                }
                return BitPacking.pack(count: n, bits: symbolBits) { s[$0] }
            }
        }
        let headerEnd = writer.bytes.count
        writer.varint(values.count)
        writer.append(values)
        size.values = writer.bytes.count - headerEnd

        // Gap stream.
        if stored.sparse {
            let gapBytes: [UInt8]
            if stored.huffman {
                gapBytes = Huffman.encode(gaps, alphabetSize: 1 << stored.indexBits)
            } else {
                gapBytes = gaps.withUnsafeBufferPointer { g in BitPacking.pack(count: g.count, bits: stored.indexBits) { g[$0] } }
            }
            let gapStart = writer.bytes.count
            writer.varint(gapBytes.count)
            writer.append(gapBytes)
            size.gaps = writer.bytes.count - gapStart
        }
        size.header = writer.bytes.count - start - size.values - size.gaps
        return size
    }

    // MARK: Reading

    /// Reads one record. `elementBudget` is what remains of the file's decoded-element limit; it is checked (and
    /// decreased) before anything proportional to the element count is allocated.
    static func read(from reader: inout ByteReader, elementBudget: inout Int) throws -> (String, StoredTensor, TensorRecordSize) {
        let start = reader.position
        reader.tensor = nil
        let name = try reader.string("tensor name")
        guard !name.isEmpty else { throw reader.error("a tensor has an empty name", at: start) }
        reader.tensor = name
        let kindAt = reader.position
        guard let kind = TensorKind(rawValue: try reader.u8("tensor kind")) else {
            throw reader.error("unknown tensor kind \(reader.bytes[kindAt]) (known: 0 float32, 1 float16, 2 codebook, 3 linear)", at: kindAt)
        }
        let flagsAt = reader.position
        let flags = try reader.u8("tensor flags")
        let sparse = flags & 1 != 0, huffman = flags & 2 != 0
        let layoutTag = Int(flags >> 2) & 3
        guard flags >> 4 == 0, layoutTag < layoutTags.count, kind == .float32 || kind == .float16 || layoutTag == 0 else {
            throw reader.error("invalid tensor flags 0x\(String(flags, radix: 16))", at: flagsAt)
        }
        let rankAt = reader.position
        let rank = Int(try reader.u8("tensor rank"))
        guard rank <= maximumRank else { throw reader.error("rank \(rank) exceeds \(maximumRank)", at: rankAt) }
        var shape: [Int] = []
        var count = 1
        for d in 0..<rank {
            let dimAt = reader.position
            let dim = try reader.count("dimension \(d)", atMost: Int(Int32.max))
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard !overflow, product <= elementBudget else {
                throw reader.error("shape \(shape + [dim])… has more elements than the file's limit (\(elementBudget) remaining)", at: dimAt)
            }
            shape.append(dim)
            count = product
        }
        var indexBits = 8, entries = count
        if sparse {
            let at = reader.position
            indexBits = Int(try reader.u8("index bits"))
            guard (1...16).contains(indexBits) else { throw reader.error("index bits \(indexBits) outside 1…16", at: at) }
            let entriesAt = reader.position
            entries = try reader.count("sparse entry count", atMost: count)
            guard count <= SparseCoding.maximumElementCount(entries: entries, indexBits: indexBits) else {
                throw reader.error("\(entries) entries with \(indexBits)-bit gaps cannot cover \(count) elements", at: entriesAt)
            }
        }

        // Kind parameters.
        var symbolBits = 0, alphabet = 0
        var codebook: [Float] = [], cbBits = 0
        var linearBits = 0, symmetric = false, axis: Int? = nil, scales: [Float] = [], zeroPoints: [Int32] = []
        switch kind {
        case .codebook:
            let at = reader.position
            cbBits = Int(try reader.u8("codebook bits"))
            guard (1...8).contains(cbBits) else { throw reader.error("codebook bits \(cbBits) outside 1…8", at: at) }
            let size = try reader.count("codebook size", atMost: 1 << cbBits)
            try reader.need(size * 4, "codebook")
            codebook = try (0..<size).map { _ in try reader.f32("codebook entry") }
            symbolBits = cbBits
            alphabet = size
        case .linear:
            let at = reader.position
            linearBits = Int(try reader.u8("integer bits"))
            guard (2...16).contains(linearBits) else { throw reader.error("integer bits \(linearBits) outside 2…16", at: at) }
            let symAt = reader.position
            let sym = try reader.u8("symmetric flag")
            guard sym <= 1 else { throw reader.error("symmetric flag \(sym) is neither 0 nor 1", at: symAt) }
            symmetric = sym == 1
            let axisAt = reader.position
            let a = Int(try reader.u8("quantization axis"))
            if a != 255 {
                guard a < rank else { throw reader.error("quantization axis \(a) outside rank \(rank)", at: axisAt) }
                axis = a
            }
            let groups = axis.map { shape[$0] } ?? 1
            try reader.need(groups * 8, "\(groups) scales and zero points")
            scales = try (0..<groups).map { _ in try reader.f32("scale") }
            zeroPoints = try (0..<groups).map { _ in try reader.i32("zero point") }
            symbolBits = linearBits
            alphabet = 1 << linearBits
        default:
            break
        }
        let headerEnd = reader.position

        // Streams: lengths first, each checked against the bytes that remain.
        let valueLength = try reader.count("value stream length", atMost: reader.remaining)
        let valueRange = try reader.range(valueLength, "value stream")
        var gapRange = 0..<0
        if sparse {
            let gapLength = try reader.count("gap stream length", atMost: reader.remaining)
            gapRange = try reader.range(gapLength, "gap stream")
        }
        var size = TensorRecordSize()
        size.entries = entries
        size.values = valueRange.upperBound - headerEnd
        size.gaps = sparse ? reader.position - valueRange.upperBound : 0
        size.header = reader.position - start - size.values - size.gaps

        // Symbol counts against stream lengths (before allocating anything of size `count`).
        func streamCheck(_ ok: Bool, _ what: String, _ range: Range<Int>) throws {
            if !ok { throw reader.error("\(what): \(range.count) bytes cannot hold \(entries) entries as declared", at: range.lowerBound) }
        }
        switch kind {
        case .float32: try streamCheck(valueLength == entries * 4, "float32 values", valueRange)
        case .float16: try streamCheck(valueLength == entries * 2, "float16 values", valueRange)
        case .codebook, .linear:
            if huffman { try streamCheck(entries <= valueLength * 8, "Huffman-coded values", valueRange) }
            else { try streamCheck(BitPacking.byteCount(count: entries, bits: symbolBits) == valueLength, "\(symbolBits)-bit values", valueRange) }
        }
        if sparse {
            if huffman { try streamCheck(entries <= gapRange.count * 8, "Huffman-coded gaps", gapRange) }
            else { try streamCheck(BitPacking.byteCount(count: entries, bits: indexBits) == gapRange.count, "\(indexBits)-bit gaps", gapRange) }
        }
        elementBudget -= count

        // Positions of the entries.
        var positions: [Int]? = nil
        if sparse {
            let gaps: [UInt32]
            do {
                if huffman {
                    gaps = try Huffman.decode(Array(reader.bytes[gapRange]), count: entries, alphabetSize: 1 << indexBits)
                } else {
                    var g = [UInt32](repeating: 0, count: entries)
                    try BitPacking.unpack(reader.bytes, range: gapRange, count: entries, bits: indexBits) { g[$0] = $1 }
                    gaps = g
                }
                positions = try SparseCoding.positions(gaps: gaps, count: count, indexBits: indexBits)
            } catch let e as CodingError {
                throw reader.error("gap stream: \(e.reason)", at: gapRange.lowerBound + min(gapRange.count, e.bitOffset / 8))
            }
        }
        let pos = positions ?? []

        // Values.
        let bytes = reader.bytes
        let encoding: WeightEncoding
        do {
            switch kind {
            case .float32, .float16:
                var scalars = [Float](repeating: 0, count: count)
                let base = valueRange.lowerBound
                scalars.withUnsafeMutableBufferPointer { out in
                    bytes.withUnsafeBufferPointer { b in
                        if kind == .float32 {
                            for k in 0..<entries {
                                let p = base + 4 * k
                                let bits = UInt32(b[p]) | UInt32(b[p + 1]) << 8 | UInt32(b[p + 2]) << 16 | UInt32(b[p + 3]) << 24
                                out[sparse ? pos[k] : k] = Float(bitPattern: bits)
                            }
                        } else {
                            for k in 0..<entries {
                                let p = base + 2 * k
                                out[sparse ? pos[k] : k] = Float(Float16(bitPattern: UInt16(b[p]) | UInt16(b[p + 1]) << 8))
                            }
                        }
                    }
                }
                let tensor = Tensor(shape: shape, scalars: scalars, layout: layoutTags[layoutTag])
                encoding = kind == .float32 ? .float32(tensor) : .float16(tensor)
            case .codebook:
                let zero = codebook.firstIndex(of: 0)
                if sparse && entries < count && zero == nil {
                    throw reader.error("sparse codebook tensor without a zero entry leaves elements out", at: headerEnd)
                }
                var indices = [UInt8](repeating: UInt8(zero ?? 0), count: count)
                var bad: UInt32? = nil
                try indices.withUnsafeMutableBufferPointer { out in
                    try decodeSymbols(bytes, valueRange, entries: entries, bits: symbolBits, alphabet: alphabet, huffman: huffman) { k, s in
                        if Int(s) < alphabet { out[sparse ? pos[k] : k] = UInt8(s) } else { bad = s }
                    }
                }
                if let bad { throw reader.error("codebook index \(bad) is past the codebook's \(alphabet) entries", at: valueRange.lowerBound) }
                encoding = .codebook(CodebookTensor(shape: shape, bits: cbBits, codebook: codebook, indices: indices))
            case .linear:
                let groups = zeroPoints.count
                let stride = max(1, axis == nil ? count : shape.dropFirst(axis! + 1).reduce(1, *))
                var values = [Int32](repeating: 0, count: count)
                let q0 = LinearQuantizedTensor(shape: [], bits: linearBits, symmetric: symmetric, axis: nil, scales: [1], zeroPoints: [0], values: [0])
                let lower = q0.range.lowerBound
                var bad: UInt32? = nil
                try values.withUnsafeMutableBufferPointer { out in
                    if sparse && entries < count {
                        for i in 0..<count { out[i] = zeroPoints[axis == nil ? 0 : (i / stride) % groups] }
                    }
                    try decodeSymbols(bytes, valueRange, entries: entries, bits: symbolBits, alphabet: alphabet, huffman: huffman) { k, s in
                        let v = Int64(s) + Int64(lower)
                        if v <= Int64(q0.range.upperBound) { out[sparse ? pos[k] : k] = Int32(v) } else { bad = s }
                    }
                }
                if let bad { throw reader.error("integer symbol \(bad) is outside the \(linearBits)-bit range \(q0.range)", at: valueRange.lowerBound) }
                if sparse && entries < count && zeroPoints.contains(where: { !q0.range.contains($0) }),
                   let i = values.firstIndex(where: { !q0.range.contains($0) }) {
                    throw reader.error("element \(i) is left out but its zero point is outside the \(linearBits)-bit range", at: headerEnd)
                }
                encoding = .linear(LinearQuantizedTensor(shape: shape, bits: linearBits, symmetric: symmetric, axis: axis,
                                                         scales: scales, zeroPoints: zeroPoints, values: values))
            }
        } catch let e as CodingError {
            throw reader.error("value stream: \(e.reason)", at: valueRange.lowerBound + min(valueRange.count, e.bitOffset / 8))
        }
        reader.tensor = nil
        return (name, StoredTensor(encoding: encoding, sparse: sparse, indexBits: indexBits, huffman: huffman), size)
    }

    /// Decodes `entries` value symbols (fixed width or a Huffman stream that must end in the stream's last byte).
    private static func decodeSymbols(_ bytes: [UInt8], _ range: Range<Int>, entries: Int, bits: Int, alphabet: Int,
                                      huffman: Bool, _ body: (Int, UInt32) -> Void) throws {
        if !huffman {
            try BitPacking.unpack(bytes, range: range, count: entries, bits: bits, body)
            return
        }
        var reader = BitReader(bytes, range: range)
        let code = try Huffman.Code.readTable(alphabetSize: alphabet, from: &reader)
        try code.decode(count: entries, from: &reader, body)
        guard (reader.bitPosition + 7) / 8 == range.count else {
            throw CodingError(bitOffset: reader.bitPosition, reason: "\(range.count * 8 - reader.bitPosition) bits left after the last symbol")
        }
    }
}
