import Foundation
import Support

/// Where an example lives: its shard and its slice within the shard (both 0-based).
public struct SliceLocation: Hashable, Sendable, CustomStringConvertible {
    public let shard: Int
    public let slice: Int
    public init(shard: Int, slice: Int) {
        self.shard = shard
        self.slice = slice
    }
    public var description: String { "shard \(shard), slice \(slice)" }
}

/// Everything the lineage index answers about one example.
public struct Lineage: Sendable, Equatable {
    public let id: String
    public let location: SliceLocation
    /// The content hash of the example's slice (see `SliceHash`).
    public let sliceHash: String
    /// For each sequence of the shard (in order), the 1-based stage at which that sequence first
    /// trains on the slice; deleting the example truncates the sequence to the stages before it.
    public let stagePositions: [Int]
    /// True when the example has been deleted (a tombstone).
    public let isTombstoned: Bool
}

/// The S3T plan of a run: who is in which shard and slice, each slice's content hash, and each
/// shard's B training sequences (docs/DESIGN.md §1). Immutable once made, except for tombstones.
///
/// Shards, slices and sequence entries are 0-based; stage positions are 1-based (stage p of a
/// sequence trains on its first p slices). Every `Plan` value satisfies the invariants of
/// `Plan+Invariants.swift`: they are checked when it is built and when it is loaded.
/// What makes two plans the same assignment of examples to shards, slices and sequences: the
/// parameters (seed included) and the dataset. Deletions (tombstones, slices a retrain rebuilt)
/// change a plan but not its identity; `lethe plan --force` with another seed or data does.
public struct PlanIdentity: Sendable, Equatable {
    public let parameters: PlanParameters
    public let datasetSHA256: String
}

public struct Plan: Sendable {
    public let parameters: PlanParameters
    /// How the dataset was named when planned (its path) and the SHA-256 of its bytes.
    /// The dataset file: `datasetSource` resolved for the run in `run` (see `RunRelativePath`).
    public func datasetURL(run: URL) -> URL { RunRelativePath.resolve(datasetSource, run: run) }

    public let datasetSource: String
    public let datasetSHA256: String
    /// The label names of the planned dataset.
    public let labels: LabelVocabulary
    /// Ids of deleted examples, sorted by UTF-8 bytes: no later training may see them.
    public private(set) var tombstones: [String]
    /// Tombstoned ids that `lethe retrain` removed from their slice's members (the slice was
    /// rebuilt without them and has a new content hash), sorted by UTF-8 bytes. A tombstone not
    /// listed here still *hits* its slice: every stage whose prefix holds the slice saw it.
    public private(set) var excludedIDs: [String]

    /// All ids grouped by cell (cell = shard·L + slice, in order), sorted by UTF-8 bytes within a cell.
    let orderedIDs: [String]
    /// `orderedIDs[cellOffsets[c] ..< cellOffsets[c+1]]` are the members of cell c.
    let cellOffsets: [Int]
    /// Content hash per cell, over its members minus `excludedIDs`.
    private(set) var cellHashes: [String]
    /// `shardSequences[h][b]` is sequence b of shard h, a permutation of 0..<L.
    let shardSequences: [[[Int]]]
    /// Lineage index: id → position in `orderedIDs`, built when the plan is made or loaded.
    let positionByID: [String: Int]
    private(set) var tombstoneSet: Set<String>
    private(set) var excludedSet: Set<String>
    /// `hitSlices`, kept up to date as tombstones and exclusions are added.
    private var hitSliceSet: Set<SliceLocation> = []
    /// For a plan with a tombstone log (tombstones also in the append-only `TombstoneLog`:
    /// format 3, or format 4 with `tombstone_log` = 1): the byte offset up to which the log has
    /// been read. Nil for a plan whose tombstones are all in `plan.h5`.
    public internal(set) var tombstoneLogEnd: Int?

