import Foundation
import Kernels
import Models

/// The served models of a decoder run and their ensemble: the mean over live shards of their
/// next-token probability distributions.
///
/// Why probabilities, not logits (the classifier's rule): a decoder's logits are only defined
/// up to a constant per position, and the mean of log-probabilities is a geometric mean that
/// lets one shard's near-zero probability veto a token the others find likely — it rewards
/// agreement rather than averaging beliefs. The arithmetic mean of the distributions is itself
/// a distribution (a mixture of the shard models), its perplexity is never worse than the
/// shards' mean perplexity (log is concave), and a deleted example's influence leaves with its
/// shard's stages exactly as it does for the classifier.
public final class DecoderEnsemble {
    public let settings: TrainingSettings
    public let composition: ServedComposition
    public let model: LlamaModel
    /// (shard, adapter) of every live shard: the adapters of its served stages, loaded together.
    public let members: [(shard: Int, adapter: LlamaAdapter)]

    /// Loads every live shard's served stages of `composition` onto `model` (the run's base).
    /// The caller holds the run lock, as for `RunEnsemble`.
    public init(layout: RunLayout, composition: ServedComposition, model: LlamaModel,
                loadStage: (URL) throws -> StageCheckpoint = StageCheckpoint.load(from:)) throws {
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        guard settings.modelKind == .decoder else {
            throw TrainingError.wrongModelKind(run: layout.directory.path, expected: .decoder, found: settings.modelKind)
        }
        self.settings = settings; self.composition = composition; self.model = model
        try composition.requireStrategy(of: settings, layout: layout)
        members = try composition.liveShards.map { entry in
            let stages = composition.strategy == .s3t ? Array(1 ... entry.prefixLength) : [entry.prefixLength]
            let tensors = try stages.flatMap { stage in
                try loadStage(layout.stageURL(shard: entry.shard, stage: stage, key: entry.stageKeys[stage - 1])).adapters
            }
            return (entry.shard, try DecoderStageTrainer.adapter(for: model, settings: settings, tensors: tensors, seed: 0))
        }
    }

    /// The ensemble's log-probability of every next token of each sequence, the argmax check, and
    /// the mean and standard deviation of log p under the mixture (for Min-K%++); empty scores
    /// when no shard is live. Sequences run `batchSize` at a time, right-padded with `padID`
    /// (causality keeps padding out of every score); with several threads, whole batches run at
    /// once, one per thread, so the scores do not depend on the thread count.
    public func scores(of sequences: [[Int]], batchSize: Int = 8, padID: Int = 0, threads: Int = 1) throws -> [TokenScores] {
        guard !members.isEmpty else {
            return sequences.map { _ in TokenScores(logProbabilities: [], correct: []) }
        }
        return try TokenScores.inBatches(sequences, batchSize: batchSize, threads: threads) { batch, threads in
            try scores(ofBatch: batch, padID: padID, threads: threads)
        }
    }

    /// The scores of one right-padded batch under the mixture.
    func scores(ofBatch group: [[Int]], padID: Int, threads: Int) throws -> [TokenScores] {
        let (ids, t, rows) = TokenScores.paddedBatch(group, padID: padID)
        guard t >= 2 else { return group.map { _ in TokenScores(logProbabilities: [], correct: []) } }
        let mixture = try self.mixture(ids: ids, batch: group.count, tokens: t, rows: rows, threads: threads)
        let v = model.configuration.vocabularySize
        var m = 0
        return group.map { s in
            var lp: [Float] = [], ok: [Bool] = [], mean: [Float] = [], deviation: [Float] = []
            for i in 0 ..< max(s.count - 1, 0) {
                let row = mixture[m * v ..< (m + 1) * v]
                m += 1
                let best = row.indices.max { row[$0] < row[$1] }! - row.startIndex
                lp.append(Float(log(max(row[row.startIndex + s[i + 1]], Double.leastNonzeroMagnitude))))
                ok.append(best == s[i + 1])
                var first = 0.0, second = 0.0
                for p in row where p > 0 { let l = log(p); first += p * l; second += p * l * l }
                mean.append(Float(first))
                deviation.append(Float(max(second - first * first, 0).squareRoot()))
            }
            return TokenScores(logProbabilities: lp, correct: ok, expectedLogProbabilities: mean,
                               logProbabilityDeviations: deviation)
        }
    }

    /// The mixture distribution at each of `rows` of `sequence` ([rows.count × V], in Double).
    public func nextTokenDistributions(_ sequence: [Int], rows: [Int], threads: Int = 1) throws -> [Double] {
        try mixture(ids: sequence.map(Int32.init), batch: 1, tokens: sequence.count, rows: rows, threads: threads)
    }

    /// The layers below every live shard's lowest adapted layer: the frozen base, the same for all.
    public var sharedLayers: Int {
        members.map { $0.adapter.lowestLayer ?? model.configuration.layerCount }.min() ?? 0
    }

    /// The mixture distribution at `rows` of the right-padded batch `ids` [B·T] ([rows.count × V]):
    /// the shared base layers run once for the batch, then each shard's layers above them.
    func mixture(ids: [Int32], batch b: Int, tokens t: Int, rows: [Int], threads: Int) throws -> [Double] {
        let v = model.configuration.vocabularySize, first = sharedLayers
        let shared = model.baseHidden(try model.embed(ids: ids, batch: b, tokens: t), layers: 0 ..< first,
                                      batch: b, tokens: t, threads: threads)
        var sum = [Double](repeating: 0, count: rows.count * v)
        var weights = [Double](repeating: 0, count: v)
        for member in members {
            let pass = model.forward(hidden: shared, fromLayer: first, batch: b, tokens: t, logitRows: rows,
                                         adapter: member.adapter, threads: threads)
            for r in 0 ..< rows.count {
                let z = pass.logits.pointer + r * v
                var mx = z[0]
                for j in 1 ..< v { mx = max(mx, z[j]) }
                var total = 0.0
                for j in 0 ..< v { weights[j] = exp(Double(z[j] - mx)); total += weights[j] }
                for j in 0 ..< v { sum[r * v + j] += weights[j] / total }
            }
        }
        let k = Double(members.count)
        for i in sum.indices { sum[i] /= k }
        return sum
    }

    /// Greedy continuation of `prompt` under the mixture: `maxTokens` tokens, stopping after `stop`.
    public func greedy(prompt: [Int], maxTokens: Int, stop: Int? = nil, threads: Int = 1) throws -> [Int] {
        guard !members.isEmpty, !prompt.isEmpty else { return [] }
        var sequence = prompt, out: [Int] = []
        for _ in 0 ..< maxTokens {
            let p = try nextTokenDistributions(sequence, rows: [sequence.count - 1], threads: threads)
            // A NaN would make the argmax meaningless (token 0): an error, as for one model.
            if let bad = p.first(where: { !$0.isFinite }) {
                throw ModelsError.nonFiniteLogits(position: sequence.count - 1, value: Float(bad))
            }
            let next = p.indices.max { p[$0] < p[$1] }!
            out.append(next)
            if next == stop { break }
            sequence.append(next)
        }
        return out
    }
}
