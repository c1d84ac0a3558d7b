/// The invariants every plan satisfies, checked whenever one is built or loaded.
///
/// Names (as they appear in `PlanningError.invariantViolated`):
/// - "parameters": m, L, B ≥ 1, B ≤ L!, a BMS prior is a distribution over L slices.
/// - "slice offsets": m·L+1 non-decreasing offsets from 0 to the number of ids.
/// - "complete": the plan holds exactly as many ids as the dataset had examples.
/// - "non-empty slices": every slice has at least one member.
/// - "balanced slices": with random assignment, slice sizes within a shard differ by at most one.
/// - "sorted slices": ids within a slice are strictly increasing by UTF-8 bytes.
/// - "disjoint": no id is in two slices.
/// - "hashes match members": each slice hash equals `SliceHash.of(sortedIDs:)` of its members
///   minus the excluded ids.
/// - "sequences are permutations": every shard has B distinct sequences, each a permutation of 0..<L.
/// - "tombstones": deleted ids are planned ids, sorted, without repeats.
/// - "excluded": excluded ids are tombstoned, sorted, without repeats, and leave no slice empty.
extension Plan {
    /// Checks every invariant and returns the lineage index (id → position in `orderedIDs`).
    static func checkInvariants(parameters: PlanParameters, exampleCount: Int, orderedIDs: [String],
                                cellOffsets: [Int], cellHashes: [String], shardSequences: [[[Int]]],
                                tombstones: [String], excludedIDs: [String] = [],
                                file: String) throws -> [String: Int] {
        let check = InvariantCheck(file: file, parameters: parameters, orderedIDs: orderedIDs, cellOffsets: cellOffsets)
        try check.shape(exampleCount: exampleCount, cellHashes: cellHashes)
        let positionByID = try check.slices(cellHashes: cellHashes, excluded: Set(excludedIDs))
        try check.sequences(shardSequences)
        try check.deletions(tombstones: tombstones, excludedIDs: excludedIDs, positionByID: positionByID)
        return positionByID
    }
}

/// The checks of `Plan.checkInvariants`, one concern each, over one plan's arrays.
private struct InvariantCheck {
    let file: String
    let parameters: PlanParameters
    let orderedIDs: [String]
    let cellOffsets: [Int]
    var sliceCount: Int { parameters.sliceCount }
    var cellCount: Int { parameters.shardCount * parameters.sliceCount }

    func broken(_ invariant: String, _ detail: String) -> PlanningError {
        .invariantViolated(file: file, invariant: invariant, detail: detail)
    }

    /// "parameters", "slice offsets", "complete", the hash count, "non-empty slices" and
    /// "balanced slices".
    func shape(exampleCount: Int, cellHashes: [String]) throws {
        do { try parameters.validate() } catch {
            throw broken("parameters", "\(error)")
        }
        guard cellOffsets.count == cellCount + 1, cellOffsets.first == 0, cellOffsets.last == orderedIDs.count,
              zip(cellOffsets, cellOffsets.dropFirst()).allSatisfy({ $0 <= $1 }) else {
            throw broken("slice offsets", "expected \(cellCount + 1) non-decreasing offsets from 0 to \(orderedIDs.count)")
        }
        guard orderedIDs.count == exampleCount else {
            throw broken("complete", "the dataset had \(exampleCount) examples but the plan holds \(orderedIDs.count)")
        }
        guard cellHashes.count == cellCount else {
            throw broken("hashes match members", "expected \(cellCount) slice hashes, found \(cellHashes.count)")
        }
        let l = sliceCount
        for shard in 0..<parameters.shardCount {
            let sizes = (0..<l).map { cellOffsets[shard * l + $0 + 1] - cellOffsets[shard * l + $0] }
            if let empty = sizes.firstIndex(of: 0) {
                throw broken("non-empty slices", "shard \(shard), slice \(empty) has no member")
            }
            if parameters.assignment == .random, let low = sizes.min(), let high = sizes.max(), high - low > 1 {
                throw broken("balanced slices", "shard \(shard) has slices of \(low) and \(high) examples")
            }
        }
    }

