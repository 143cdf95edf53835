// Canonical Huffman coding (Deep Compression §3 codes the quantized weights and the sparse index gaps this way).
//
// A code is defined by its code lengths alone: symbols sorted by (length, symbol) receive consecutive code values,
// each length starting where the previous one ended, shifted left (DEFLATE's canonical assignment). Only the lengths
// are stored. Codes are at most `Huffman.maximumCodeLength` (20) bits; a one-symbol alphabet gets a 1-bit code, so
// every coded symbol costs at least one bit (which bounds how many symbols a stream of n bytes can claim to hold).

/// Canonical, length-limited Huffman codes over symbols `0..<alphabetSize`.
public enum Huffman {
    /// The longest code the builder produces and the reader accepts.
    public static let maximumCodeLength = 20
    /// Bits resolved by one table lookup when decoding; longer codes take a short canonical walk.
    static let tableBits = 11

    /// Optimal code lengths for `counts` (symbols with count 0 get length 0 = unused), limited to
    /// `maximumCodeLength`: when the optimal tree is deeper, counts are halved (keeping every used symbol ≥ 1) and
    /// the tree rebuilt, which converges to a balanced tree in the worst case.
    public static func codeLengths(counts: [Int]) -> [UInt8] {
        var lengths = [UInt8](repeating: 0, count: counts.count)
        let used = counts.indices.filter { counts[$0] > 0 }
        if used.isEmpty { return lengths }
        if used.count == 1 {
            lengths[used[0]] = 1
            return lengths
        }
        var weights = used.map { counts[$0] }
        while true {
            // Two-queue construction over the leaves sorted by (weight, symbol).
            let order = used.indices.sorted { weights[$0] != weights[$1] ? weights[$0] < weights[$1] : used[$0] < used[$1] }
            let n = order.count
            var nodeWeight = [Int](repeating: 0, count: 2 * n - 1)
            var parent = [Int](repeating: -1, count: 2 * n - 1)
            for (k, leaf) in order.enumerated() { nodeWeight[k] = weights[leaf] }
            var leafNext = 0, internalNext = n, created = n
            func takeSmallest() -> Int {
                if leafNext < n && (internalNext >= created || nodeWeight[leafNext] <= nodeWeight[internalNext]) {
                    leafNext += 1
                    return leafNext - 1
                }
                internalNext += 1
                return internalNext - 1
            }
            while created < 2 * n - 1 {
                let a = takeSmallest(), b = takeSmallest()
                nodeWeight[created] = nodeWeight[a] + nodeWeight[b]
                parent[a] = created
                parent[b] = created
                created += 1
            }
            var depth = [Int](repeating: 0, count: 2 * n - 1)
            var deepest = 0
            for node in stride(from: 2 * n - 3, through: 0, by: -1) {
                depth[node] = depth[parent[node]] + 1
                if node < n { deepest = max(deepest, depth[node]) }
            }
            if deepest <= maximumCodeLength {
                for (k, leaf) in order.enumerated() { lengths[used[leaf]] = UInt8(depth[k]) }
                return lengths
            }
            weights = weights.map { max(1, $0 >> 1) }
        }
    }

    /// A canonical code: per-symbol lengths and the code values they imply.
    public struct Code: Sendable, Equatable {
        /// Code length of every symbol of the alphabet; 0 = the symbol does not occur.
        public let lengths: [UInt8]
        /// Code value of every symbol (its low `lengths[s]` bits), MSB-first.
        public let codes: [UInt32]

        public var alphabetSize: Int { lengths.count }
        /// The longest code length in use (0 for an empty code).
        public var maximumLength: Int { Int(lengths.max() ?? 0) }

        /// The canonical code with these lengths. Throws if a length exceeds `maximumCodeLength` or the lengths
        /// violate Kraft's inequality (Σ 2^−l > 1: no prefix code has them).
        public init(lengths: [UInt8]) throws {
            var countPerLength = [Int](repeating: 0, count: Huffman.maximumCodeLength + 1)
            for l in lengths {
                guard Int(l) <= Huffman.maximumCodeLength else {
                    throw CodingError(bitOffset: 0, reason: "Huffman code length \(l) exceeds \(Huffman.maximumCodeLength)")
                }
                countPerLength[Int(l)] += 1
            }
            // Kraft: Σ count[l] · 2^(max − l) ≤ 2^max.
            var kraft = 0
            for l in 1...Huffman.maximumCodeLength { kraft += countPerLength[l] << (Huffman.maximumCodeLength - l) }
            guard kraft <= 1 << Huffman.maximumCodeLength else {
                throw CodingError(bitOffset: 0, reason: "Huffman code lengths are not a prefix code (Kraft sum > 1)")
            }
            var nextCode = [UInt32](repeating: 0, count: Huffman.maximumCodeLength + 2)
            var code: UInt32 = 0
            countPerLength[0] = 0
            for l in 1...Huffman.maximumCodeLength {
                code = (code + UInt32(countPerLength[l - 1])) << 1
                nextCode[l] = code
            }
            var codes = [UInt32](repeating: 0, count: lengths.count)
            for s in lengths.indices where lengths[s] > 0 {
                codes[s] = nextCode[Int(lengths[s])]
                nextCode[Int(lengths[s])] += 1
            }
            self.lengths = lengths
            self.codes = codes
        }

