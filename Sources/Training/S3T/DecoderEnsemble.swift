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
    /// when no shard is live.
    public func scores(of sequences: [[Int]], threads: Int = 1) throws -> [TokenScores] {
        guard !members.isEmpty else {
            return sequences.map { _ in TokenScores(logProbabilities: [], correct: []) }
        }
        let v = model.configuration.vocabularySize
        return try sequences.map { s in
            guard s.count >= 2 else { return TokenScores(logProbabilities: [], correct: []) }
            let mixture = try nextTokenDistributions(s, rows: Array(0 ..< s.count - 1), threads: threads)
            var lp: [Float] = [], ok: [Bool] = [], mean: [Float] = [], deviation: [Float] = []
            for t in 0 ..< s.count - 1 {
                let row = mixture[t * v ..< (t + 1) * v]
                let best = row.indices.max { row[$0] < row[$1] }! - t * v
                lp.append(Float(log(max(row[t * v + s[t + 1]], Double.leastNonzeroMagnitude))))
                ok.append(best == s[t + 1])
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
        let v = model.configuration.vocabularySize
        var sum = [Double](repeating: 0, count: rows.count * v)
        var weights = [Double](repeating: 0, count: v)
        for member in members {
            let pass = try model.forward(ids: sequence.map(Int32.init), batch: 1, tokens: sequence.count, logitRows: rows,
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
        return sum.map { $0 / k }
    }

    /// Greedy continuation of `prompt` under the mixture: `maxTokens` tokens, stopping after `stop`.
    public func greedy(prompt: [Int], maxTokens: Int, stop: Int? = nil, threads: Int = 1) throws -> [Int] {
        guard !members.isEmpty, !prompt.isEmpty else { return [] }
        var sequence = prompt, out: [Int] = []
        for _ in 0 ..< maxTokens {
            let p = try nextTokenDistributions(sequence, rows: [sequence.count - 1], threads: threads)
            let next = p.indices.max { p[$0] < p[$1] }!
            out.append(next)
            if next == stop { break }
            sequence.append(next)
        }
        return out
    }
}