    /// "sorted slices", "disjoint", "excluded" (no slice left empty) and "hashes match members";
    /// returns the lineage index built on the way.
    func slices(cellHashes: [String], excluded: Set<String>) throws -> [String: Int] {
        let l = sliceCount
        var positionByID: [String: Int] = [:]
        positionByID.reserveCapacity(orderedIDs.count)
        for cell in 0..<cellCount {
            let range = cellOffsets[cell]..<cellOffsets[cell + 1]
            for position in range {
                let id = orderedIDs[position]
                if position > range.lowerBound, !UTF8Order.precedes(orderedIDs[position - 1], id) {
                    throw broken("sorted slices", "in shard \(cell / l), slice \(cell % l), id \"\(id)\" "
                        + "does not come after \"\(orderedIDs[position - 1])\"")
                }
                if let earlier = positionByID.updateValue(position, forKey: id) {
                    let other = (cellOffsets.lastIndex { $0 <= earlier } ?? 0)
                    throw broken("disjoint", "id \"\(id)\" is in shard \(other / l), slice \(other % l) "
                        + "and in shard \(cell / l), slice \(cell % l)")
                }
            }
            let members = orderedIDs[range]
            let current = excluded.isEmpty ? Array(members) : members.filter { !excluded.contains($0) }
            guard !current.isEmpty else {
                throw broken("excluded", "every member of shard \(cell / l), slice \(cell % l) is excluded")
            }
            let hash = SliceHash.of(sortedIDs: current)
            guard hash == cellHashes[cell] else {
                throw broken("hashes match members", "shard \(cell / l), slice \(cell % l) has hash \(cellHashes[cell]) "
                    + "but its \(current.count) current members hash to \(hash)")
            }
        }
        return positionByID
    }

    /// "sequences are permutations": B distinct permutations of 0..<L per shard.
    func sequences(_ shardSequences: [[[Int]]]) throws {
        let m = parameters.shardCount, b = parameters.budget
        guard shardSequences.count == m else {
            throw broken("sequences are permutations", "expected sequences for \(m) shards, found \(shardSequences.count)")
        }
        let identity = Array(0..<sliceCount)
        for (shard, sequences) in shardSequences.enumerated() {
            guard sequences.count == b else {
                throw broken("sequences are permutations", "shard \(shard) has \(sequences.count) sequences, the budget is \(b)")
            }
            for (index, sequence) in sequences.enumerated() where sequence.sorted() != identity {
                throw broken("sequences are permutations",
                             "shard \(shard), sequence \(index) is \(sequence), not a permutation of 0…\(sliceCount - 1)")
            }
            if Set(sequences).count != sequences.count {
                throw broken("sequences are permutations", "shard \(shard) lists the same sequence twice")
            }
        }
    }

    /// "tombstones" and "excluded": planned, sorted, distinct ids; excluded ids are tombstoned.
    func deletions(tombstones: [String], excludedIDs: [String], positionByID: [String: Int]) throws {
        for (index, id) in tombstones.enumerated() {
            guard positionByID[id] != nil else {
                throw broken("tombstones", "deleted id \"\(id)\" is not in the plan")
            }
            if index > 0, !UTF8Order.precedes(tombstones[index - 1], id) {
                throw broken("tombstones", "deleted ids are not sorted and distinct at \"\(id)\"")
            }
        }
        let tombstoneSet = Set(tombstones)
        for (index, id) in excludedIDs.enumerated() {
            guard tombstoneSet.contains(id) else {
                throw broken("excluded", "excluded id \"\(id)\" is not tombstoned")
            }
            if index > 0, !UTF8Order.precedes(excludedIDs[index - 1], id) {
                throw broken("excluded", "excluded ids are not sorted and distinct at \"\(id)\"")
            }
        }
    }
}
