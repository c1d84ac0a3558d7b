import ArgumentParser
import Forgetting
import Foundation
import Models
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

    /// Tells the user what recovery did, on stderr (stdout may be JSON).
    public static func report(_ recovery: RunGuard.Recovery) {
        guard recovery.didSomething else { return }
        var parts: [String] = []
        if recovery.completedRequestCount > 0 {
            parts.append("completed \(recovery.completedRequestCount) deletion request(s) an interrupted forget had accepted")
        }
        if recovery.republished { parts.append("republished the served composition to include every accepted deletion") }
        FileHandle.standardError.write(Data(("recovery: " + parts.joined(separator: "; ") + "\n").utf8))
    }
}

extension RunAccess {
    /// The run's served ensemble, loaded under the run lock after recovery, so it includes
    /// every deletion accepted before this call. Refuses a run with no composition or no live
    /// shard: there is no model to answer with.
    public static func servedEnsemble(_ layout: RunLayout, labels: LabelVocabulary, encoder: MiniLMEncoder) throws -> RunEnsemble {
        let guarded = guarded(layout.directory)
        return try guarded.withRecoveredRun { recovery in
            RunAccess.report(recovery)
            guard FileManager.default.fileExists(atPath: layout.servedURL.path) else {
                throw ValidationError("\(layout.servedURL.path) is missing: the run serves nothing yet; train it with "
                                      + "`lethe train --run \(layout.directory.path)`.")
            }
            let composition = try ServedComposition.load(from: layout.servedURL)
            guard !composition.liveShards.isEmpty else {
                throw ValidationError("every shard of \(layout.directory.path) is dead (deletions reached the first "
                                      + "slice of every sequence); run `lethe retrain --run \(layout.directory.path)`.")
            }
            return try RunEnsemble(layout: layout, composition: composition, labels: labels, encoder: encoder)
        }
    }
}
