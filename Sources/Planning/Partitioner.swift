import Support
/// How examples are dealt into shards and slices.
public enum Assignment: String, Sendable, CaseIterable {
    /// Seeded uniform shuffle, then contiguous runs: slice sizes within a shard (and shard sizes)
    /// differ by at most one.
    case random
    /// All examples of one `group` land in the same shard and slice, so forgetting a data subject
    /// hits a single slice. Examples without a group are groups of one. Sizes are balanced
    /// greedily and can differ by more than one when groups differ in size.
    case group
}

/// Deals a dataset's examples into m shards × L slices; every example lands in exactly one cell.
enum Partitioner {
    /// Example indices per shard per slice (`cells[shard][slice]`), each list in ascending order.
    ///
    /// Refuses when some cell would stay empty: random needs m·L examples, group needs m·L groups.
    static func partition(_ dataset: Dataset, shardCount m: Int, sliceCount l: Int,
                          assignment: Assignment, seed: UInt64) throws -> [[[Int]]] {
        var generator = SplitMix64(seed: seed)
        switch assignment {
        case .random:
            let n = dataset.examples.count
            guard m * l <= n else {
                throw PlanningError.notEnoughData(shardCount: m, sliceCount: l, needed: m * l, available: n, unit: "examples")
            }
            var order = Array(0..<n)
            generator.shuffle(&order)
            // Shard h gets a contiguous run of the shuffled order, then each slice a run of that.
            var cells: [[[Int]]] = []
            for shardRange in evenRanges(count: n, parts: m) {
                let shard = Array(order[shardRange])
                cells.append(evenRanges(count: shard.count, parts: l).map { shard[$0].sorted() })
            }
            return cells
        case .group:
            return try partitionByGroup(dataset, shardCount: m, sliceCount: l, generator: &generator)
        }
    }

    /// `parts` consecutive ranges covering 0..<count whose lengths differ by at most one
    /// (the first `count % parts` ranges are one longer).
    static func evenRanges(count: Int, parts: Int) -> [Range<Int>] {
        let base = count / parts, extra = count % parts
        var start = 0
        return (0..<parts).map { part in
            let length = base + (part < extra ? 1 : 0)
            defer { start += length }
            return start..<(start + length)
        }
    }

    /// Longest-processing-time greedy over the m·L cells: groups in decreasing size (ties in
    /// seeded random order) each go to the currently smallest cell (ties: lowest cell number).
    /// The first m·L groups fill distinct empty cells, so no cell stays empty; shard h owns cells
    /// h·L ..< (h+1)·L.
    private static func partitionByGroup(_ dataset: Dataset, shardCount m: Int, sliceCount l: Int,
                                         generator: inout SplitMix64) throws -> [[[Int]]] {
        var memberIndices: [[Int]] = []
        var groupIndex: [String: Int] = [:]
        for (position, example) in dataset.examples.enumerated() {
            if let name = example.group {
                if let existing = groupIndex[name] {
                    memberIndices[existing].append(position)
                    continue
                }
                groupIndex[name] = memberIndices.count
            }
            memberIndices.append([position])
        }
        let cellCount = m * l
        guard cellCount <= memberIndices.count else {
            throw PlanningError.notEnoughData(shardCount: m, sliceCount: l, needed: cellCount,
                                              available: memberIndices.count, unit: "groups")
        }
        var order = Array(memberIndices.indices)
        generator.shuffle(&order)
        // Larger groups first; among equal sizes the seeded shuffle decides.
        let ranked = order.enumerated().sorted { a, b in
            let sizeA = memberIndices[a.element].count, sizeB = memberIndices[b.element].count
            return sizeA != sizeB ? sizeA > sizeB : a.offset < b.offset
        }.map(\.element)
        var cellSizes = [Int](repeating: 0, count: cellCount)
        var cells = [[Int]](repeating: [], count: cellCount)
        // A binary heap would make this O(g log c); c = m·L is small (tens), so a scan is simpler.
        for group in ranked {
            var smallest = 0
            for cell in 1..<cellCount where cellSizes[cell] < cellSizes[smallest] { smallest = cell }
            cells[smallest].append(contentsOf: memberIndices[group])
            cellSizes[smallest] += memberIndices[group].count
        }
        return (0..<m).map { shard in (0..<l).map { cells[shard * l + $0].sorted() } }
    }
}
