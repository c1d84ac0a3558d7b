import ArgumentParser
import Forgetting
import Foundation
import Models
import Kernels
import Planning
import Training

/// How a subcommand reaches a run: through a `RunGuard` on the wall clock, so every accepted
/// deletion is carried out before the command reads, trains or publishes anything.
public enum RunAccess {
    /// Milliseconds since 1970, the clock of ledger timestamps.
    public static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    public static func guarded(_ run: URL) -> RunGuard { RunGuard(run: run, nowMilliseconds: nowMilliseconds) }

    /// Recovers the run (under its lock) and says on stderr what recovery completed.
    @discardableResult
    public static func recover(_ run: URL) throws -> RunGuard {
        let guarded = guarded(run)
        report(try guarded.recover())
        return guarded
    }

    /// For commands that only read: `body` runs under the run lock held shared, after recovery
    /// when this process may write the run, or on the run as it is (an auditor with read access
    /// only). Says on stderr what recovery did, or what it would have completed.
    public static func inspect<T>(_ run: URL, _ body: () throws -> T) throws -> T {
        try inspect(run) { (_: RunGuard.Inspection) in try body() }
    }

    /// `inspect`, with `body` given how the run was found (what recovery did or could not do).
    public static func inspect<T>(_ run: URL, _ body: (RunGuard.Inspection) throws -> T) throws -> T {
        var inspection = RunGuard.Inspection()
        let result = try guarded(run).withInspectedRun { found in
            inspection = found
            return try body(found)
        }
        report(inspection.recovery)
        if let stopped = inspection.recoveryStopped {
            let line: String = "unfinished: " + (inspection.unfinished + ["recovery stopped: " + stopped]).joined(separator: "; ")
                + " What follows is the run as it is on disk.\n"
            StandardError.write(Data(line.utf8))
        } else if !inspection.unfinished.isEmpty {
            let label: String = inspection.readOnly ? "read-only: " : "unfinished: "
            let cause: String = inspection.readOnly ? "This user may not write \(run.path), so nothing was recovered"
                : "Forgets kept dying while this command recovered the run"
            let advice: String = "its owner completes the work with `lethe forget --run \(run.path) --resume`"
            let line: String = label + inspection.unfinished.joined(separator: "; ") + ". " + cause
                + ", and what follows is the run as it is on disk; " + advice + ".\n"
            StandardError.write(Data(line.utf8))
        }
        return result
    }

    /// Tells the user what recovery did, on stderr (stdout may be JSON).
    public static func report(_ recovery: RunGuard.Recovery) {
        guard recovery.didSomething else { return }
        var parts: [String] = []
        if recovery.tombstonesReapplied {
            parts.append("applied all \(recovery.completedRequestCount) deletion request(s) again: the plan's tombstones were "
                         + "not those the last receipt recorded (plan.h5 or plan.tombstones restored from an older copy or "
                         + "changed outside Lethe); `lethe verify` names any id tombstoned without a request")
        } else if recovery.completedRequestCount > 0 {
            parts.append("completed \(recovery.completedRequestCount) deletion request(s) an interrupted forget had accepted")
        }
        if let stale = recovery.republishedBecause {
            parts.append("republished the served composition from the plan and every accepted deletion: " + stale.explanation)
        }
        StandardError.write(Data(("recovery: " + parts.joined(separator: "; ") + "\n").utf8))
    }
}

extension RunAccess {
    /// The run's served ensemble, loaded under the run lock after recovery, so it includes
    /// every deletion accepted before this call. Refuses (`RunStateError`, exit 1) a run with no
    /// composition or no live shard: there is no model to answer with.
    public static func servedEnsemble(_ layout: RunLayout, labels: LabelVocabulary, encoder: MiniLMEncoder) throws -> RunEnsemble {
        try withLiveComposition(layout) { composition in
            try RunEnsemble(layout: layout, composition: composition, labels: labels, encoder: encoder)
        }
    }

    /// Runs `body` on the run's served composition (with a live shard) under the run lock, after
    /// recovery. A user who may only read the run (no write access to it or its lock) reads it
    /// under the lock held shared, without recovery, and is refused while the run has
    /// unfinished work: its served models might still hold an accepted deletion.
    static func withLiveComposition<T>(_ layout: RunLayout, _ body: (ServedComposition) throws -> T) throws -> T {
        let guarded = guarded(layout.directory)
        func live() throws -> ServedComposition {
            guard FileManager.default.fileExists(atPath: layout.servedURL.path) else {
                throw RunStateError.nothingServed(run: layout.directory.path)
            }
            let composition = try ServedComposition.load(from: layout.servedURL)
            guard !composition.liveShards.isEmpty else { throw RunStateError.everyShardDead(run: layout.directory.path) }
            return composition
        }
        guard guarded.mayWrite else {
            return try guarded.withInspectedRun { inspection in
                guard inspection.unfinished.isEmpty else {
                    throw RunStateError.unfinishedReadOnly(run: layout.directory.path, unfinished: inspection.unfinished)
                }
                return try body(try live())
            }
        }
        return try guarded.withRecoveredRun { recovery in
            RunAccess.report(recovery)
            return try body(try live())
        }
    }
}

extension RunAccess {
    /// The served ensemble of a decoder run on `model` (its base, loaded by the caller), read
    /// under the run lock after recovery.
    public static func servedDecoderEnsemble(_ layout: RunLayout, model: LlamaModel) throws -> DecoderEnsemble {
        try withLiveComposition(layout) { composition in
            try DecoderEnsemble(layout: layout, composition: composition, model: model)
        }
    }

    /// A decoder run's served ensemble on its base model, in `precision` (nil: the run's own).
    public static func decoderRun(_ directory: String, precision: Precision?) throws
        -> (ensemble: DecoderEnsemble, tokenizer: BPETokenizer) {
        let layout = RunLayout(directory: URL(fileURLWithPath: directory))
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let (model, tokenizer) = try settings.loadBaseDecoder(run: layout.directory, precision: precision)
        return (try servedDecoderEnsemble(layout, model: model), tokenizer)
    }
}

/// A run that has no model to answer with. Not a usage error: the command refuses (exit 1)
/// and says which command makes the run answer again.
public enum RunStateError: Error, CustomStringConvertible, Equatable {
    /// The run has no served.json: it was never trained.
    case nothingServed(run: String)
    /// Deletions reached the first slice of every sequence of every shard.
    case everyShardDead(run: String)
    /// A user who may only read the run found work recovery must complete first.
    case unfinishedReadOnly(run: String, unfinished: [String])

    public var description: String {
        switch self {
        case let .nothingServed(run):
            return "\(run) serves nothing yet (no served.json); train it with `lethe train --run \(run)`."
        case let .unfinishedReadOnly(run, unfinished):
            return "this user may not write \(run), and it has unfinished work (" + unfinished.joined(separator: "; ")
                + "): its served models might still include an accepted deletion, so they do not answer. Its owner "
                + "completes the work with `lethe forget --run \(run) --resume`."
        case let .everyShardDead(run):
            return "every shard of \(run) is dead (deletions reached the first slice of every sequence), so there is "
                + "no model to answer with; run `lethe retrain --run \(run)` to rebuild the slices without the "
                + "deleted examples."
        }
    }
}
