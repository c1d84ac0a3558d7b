import Foundation
import Kernels
import Models
import Planning

/// The served models of a run and their ensemble: argmax of the mean of the live shards'
/// logits (docs/DESIGN.md §1, "Serving").
public final class RunEnsemble {
    public let layout: RunLayout
    public let settings: TrainingSettings
    public let composition: ServedComposition
    public let labels: LabelVocabulary
    /// (shard, model) of every live shard, by shard.
    public let members: [(shard: Int, model: LoRAClassifier)]

    /// Loads train.json and every live shard's stage files of `composition`. The caller read
    /// the composition under the run lock after recovery (`RunGuard.withServedComposition`)
    /// and builds the ensemble before releasing it, so the stages it loads are those the
    /// composition names: no forget can erase them in between.
    ///
    /// `loadStage` reads one stage file (a server passes a cache: a new composition after a
    /// deletion mostly reuses the stages of the one it replaces).
    public init(layout: RunLayout, composition: ServedComposition, labels: LabelVocabulary,
                encoder: MiniLMEncoder,
                loadStage: (URL) throws -> StageCheckpoint = StageCheckpoint.load(from:)) throws {
        self.layout = layout; self.labels = labels; self.composition = composition
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        self.settings = settings
        try composition.requireStrategy(of: settings, layout: layout)
        members = try composition.liveShards.map { entry in
            (entry.shard, try ShardModel.served(entry, strategy: composition.strategy, layout: layout,
                                                encoder: encoder, settings: settings, classCount: labels.count,
                                                loadStage: loadStage))
        }
    }

    /// The model input of an example under the run's text field.
    public func input(of example: Example) -> String {
        (TextField(rawValue: settings.textField) ?? .text).input(of: example)
    }

    /// Per live shard, the logits of every text ([shard][text][class]), each shard running its
    /// own whole pass: the reference `shardLogits(_:threads:)` keeps every bit of.
    public func separateShardLogits(_ texts: [String]) -> [[[Float]]] {
        members.map { member in member.model.predict(texts, threads: settings.threadCount).map(\.logits) }
    }

    /// Per live shard, the logits of every text ([shard][text][class]), equal bit for bit to
    /// `separateShardLogits(texts)`, but the frozen layers below the lowest served adapter run
    /// once per batch for all shards instead of once per shard.
    public func shardLogits(_ texts: [String], threads: Int) throws -> [[[Float]]] {
        guard let first = members.first?.model else { return [] }
        let shared = members.compactMap { $0.model.lowestAdapterLayer }.min() ?? first.layerCount
        let ids = texts.map(first.encode)
        let k = labels.count
        var logits = Array(repeating: Array(repeating: [Float](), count: texts.count), count: members.count)
        for chunk in LoRAClassifier.predictionBatches(ids, batchSize: LoRAClassifier.predictionBatchSize) {
            let batch = TokenBatch(chunk.map { ids[$0] }, padID: first.encoder.tokenizer.padID)
            let below = first.hidden(batch, below: shared, threads: threads)
            // The shards' blocks run side by side, one shard per thread with OpenBLAS on one
            // thread: small batches lose most of their time to BLAS's own thread hand-offs.
            // Every kernel gives the same bits for any thread count, so this changes no bit.
            let upper = { (m: Int) -> [Float] in
                self.members[m].model.logits(fromHidden: below, atLayer: shared, batch: batch, threads: 1).values
            }
            let perMember = try Parallel.mapSingleThreaded(count: members.count, threads: threads, upper)
            for (m, values) in perMember.enumerated() {
                for (row, index) in chunk.enumerated() { logits[m][index] = Array(values[(row * k)..<(row * k + k)]) }
            }
        }
        return logits
    }

    /// The ensemble's logits ([text][class]): the mean over live shards of `shardLogits(texts,
    /// threads:)`. Empty rows when no shard is live.
    public func ensembleLogits(_ texts: [String], threads: Int) throws -> [[Float]] {
        Self.meanLogits(try shardLogits(texts, threads: threads), textCount: texts.count, classCount: labels.count)
    }

    /// Mean over shards of per-shard logits ([text][class]); empty rows when no shard is live.
    public static func meanLogits(_ perShard: [[[Float]]], textCount: Int, classCount: Int) -> [[Float]] {
        guard !perShard.isEmpty else { return Array(repeating: [], count: textCount) }
        return (0..<textCount).map { t in
            (0..<classCount).map { k in perShard.reduce(0) { $0 + $1[t][k] } / Float(perShard.count) }
        }
    }
}

/// Accuracy and macro-F1 of predicted class indices.
public enum ClassificationMetrics {
    public static func argmax(_ row: [Float]) -> Int { row.indices.max { row[$0] < row[$1] } ?? 0 }

    public static func accuracy(predicted: [Int], truth: [Int]) -> Double {
        guard !truth.isEmpty else { return 0 }
        return Double(zip(predicted, truth).filter { $0 == $1 }.count) / Double(truth.count)
    }

    /// Unweighted mean over classes of F1 = 2·TP / (2·TP + FP + FN); classes absent from both
    /// the truth and the predictions are left out.
    public static func macroF1(predicted: [Int], truth: [Int], classCount: Int) -> Double {
        var scores: [Double] = []
        for k in 0..<classCount {
            var tp = 0, fp = 0, fn = 0
            for (p, t) in zip(predicted, truth) {
                if p == k && t == k { tp += 1 } else if p == k { fp += 1 } else if t == k { fn += 1 }
            }
            if tp + fp + fn > 0 { scores.append(Double(2 * tp) / Double(2 * tp + fp + fn)) }
        }
        return scores.isEmpty ? 0 : scores.reduce(0, +) / Double(scores.count)
    }

    /// Softmax of a logit row (probabilities for `lethe predict`).
    public static func softmax(_ row: [Float]) -> [Float] {
        guard let top = row.max() else { return [] }
        let e = row.map { Float(Foundation.exp(Double($0 - top))) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }
}