    /// Assembles a plan from its parts and checks every invariant; `file` names it in errors.
    init(parameters: PlanParameters, datasetSource: String, datasetSHA256: String, exampleCount: Int,
         labels: LabelVocabulary, orderedIDs: [String], cellOffsets: [Int], cellHashes: [String],
         shardSequences: [[[Int]]], tombstones: [String], excludedIDs: [String] = [], file: String) throws {
        self.parameters = parameters
        self.datasetSource = datasetSource
        self.datasetSHA256 = datasetSHA256
        self.labels = labels
        self.orderedIDs = orderedIDs
        self.cellOffsets = cellOffsets
        self.cellHashes = cellHashes
        self.shardSequences = shardSequences
        self.tombstones = tombstones
        self.tombstoneSet = Set(tombstones)
        self.excludedIDs = excludedIDs
        self.excludedSet = Set(excludedIDs)
        self.positionByID = try Plan.checkInvariants(
            parameters: parameters, exampleCount: exampleCount, orderedIDs: orderedIDs,
            cellOffsets: cellOffsets, cellHashes: cellHashes, shardSequences: shardSequences,
            tombstones: tombstones, excludedIDs: excludedIDs, file: file)
        hitSliceSet = computedHitSlices()
    }

    public var identity: PlanIdentity { PlanIdentity(parameters: parameters, datasetSHA256: datasetSHA256) }
    public var shardCount: Int { parameters.shardCount }
    public var sliceCount: Int { parameters.sliceCount }
    public var budget: Int { parameters.budget }
    /// The number of planned examples (tombstoned ones included).
    public var exampleCount: Int { orderedIDs.count }

    /// The id as the plan stores it (its bytes from the dataset) for `id`, or nil. Swift compares
    /// strings by canonical equivalence, so "café" typed precomposed finds an id stored
    /// decomposed; the ledger, SQLite and every byte-sorted list compare bytes, so what is
    /// recorded about an example must be these bytes.
    public func storedID(of id: String) -> String? {
        positionByID[id].map { orderedIDs[$0] }
    }

    /// The shard and slice of an example, or nil for an id the plan does not know. O(1) + O(log m·L).
    public func location(of id: String) -> SliceLocation? {
        guard let position = positionByID[id] else { return nil }
        // The last cell whose first member is at or before `position`.
        var low = 0, high = cellOffsets.count - 1
        while high - low > 1 {
            let middle = (low + high) / 2
            if cellOffsets[middle] <= position { low = middle } else { high = middle }
        }
        return SliceLocation(shard: low / sliceCount, slice: low % sliceCount)
    }

    /// The member ids of a slice, sorted by UTF-8 bytes (tombstoned ids included).
    public func members(shard: Int, slice: Int) -> ArraySlice<String> {
        let cell = self.cell(shard: shard, slice: slice)
        return orderedIDs[cellOffsets[cell]..<cellOffsets[cell + 1]]
    }

    /// Every example a `full` model trains on: the current members of every slice that are not
    /// tombstoned, sorted by UTF-8 bytes (their content hash keys the full model).
    public var undeletedExampleIDs: [String] {
        (0..<shardCount).flatMap { h in (0..<sliceCount).flatMap { currentMembers(shard: h, slice: $0) } }
            .filter { !isTombstoned($0) }.sorted(by: UTF8Order.precedes)
    }

    /// The ids a slice trains on now, sorted by UTF-8 bytes: its members minus those excluded
    /// by a rebuild. Its content hash is `sliceHash(shard:slice:)`.
    public func currentMembers(shard: Int, slice: Int) -> [String] {
        members(shard: shard, slice: slice).filter { !excludedSet.contains($0) }
    }

    /// The number of examples in a slice.
    public func memberCount(shard: Int, slice: Int) -> Int {
        let cell = self.cell(shard: shard, slice: slice)
        return cellOffsets[cell + 1] - cellOffsets[cell]
    }

    /// The content hash of a slice's current members (lowercase hex SHA-256, see `SliceHash`).
    public func sliceHash(shard: Int, slice: Int) -> String {
        cellHashes[cell(shard: shard, slice: slice)]
    }

    /// The B sequences of a shard; each is a permutation of the slices 0..<L.
    public func sequences(of shard: Int) -> [[Int]] {
        precondition((0..<shardCount).contains(shard), "shard \(shard) out of range")
        return shardSequences[shard]
    }

    /// The 1-based stage at which `sequence` first trains on `slice`, or nil if it does not contain it.
    public func position(of slice: Int, in sequence: [Int]) -> Int? {
        sequence.firstIndex(of: slice).map { $0 + 1 }
    }

    /// Shard, slice, slice hash and stage positions of an example; nil for an unknown id.
    public func lineage(of id: String) -> Lineage? {
        guard let location = location(of: id) else { return nil }
        let positions = shardSequences[location.shard].map { sequence in
            // Sequences are permutations (an invariant), so every slice has a position.
            (sequence.firstIndex(of: location.slice) ?? sequence.count) + 1
        }
        return Lineage(id: id, location: location, sliceHash: sliceHash(shard: location.shard, slice: location.slice),
                       stagePositions: positions, isTombstoned: tombstoneSet.contains(id))
    }

