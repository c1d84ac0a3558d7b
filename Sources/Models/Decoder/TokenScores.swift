import Foundation
import Kernels

/// Per-token log-probabilities of real text under a decoder: the raw material of perplexity,
/// next-token accuracy and Min-K% Prob.
public struct TokenScores: Sendable, Equatable {
    /// log p(x_t | x_<t) for t = 1 ..< count (the first token has no prediction).
    public var logProbabilities: [Float]
    /// Whether the argmax prediction at each of those positions equals x_t.
    public var correct: [Bool]
    /// μ_t = E_{z ~ p(·|x_<t)}[log p(z | x_<t)] at each of those positions (minus the entropy of
    /// the next-token distribution); empty when not computed.
    public var expectedLogProbabilities: [Float]
    /// σ_t, the standard deviation of log p(z | x_<t) under z ~ p(·|x_<t); empty when not computed.
    public var logProbabilityDeviations: [Float]

    public init(logProbabilities: [Float], correct: [Bool], expectedLogProbabilities: [Float] = [],
                logProbabilityDeviations: [Float] = []) {
        self.logProbabilities = logProbabilities; self.correct = correct
        self.expectedLogProbabilities = expectedLogProbabilities; self.logProbabilityDeviations = logProbabilityDeviations
    }

    /// Mean negative log-likelihood per predicted token.
    public var meanNLL: Double {
        logProbabilities.isEmpty ? 0 : -logProbabilities.reduce(0.0) { $0 + Double($1) } / Double(logProbabilities.count)
    }
}

extension TokenScores {
    /// `score` over `sequences` cut into batches of `batchSize`, in order. With several threads
    /// whole batches run at once, one per thread (OpenBLAS on one thread inside, `score` told 1
    /// thread); the batches are the same for any thread count, so are the scores, bit for bit.
    public static func inBatches(_ sequences: [[Int]], batchSize: Int, threads: Int,
                                 score: ([[Int]], _ threads: Int) throws -> [TokenScores]) throws -> [TokenScores] {
        let size = max(batchSize, 1)
        let batches = stride(from: 0, to: sequences.count, by: size).map {
            Array(sequences[$0 ..< min($0 + size, sequences.count)])
        }
        let workers = min(threads, batches.count)
        guard workers > 1 else { return try batches.flatMap { try score($0, threads) } }
        return try Parallel.mapSingleThreaded(count: batches.count, threads: workers) {
            try score(batches[$0], 1)
        }.flatMap { $0 }
    }

    /// `group` right-padded with `padID` to its longest sequence T ([B·T] ids), and the rows
    /// (b·T + t, t + 1 < length of sequence b) that predict a real next token, in order.
    public static func paddedBatch(_ group: [[Int]], padID: Int) -> (ids: [Int32], tokens: Int, rows: [Int]) {
        let t = group.map(\.count).max() ?? 0
        var ids: [Int32] = [], rows: [Int] = []
        for (b, s) in group.enumerated() {
            ids += s.map(Int32.init) + Array(repeating: Int32(padID), count: t - s.count)
            rows += (0 ..< max(s.count - 1, 0)).map { b * t + $0 }
        }
        return (ids, t, rows)
    }
}

extension LlamaModel {
    /// Scores each sequence (no padding enters any score); sequences are run `batchSize` at a
    /// time, right-padded to the longest in the batch with `padID`.
    ///
    /// With several threads, whole batches run at once, one per thread (OpenBLAS on one thread
    /// inside): the batches and their contents are the same for any thread count, so are the
    /// scores, bit for bit.
    public func scores(of sequences: [[Int]], adapter: LlamaAdapter? = nil, batchSize: Int = 8,
                       padID: Int = 0, threads: Int = 1) throws -> [TokenScores] {
        try TokenScores.inBatches(sequences, batchSize: batchSize, threads: threads) { batch, threads in
            try scores(ofBatch: batch, adapter: adapter, padID: padID, threads: threads)
        }
    }

    /// The scores of one right-padded batch.
    func scores(ofBatch group: [[Int]], adapter: LlamaAdapter?, padID: Int, threads: Int) throws -> [TokenScores] {
        let (ids, t, rows) = TokenScores.paddedBatch(group, padID: padID)
        guard t >= 2 else { return group.map { _ in TokenScores(logProbabilities: [], correct: []) } }
        let pass = try forward(ids: ids, batch: group.count, tokens: t, logitRows: rows, adapter: adapter,
                               threads: threads)
        let v = configuration.vocabularySize
        var m = 0
        return group.map { s in
            var lp: [Float] = [], ok: [Bool] = [], mean: [Float] = [], deviation: [Float] = []
            for i in 0 ..< max(s.count - 1, 0) {
                let z = pass.logits.pointer + m * v
                m += 1
                var best = 0, mx = z[0]
                for j in 1 ..< v where z[j] > mx { mx = z[j]; best = j }
                // With w_j = e^(z_j − max) and W = Σ w_j: log p_j = (z_j − max) − log W, so
                // μ = Σ w_j (z_j − max)/W − log W and Var = Σ w_j (z_j − max)²/W − (Σ w_j (z_j − max)/W)².
                var sum = 0.0, first = 0.0, second = 0.0
                for j in 0 ..< v {
                    let d = Double(z[j] - mx), w = exp(d)
                    sum += w; first += w * d; second += w * d * d
                }
                let logSum = log(sum), centre = first / sum
                lp.append(Float(Double(z[s[i + 1]] - mx) - logSum))
                ok.append(best == s[i + 1])
                mean.append(Float(centre - logSum))
                deviation.append(Float(max(second / sum - centre * centre, 0).squareRoot()))
            }
            return TokenScores(logProbabilities: lp, correct: ok, expectedLogProbabilities: mean,
                               logProbabilityDeviations: deviation)
        }
    }
}
