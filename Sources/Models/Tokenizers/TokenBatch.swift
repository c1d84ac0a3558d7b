/// Token ids of several texts padded to a common length, with their attention mask.
///
/// Layout: row-major `[batchSize, sequenceLength]`; row b holds `lengths[b]` real ids followed by
/// `padID`; `mask[b·T + t]` is 1 for a real token and 0 for padding.
public struct TokenBatch: Sendable, Equatable {
    public let batchSize: Int
    public let sequenceLength: Int
    public let ids: [Int32]
    public let mask: [Int32]
    public let lengths: [Int]

    /// Pads `sequences` (each non-empty) to the longest one.
    public init(_ sequences: [[Int32]], padID: Int32 = 0) {
        precondition(sequences.allSatisfy { !$0.isEmpty }, "every sequence needs at least one token")
        let t = sequences.map(\.count).max() ?? 0
        var ids = [Int32](repeating: padID, count: sequences.count * t)
        var mask = [Int32](repeating: 0, count: sequences.count * t)
        for (b, sequence) in sequences.enumerated() {
            for (i, id) in sequence.enumerated() {
                ids[b * t + i] = id
                mask[b * t + i] = 1
            }
        }
        self.batchSize = sequences.count
        self.sequenceLength = t
        self.ids = ids
        self.mask = mask
        self.lengths = sequences.map(\.count)
    }

    /// Number of real (non-padding) tokens.
    public var realTokenCount: Int { lengths.reduce(0, +) }
}
