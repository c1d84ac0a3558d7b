import Foundation
import Planning
import Store

/// What lets a stage be trained and committed: none of its examples is deleted.
///
/// A deletion binds every process from the moment it is accepted (docs/FORGETTING.md,
/// "Deletions bind training"). The gate enforces it for one training process:
/// - before a stage is trained, `permits` checks its examples against the tombstones known so
///   far (so no work is spent on a stage that cannot be kept);
/// - a finished stage is committed by `commit`, which takes the run lock, asks `current` for
///   the tombstones now (for a run: recovery of a forget that was accepted but not carried
///   out, then the plan's tombstones read from disk), and renames the file into place only if
///   the stage's examples still hold no deleted one. A forget holds the same lock from
///   its ledger commit to its erasure step, so it either sees the new file (and erases it) or
///   the commit sees its tombstones (and drops the stage): a forget that races training wins.
///
/// Use one gate from one thread at a time.
public final class StageGate {
    public let layout: RunLayout
    private let current: () throws -> [String]
    /// Every tombstone seen so far: the plan's at creation and at each commit. Tombstones are
    /// never removed, so the union is the current set.
    public private(set) var tombstones: Set<String>

    /// - Parameters:
    ///   - tombstones: the deleted ids of the plan the schedule was made from.
    ///   - current: the deleted ids now; called under the run lock at each commit, so it must
    ///     not take that lock itself.
    public init(layout: RunLayout, tombstones: some Sequence<String>, current: @escaping () throws -> [String]) {
        self.layout = layout; self.current = current; self.tombstones = Set(tombstones)
    }

    /// A gate whose commits run `recover` and then read the tombstones of the plan in `layout`;
    /// with `identity` (that of the plan the stages were scheduled from), a commit refuses when
    /// plan.h5 now holds another plan.
    public static func reading(_ layout: RunLayout, tombstones: some Sequence<String>, identity: PlanIdentity? = nil,
                               recover: @escaping () throws -> Void) -> StageGate {
        StageGate(layout: layout, tombstones: tombstones) {
            try recover()
            return try currentTombstones(layout, identity: identity)
        }
    }

    /// The tombstones of the plan in `layout`, refused when it is not the plan of `identity`.
    private static func currentTombstones(_ layout: RunLayout, identity: PlanIdentity?) throws -> [String] {
        let plan = try Plan.load(from: layout.planURL)
        if let identity, plan.identity != identity { throw TrainingError.planReplaced(file: layout.planURL.path) }
        return plan.tombstones
    }

    /// A gate for a process that never opens the ledger (a cluster array task): it refuses to
    /// start, and each commit refuses, while a forget is unfinished (`UnfinishedForget`), since
    /// the plan's tombstones may then miss an accepted deletion. The check at the start takes the
    /// run lock, so a forget still running is waited for (its flag is raised while it holds the
    /// lock) rather than taken for one that died; the tombstones are then read afresh.
    public static func withoutLedger(_ layout: RunLayout, plan: Plan) throws -> StageGate {
        let current = try FileLock.withSharedLockForReading(layout.lockURL) {
            try UnfinishedForget.requireLowered(layout)
            return try currentTombstones(layout, identity: plan.identity)
        }
        return reading(layout, tombstones: Set(plan.tombstones).union(current), identity: plan.identity,
                       recover: { try UnfinishedForget.requireLowered(layout) })
    }

    /// True when none of `exampleIDs` is a known tombstone.
    public func permits(_ exampleIDs: [String]) -> Bool {
        tombstones.isEmpty || !exampleIDs.contains(where: tombstones.contains)
    }

    /// Under the run lock: refreshes the tombstones, and runs `write` (which must put the stage
    /// file in place atomically) only if `exampleIDs` hold none. Returns whether it ran.
    public func commit(exampleIDs: [String], _ write: () throws -> Void) throws -> Bool {
        try FileLock.withExclusiveLock(layout.lockURL) {
            tombstones.formUnion(try current())
            guard permits(exampleIDs) else { return false }
            try write()
            return true
        }
    }
}