        /// The optimal length-limited code for these symbol counts (`counts.count` = alphabet size).
        public init(counts: [Int]) {
            // Lengths from `codeLengths` always satisfy Kraft and the length limit.
            try! self.init(lengths: Huffman.codeLengths(counts: counts))
        }

        /// Total bits `symbols` take with this code (each must have a nonzero length).
        public func encodedBitCount(counts: [Int]) -> Int {
            zip(counts, lengths).reduce(0) { $0 + $1.0 * Int($1.1) }
        }

        // MARK: Table

        /// Writes the lengths compactly: one 5-bit token per symbol (0 = unused, 1…20 = length), except that a run of
        /// ≥ 5 unused symbols is token 31 followed by (run − 1) in 16 bits. The alphabet size is not written (the
        /// reader knows it from context).
        public func writeTable(to writer: inout BitWriter) {
            var s = 0
            while s < lengths.count {
                if lengths[s] == 0 {
                    var run = 1
                    while s + run < lengths.count && lengths[s + run] == 0 && run < 1 << 16 { run += 1 }
                    if run >= 5 {
                        writer.write(31, bits: 5)
                        writer.write(UInt32(run - 1), bits: 16)
                        s += run
                        continue
                    }
                }
                writer.write(UInt32(lengths[s]), bits: 5)
                s += 1
            }
        }

        /// Reads a table written by `writeTable` for an alphabet of `alphabetSize` symbols (≤ 2^16).
        public static func readTable(alphabetSize: Int, from reader: inout BitReader) throws -> Code {
            precondition(alphabetSize >= 0 && alphabetSize <= 1 << 16, "Huffman: alphabet size \(alphabetSize) out of range")
            var lengths = [UInt8](repeating: 0, count: alphabetSize)
            var s = 0
            while s < alphabetSize {
                let at = reader.bitPosition
                let token = reader.read(5)
                if token == 31 {
                    let run = Int(reader.read(16)) + 1
                    guard run <= alphabetSize - s else {
                        throw CodingError(bitOffset: at, reason: "Huffman table: a run of \(run) unused symbols passes the alphabet's end (\(alphabetSize))")
                    }
                    s += run
                } else if Int(token) <= Huffman.maximumCodeLength {
                    lengths[s] = UInt8(token)
                    s += 1
                } else {
                    throw CodingError(bitOffset: at, reason: "Huffman table: invalid token \(token)")
                }
                try reader.checkEnd("Huffman table")
            }
            do {
                return try Code(lengths: lengths)
            } catch var error as CodingError {
                error.bitOffset = reader.bitPosition
                throw error
            }
        }

        // MARK: Coding

        /// Appends the codes of `count` symbols produced by `symbol(i)`.
        public func encode(count: Int, into writer: inout BitWriter, _ symbol: (Int) -> UInt32) {
            lengths.withUnsafeBufferPointer { lengths in
                codes.withUnsafeBufferPointer { codes in
                    for i in 0..<count {
                        let s = Int(symbol(i))
                        let l = Int(lengths[s])
                        precondition(l > 0, "Huffman: symbol \(s) is not in the code")
                        writer.write(codes[s], bits: l)
                    }
                }
            }
        }

        /// Appends the codes of `symbols`.
        public func encode(_ symbols: [UInt32], into writer: inout BitWriter) {
            symbols.withUnsafeBufferPointer { symbols in encode(count: symbols.count, into: &writer) { symbols[$0] } }
        }

