// Deep Compression's sparse storage (Han, Mao & Dally 2016, §2 and Figure 2): only the non-zero elements are stored,
// each with its position relative to the previous stored element ("relative index" or gap) in `indexBits` bits.
// When a run of zeros is longer than the largest gap a field holds (2^indexBits − 1), a padding entry — a stored zero
// — is inserted so the next gap fits.

/// Relative-index (gap) coding of the positions of a sparse tensor's stored elements.
///
/// The stored entries are the non-zero elements plus padding zeros, in position order. Entry `k` sits at
/// `position[k] = position[k−1] + gap[k] + 1` (with `position[−1] = −1`), so `gap[k]` counts the zeros skipped
/// before it, `0 … 2^indexBits − 1`. Padding entries are also inserted at the end so that at most
/// `2^indexBits − 1` zeros follow the last entry: the element count is then bounded by
/// `(entries + 1) · 2^indexBits`, which lets a reader reject a lying element count before allocating.
public enum SparseCoding {
    /// The largest gap an `indexBits`-bit field holds.
    public static func maximumGap(indexBits: Int) -> Int { (1 << indexBits) - 1 }

    /// Positions and gaps of the stored entries of a tensor of `count` elements, where `isZero(i)` tells whether
    /// element `i` may be left out. Padding entries are placed at (zero) elements, so a writer stores the element
    /// found at every returned position and the decoded tensor is exact.
    public static func entries(count: Int, indexBits: Int, isZero: (Int) -> Bool) -> (positions: [Int], gaps: [UInt32]) {
        precondition((1...16).contains(indexBits), "SparseCoding: indexBits must be 1…16, got \(indexBits)")
        let maxGap = maximumGap(indexBits: indexBits)
        var positions: [Int] = []
        var gaps: [UInt32] = []
        var previous = -1
        var i = 0
        while i <= count {
            // The next stored element (or the end), padding first while the gap does not fit.
            if i < count && isZero(i) { i += 1; continue }
            // (At the end, position `count` acts as a virtual stored element: trailing zeros are padded the same way.)
            while i - previous - 1 > maxGap {
                previous += maxGap + 1
                positions.append(previous)
                gaps.append(UInt32(maxGap))
            }
            if i < count {
                positions.append(i)
                gaps.append(UInt32(i - previous - 1))
                previous = i
            }
            i += 1
        }
        return (positions, gaps)
    }

    /// The largest element count `entries` stored entries can describe.
    public static func maximumElementCount(entries: Int, indexBits: Int) -> Int {
        let (product, overflow) = (entries + 1).multipliedReportingOverflow(by: 1 << indexBits)
        return overflow ? Int.max : product - 1
    }

    /// Positions of entries with these gaps in a tensor of `count` elements; `body(k, position)` receives each.
    /// Throws when an entry falls outside the tensor, a gap does not fit in `indexBits`, or more than
    /// `2^indexBits − 1` zeros follow the last entry (the writer would have padded).
    public static func positions(gaps: [UInt32], count: Int, indexBits: Int, _ body: (Int, Int) -> Void) throws {
        precondition((1...16).contains(indexBits), "SparseCoding: indexBits must be 1…16, got \(indexBits)")
        let maxGap = maximumGap(indexBits: indexBits)
        var position = -1
        for k in 0..<gaps.count {
            let gap = Int(gaps[k])
            guard gap <= maxGap else {
                throw CodingError(bitOffset: 0, reason: "sparse entry \(k): gap \(gap) does not fit in \(indexBits) bits")
            }
            position += gap + 1
            guard position < count else {
                throw CodingError(bitOffset: 0, reason: "sparse entry \(k) lands at element \(position), past the tensor's \(count) elements")
            }
            body(k, position)
        }
        guard count - 1 - position <= maxGap else {
            throw CodingError(bitOffset: 0, reason: "\(count - 1 - position) zeros follow the last sparse entry, more than a \(indexBits)-bit gap holds (missing padding entries)")
        }
    }

    /// Positions of entries with these gaps (see `positions(gaps:count:indexBits:_:)`).
    public static func positions(gaps: [UInt32], count: Int, indexBits: Int) throws -> [Int] {
        var out = [Int](repeating: 0, count: gaps.count)
        try positions(gaps: gaps, count: count, indexBits: indexBits) { out[$0] = $1 }
        return out
    }
}
