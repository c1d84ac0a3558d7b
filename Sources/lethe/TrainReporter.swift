import CommandSupport
import Foundation
import Training

/// Turns `S3TRunner` events into output: a progress bar on a terminal, a line per stage
/// otherwise, or one JSON object per stage with `--json`.
final class TrainReporter {
    let json: Bool
    let terminal: Bool
    /// Also a JSON `progress` line at most every half second (for `lethe train --jobs`).
    let progressEvents: Bool
    let epochs: Int
    let clock: () -> Double
    private var stageCount = 0, stagesDone = 0, stagesSkipped = 0, stagesWithheld = 0, examplesTrained = 0
    private var stageStart = 0.0, lastDraw = -1.0, lastEvent = -1.0
    private var trainedSeconds = 0.0

    init(json: Bool, terminal: Bool, epochs: Int, progressEvents: Bool = false, clock: @escaping () -> Double) {
        self.json = json; self.terminal = terminal; self.epochs = epochs; self.progressEvents = progressEvents
        self.clock = clock
    }

    func handle(_ event: S3TRunner.Event) {
        switch event {
        case let .shardStarted(shard, count, complete):
            stageCount += count
            if !json { say("shard \(shard): \(count) distinct stages, \(complete) already complete") }
        case let .stageSkipped(lineage, _):
            stagesDone += 1; stagesSkipped += 1
            if json {
                emit(["event": "skipped", "shard": lineage.shard, "sequences": lineage.sequences, "stage": lineage.stage,
                      "stage_key": lineage.key.hex])
            }
        case .stageStarted:
            stageStart = clock()
        case let .stageProgress(lineage, p):
            if progressEvents, clock() - lastEvent >= 0.5 || p.step == p.stepCount {
                lastEvent = clock()
                emit(["event": "progress", "shard": lineage.shard, "stage": lineage.stage, "step": p.step,
                      "steps": p.stepCount, "epoch": p.epoch, "epochs": p.epochCount, "loss": Double(p.loss)])
            }
            guard terminal else { return }
            let now = clock()
            guard now - lastDraw >= 0.2 || p.step == p.stepCount else { return }
            lastDraw = now
            let elapsed = now - stageStart
            let rate = Double(p.examplesDone) / max(elapsed, 1e-9)
            let left = elapsed / Double(p.step) * Double(p.stepCount - p.step)
            let width = 24, filled = width * p.step / max(p.stepCount, 1)
            let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
            let line = String(format: "\r shard %d seq %@ stage %d  %@ epoch %d/%d  loss %.4f  %.0f ex/s  %.0f s left ",
                              lineage.shard, lineage.sequences.map(String.init).joined(separator: ","), lineage.stage,
                              bar, p.epoch, p.epochCount, p.loss, rate, left)
            StandardOutput.write(line)
        case let .stageFinished(lineage, url, checkpoint):
            stagesDone += 1
            let r = checkpoint.record
            examplesTrained += r.examplesSeen
            trainedSeconds += r.wallTimeSeconds
            if json {
                emit(["event": "trained", "shard": lineage.shard, "sequences": lineage.sequences, "stage": lineage.stage,
                      "prefix_slices": lineage.prefixSlices, "block_layers": lineage.blockLayers,
                      "stage_key": lineage.key.hex, "training_loss": r.trainingLoss, "examples_seen": r.examplesSeen,
                      "wall_time_seconds": r.wallTimeSeconds, "tensors_sha256": checkpoint.tensorsSHA256,
                      "file": url.path])
            } else {
                if terminal { StandardOutput.write("\r\u{1B}[K") }
                say(String(format: "shard %d seq %@ stage %d (slices %@, layers %@): loss %.4f, %d examples, %.1f s, %.0f ex/s  [%d/%d]",
                             lineage.shard, lineage.sequences.map(String.init).joined(separator: ","), lineage.stage,
                             lineage.prefixSlices.map(String.init).joined(separator: " "),
                             lineage.blockLayers.map(String.init).joined(separator: ","), r.trainingLoss,
                             r.examplesSeen, r.wallTimeSeconds, Double(r.examplesSeen) / max(r.wallTimeSeconds, 1e-9),
                             stagesDone, stageCount))
            }
        case let .stageWithheld(lineage):
            stagesDone += 1; stagesWithheld += 1
            if json {
                emit(["event": "withheld", "shard": lineage.shard, "sequences": lineage.sequences, "stage": lineage.stage,
                      "stage_key": lineage.key.hex])
            } else {
                if terminal { StandardOutput.write("\r\u{1B}[K") }
                say("shard \(lineage.shard) seq \(lineage.sequences.map(String.init).joined(separator: ",")) stage "
                    + "\(lineage.stage): withheld, its slices hold a deleted example")
            }
        case let .shardPublished(entry):
            if json {
                emit(["event": "served", "shard": entry.shard, "sequence": entry.sequence ?? -1,
                      "prefix_length": entry.prefixLength])
            } else {
                say("shard \(entry.shard): serving sequence \(entry.sequence.map(String.init) ?? "none"), "
                      + "prefix \(entry.prefixLength)")
            }
        }
    }

    func finish() {
        let trained = stagesDone - stagesSkipped - stagesWithheld
        if json {
            emit(["event": "done", "stages_trained": trained, "stages_skipped": stagesSkipped,
                  "stages_withheld": stagesWithheld,
                  "examples_seen": examplesTrained, "training_seconds": trainedSeconds])
        } else {
            say(String(format: "done: %d stages trained, %d already complete, %d examples in %.1f s of training",
                         trained, stagesSkipped, examplesTrained, trainedSeconds))
        }
    }

    private func emit(_ object: [String: Any]) { writeJSONLine(object) }
    private func say(_ line: String) { writeLine(line) }
}