    /// True when the example was deleted.
    public func isTombstoned(_ id: String) -> Bool { tombstoneSet.contains(id) }

    /// True when a rebuild removed the (deleted) example from its slice's members.
    public func isExcluded(_ id: String) -> Bool { excludedSet.contains(id) }

    /// The slices still holding a deleted example: every stage whose prefix contains one saw
    /// deleted data (the truncation rule applies), until `lethe retrain` rebuilds the slice.
    public var hitSlices: Set<SliceLocation> { hitSliceSet }

    /// The hit slices with no example left once the deleted ones are removed: a rebuild cannot
    /// empty a slice, so their shards cannot be retrained (their data needs a new plan). Sorted.
    public var emptiedSlices: [SliceLocation] {
        hitSliceSet.filter { currentMembers(shard: $0.shard, slice: $0.slice).allSatisfy(tombstoneSet.contains) }
            .sorted { ($0.shard, $0.slice) < ($1.shard, $1.slice) }
    }

    private func computedHitSlices() -> Set<SliceLocation> {
        Set(tombstones.lazy.filter { !self.excludedSet.contains($0) }.compactMap(location(of:)))
    }

    /// Removes deleted examples from their slices' members and recomputes those slices'
    /// content hashes (the slices are rebuilt). Every id must be tombstoned;
    /// an id already excluded is kept once. Refuses to empty a slice.
    /// - Returns: the rebuilt slices.
    @discardableResult
    public mutating func excludeFromSlices(_ ids: some Sequence<String>) throws -> Set<SliceLocation> {
        var excluded = excludedSet
        var rebuilt = Set<SliceLocation>()
        for id in ids {
            guard tombstoneSet.contains(id), let location = location(of: id) else {
                throw PlanningError.invalidValue(flag: "--id", value: id,
                                                 reason: "only deleted (tombstoned) examples can leave their slice")
            }
            if excluded.insert(id).inserted { rebuilt.insert(location) }
        }
        for location in rebuilt {
            let remaining = members(shard: location.shard, slice: location.slice).filter { !excluded.contains($0) }
            guard !remaining.isEmpty else {
                throw PlanningError.sliceEmptied(shard: location.shard, slice: location.slice)
            }
            cellHashes[cell(shard: location.shard, slice: location.slice)] = SliceHash.of(sortedIDs: remaining)
        }
        excludedSet = excluded
        excludedIDs = excluded.sorted(by: UTF8Order.precedes)
        hitSliceSet = computedHitSlices()
        return rebuilt
    }

    /// Records deleted examples. Unknown ids are refused; ids already tombstoned are kept once.
    public mutating func addTombstones(_ ids: some Sequence<String>) throws {
        try addTombstones(ids) { id in
            PlanningError.invalidValue(flag: "--id", value: id, reason: "the plan has no example with this id")
        }
    }

    /// Adds tombstones; `unknown` makes the error for an id the plan does not know.
    mutating func addTombstones(_ ids: some Sequence<String>, unknown: (String) -> PlanningError) throws {
        var added = tombstoneSet
        for id in ids {
            guard positionByID[id] != nil else { throw unknown(id) }
            added.insert(id)
        }
        let newCount = added.count - tombstoneSet.count
        guard newCount > 0 else { return }
        for id in added.subtracting(tombstoneSet) where !excludedSet.contains(id) {
            if let location = location(of: id) { hitSliceSet.insert(location) }
        }
        if newCount <= 16 {  // a few: insert in place (a forget adds one or two to a long list)
            for id in added.subtracting(tombstoneSet) {
                var low = 0, high = tombstones.count
                while low < high {
                    let middle = (low + high) / 2
                    if UTF8Order.precedes(tombstones[middle], id) { low = middle + 1 } else { high = middle }
                }
                tombstones.insert(id, at: low)
            }
        } else {
            tombstones = added.sorted(by: UTF8Order.precedes)
        }
        tombstoneSet = added
    }

    private func cell(shard: Int, slice: Int) -> Int {
        precondition((0..<shardCount).contains(shard) && (0..<sliceCount).contains(slice),
                     "shard \(shard), slice \(slice) out of range")
        return shard * sliceCount + slice
    }
}
