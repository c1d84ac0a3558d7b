import Foundation
import Models
import Planning

/// The served models of a run and their ensemble: argmax of the mean of the live shards'
/// logits (DESIGN.md §1, "Serving").
public final class RunEnsemble {
    public let layout: RunLayout
    public let settings: TrainingSettings
    public let composition: ServedComposition
    public let labels: LabelVocabulary
    /// (shard, model) of every live shard, by shard.
    public let members: [(shard: Int, model: LoRAClassifier)]

    /// Loads train.json, served.json and every live shard's stage files.
    public init(layout: RunLayout, labels: LabelVocabulary, encoder: MiniLMEncoder) throws {
        guard FileManager.default.fileExists(atPath: layout.servedURL.path) else {
            throw TrainingError.fileInvalid(file: layout.servedURL.path,
                                            reason: "no served composition; run `lethe train --run` first")
        }
        self.layout = layout; self.labels = labels
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        self.settings = settings
        // A forget or retrain may publish a new composition and erase stages of the old one
        // between reading served.json and opening its stage files: when loading fails and the
        // composition changed meanwhile, load the new one (a few attempts).
        var attempt = 0
        while true {
            let composition = try ServedComposition.load(from: layout.servedURL)
            do {
                members = try composition.liveShards.map { entry in
                    (entry.shard, try ShardModel.served(entry, strategy: composition.strategy, layout: layout,
                                                        encoder: encoder, settings: settings, classCount: labels.count))
                }
                self.composition = composition
                return
            } catch {
                attempt += 1
                guard attempt < 5, (try? ServedComposition.load(from: layout.servedURL)) != composition else { throw error }
            }
        }
    }

    /// The model input of an example under the run's text field.
    public func input(of example: Example) -> String {
        (TextField(rawValue: settings.textField) ?? .text).input(of: example)
    }

    /// Per live shard, the logits of every text ([shard][text][class]).
    public func shardLogits(_ texts: [String]) -> [[[Float]]] {
        members.map { member in member.model.predict(texts, threads: settings.threadCount).map(\.logits) }
    }

    /// Mean over shards of `shardLogits` ([text][class]); empty rows when no shard is live.
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