        /// Decodes `count` symbols, handing each to `body(i, symbol)`. Throws on a bit pattern that is no code
        /// (incomplete codes leave some) or when the stream ends early.
        public func decode(count: Int, from reader: inout BitReader, _ body: (Int, UInt32) -> Void) throws {
            if count == 0 { return }
            let maxLength = maximumLength
            guard maxLength > 0 else {
                throw CodingError(bitOffset: reader.bitPosition, reason: "Huffman: \(count) symbols to decode with an empty code")
            }
            let tableBits = min(Huffman.tableBits, maxLength)
            // Primary table: entry = symbol << 5 | length for codes of ≤ tableBits bits, 0 = take the slow path.
            var table = [UInt32](repeating: 0, count: 1 << tableBits)
            // Canonical walk data for long codes: per length, first code value, count, and offset into `sorted`.
            var countPerLength = [Int](repeating: 0, count: maxLength + 1)
            for l in lengths where l > 0 { countPerLength[Int(l)] += 1 }
            var offsets = [Int](repeating: 0, count: maxLength + 2)
            for l in 1...maxLength { offsets[l + 1] = offsets[l] + countPerLength[l] }
            var firstCode = [UInt32](repeating: 0, count: maxLength + 2)
            var sorted = [UInt32](repeating: 0, count: offsets[maxLength + 1])
            var fill = offsets
            for s in lengths.indices where lengths[s] > 0 {
                let l = Int(lengths[s])
                sorted[fill[l]] = UInt32(s)
                if fill[l] == offsets[l] { firstCode[l] = codes[s] }
                fill[l] += 1
                if l <= tableBits {
                    let base = Int(codes[s]) << (tableBits - l)
                    for k in 0..<(1 << (tableBits - l)) { table[base + k] = UInt32(s) << 5 | UInt32(l) }
                }
            }
            try table.withUnsafeBufferPointer { table in
                for i in 0..<count {
                    let entry = table[Int(reader.peek(tableBits))]
                    if entry != 0 {
                        reader.consume(Int(entry & 31))
                        body(i, entry >> 5)
                        continue
                    }
                    let bits = reader.peek(maxLength)
                    var found = false
                    for l in (tableBits + 1)...max(tableBits + 1, maxLength) where l <= maxLength {
                        let code = bits >> UInt32(maxLength - l)
                        if countPerLength[l] > 0 && code >= firstCode[l] && Int(code - firstCode[l]) < countPerLength[l] {
                            reader.consume(l)
                            body(i, sorted[offsets[l] + Int(code - firstCode[l])])
                            found = true
                            break
                        }
                    }
                    if !found {
                        throw CodingError(bitOffset: reader.bitPosition, reason: "Huffman: bits \(String(bits, radix: 2)) are not a code")
                    }
                }
            }
            try reader.checkEnd("Huffman-coded symbols")
        }

        /// Decodes `count` symbols into an array.
        public func decode(count: Int, from reader: inout BitReader) throws -> [UInt32] {
            var out = [UInt32](repeating: 0, count: count)
            try decode(count: count, from: &reader) { out[$0] = $1 }
            return out
        }
    }

    // MARK: Whole streams

    /// A self-contained stream: the code's table followed by the codes of `symbols` (alphabet `0..<alphabetSize`).
    public static func encode(_ symbols: [UInt32], alphabetSize: Int) -> [UInt8] {
        var counts = [Int](repeating: 0, count: alphabetSize)
        for s in symbols {
            precondition(Int(s) < alphabetSize, "Huffman: symbol \(s) outside the alphabet of \(alphabetSize)")
            counts[Int(s)] += 1
        }
        let code = Code(counts: counts)
        var writer = BitWriter(reservingBytes: code.encodedBitCount(counts: counts) / 8 + 64)
        code.writeTable(to: &writer)
        code.encode(symbols, into: &writer)
        return writer.finish()
    }

    /// Decodes a stream made by `encode(_:alphabetSize:)` holding `count` symbols. Throws a `CodingError` on any
    /// inconsistency; `count` is checked against the stream's length before anything is allocated.
    public static func decode(_ bytes: [UInt8], count: Int, alphabetSize: Int) throws -> [UInt32] {
        guard count <= bytes.count * 8 else {
            throw CodingError(bitOffset: 0, reason: "\(count) symbols cannot fit in \(bytes.count) bytes")
        }
        var reader = BitReader(bytes)
        let code = try Code.readTable(alphabetSize: alphabetSize, from: &reader)
        let symbols = try code.decode(count: count, from: &reader)
        guard (reader.bitPosition + 7) / 8 == bytes.count else {
            throw CodingError(bitOffset: reader.bitPosition, reason: "\(bytes.count * 8 - reader.bitPosition) bits left after the last symbol")
        }
        return symbols
    }
}
