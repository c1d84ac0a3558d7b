import Planning

/// The pure S3T deletion rule (docs/DESIGN.md §1, "Deletion rule" and "Serving"), with no I/O.
///
/// Shards, slices and sequence indices are 0-based; stage positions and prefix lengths are
/// 1-based counts (a prefix of length p trains on the first p slices). A hit slice s truncates
/// every sequence of its shard to the stages before s; deletions commute, so a batch truncates
/// each sequence at its earliest hit position. Each shard serves its surviving sequence with
/// the longest prefix (ties: lowest sequence index); a shard with none left is dead.
public enum DeletionLogic {
    /// The length of the longest prefix of `sequence` that contains none of `hitSlices`:
    /// (earliest 1-based position of a hit slice) − 1, or the whole sequence when none is hit.
    public static func survivingLength(of sequence: [Int], hitSlices: Set<Int>) -> Int {
        sequence.firstIndex(where: hitSlices.contains) ?? sequence.count
    }

    /// The sequence a shard serves: the longest surviving prefix, lowest index on ties; nil
    /// when every prefix is empty (the shard is dead).
    public static func servedSequence(prefixLengths: [Int]) -> ServedPrefix? {
        var best: ServedPrefix?
        for (index, length) in prefixLengths.enumerated() where length > 0 {
            if length > (best?.prefixLength ?? 0) { best = ServedPrefix(sequence: index, prefixLength: length) }
        }
        return best
    }

    /// The outcome of hitting `hitSlices` in one shard whose sequences currently survive to
    /// `currentLengths` (the full length L for a freshly trained shard).
    public static func apply(shard: Int, sequences: [[Int]], currentLengths: [Int],
                             hitSlices: Set<Int>) -> ShardOutcome {
        precondition(sequences.count == currentLengths.count, "one current length per sequence")
        var lengths: [Int] = []
        var truncations: [SequenceTruncation] = []
        for (index, sequence) in sequences.enumerated() {
            let current = currentLengths[index]
            let new = min(current, survivingLength(of: sequence, hitSlices: hitSlices))
            lengths.append(new)
            if new < current {
                truncations.append(SequenceTruncation(shard: shard, sequence: index, fromLength: current,
                                                      toLength: new, deactivatedStages: Array(new + 1 ... current)))
            }
        }
        return ShardOutcome(shard: shard, prefixLengths: lengths,
                            served: servedSequence(prefixLengths: lengths), truncations: truncations,
                            erasedPrefixes: stagePrefixes(of: sequences, containingAnyOf: hitSlices))
    }

    /// Every distinct stage prefix of the shard's sequences that contains a hit slice: the
    /// stages that saw deleted data. None of them is in a surviving prefix (a surviving prefix
    /// stops before its first hit), so none is served after the deletion and all are erased.
    /// Sorted by length, then slices.
    public static func stagePrefixes(of sequences: [[Int]], containingAnyOf hitSlices: Set<Int>) -> [[Int]] {
        guard !hitSlices.isEmpty else { return [] }
        var seen = Set<[Int]>()
        for sequence in sequences {
            let first = survivingLength(of: sequence, hitSlices: hitSlices)
            guard first < sequence.count else { continue }
            for length in (first + 1)...sequence.count { seen.insert(Array(sequence.prefix(length))) }
        }
        return seen.sorted { a, b in a.count != b.count ? a.count < b.count : a.lexicographicallyPrecedes(b) }
    }

    /// The outcome for a whole run: shards without a hit keep their lengths and serving.
    /// - Parameters:
    ///   - sequences: `sequences[h]` are shard h's B sequences.
    ///   - currentLengths: `currentLengths[h][b]`, the surviving prefix length of each sequence.
    ///   - hits: the (shard, slice) pairs that hold a deleted example.
    public static func apply(sequences: [[[Int]]], currentLengths: [[Int]],
                             hits: Set<SliceLocation>) -> [ShardOutcome] {
        var hitsByShard: [Int: Set<Int>] = [:]
        for hit in hits { hitsByShard[hit.shard, default: []].insert(hit.slice) }
        return sequences.indices.map { shard in
            apply(shard: shard, sequences: sequences[shard], currentLengths: currentLengths[shard],
                  hitSlices: hitsByShard[shard] ?? [])
        }
    }

    /// δ remaining: the expected number of further uniform random deletions before every shard
    /// is dead, given the current prefix lengths.
    ///
    /// A sequence dies exactly when its first slice is hit, and sequences with the same first
    /// slice die together, so the run is dead once each of the k distinct (shard, first slice)
    /// cells of live sequences has been hit: a coupon-collector time of k coupons among the
    /// m·L equally likely cells, m·L·H_k. For a fresh run k = m·min(B, L) and this is
    /// `DeletionRateTheory.s3t`.
    public static func remainingDeletionRate(sequences: [[[Int]]], prefixLengths: [[Int]],
                                             sliceCount: Int) -> Double {
        var cells = Set<SliceLocation>()
        for (shard, shardSequences) in sequences.enumerated() {
            for (index, sequence) in shardSequences.enumerated() where prefixLengths[shard][index] > 0 {
                cells.insert(SliceLocation(shard: shard, slice: sequence[0]))
            }
        }
        return Double(sequences.count * sliceCount) * DeletionRateTheory.harmonic(cells.count)
    }
}

/// The served choice of one shard: a sequence index and its surviving prefix length (≥ 1).
public struct ServedPrefix: Equatable, Sendable, Codable {
    public var sequence: Int
    public var prefixLength: Int
    public init(sequence: Int, prefixLength: Int) {
        self.sequence = sequence
        self.prefixLength = prefixLength
    }
    enum CodingKeys: String, CodingKey { case sequence, prefixLength = "prefix_length" }
}

/// One sequence cut shorter by a deletion: stages `toLength + 1 … fromLength` are deactivated.
public struct SequenceTruncation: Equatable, Sendable, Codable {
    public var shard: Int
    public var sequence: Int
    public var fromLength: Int
    public var toLength: Int
    public var deactivatedStages: [Int]
    enum CodingKeys: String, CodingKey {
        case shard, sequence, fromLength = "from_length", toLength = "to_length"
        case deactivatedStages = "deactivated_stages"
    }
}

/// What a deletion does to one shard.
public struct ShardOutcome: Equatable, Sendable {
    public var shard: Int
    /// Surviving prefix length of each sequence after the deletion.
    public var prefixLengths: [Int]
    /// The served sequence after the deletion; nil when the shard is dead.
    public var served: ServedPrefix?
    /// The sequences this deletion shortened.
    public var truncations: [SequenceTruncation]
    /// The stage prefixes (slice lists) that saw a hit slice: to erase.
    public var erasedPrefixes: [[Int]]

    public var isDead: Bool { served == nil }
}
