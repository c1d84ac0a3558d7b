import Foundation
import Kernels

/// The loss terms of the unlearning objectives, on logits rows, with their gradients.
///
///     NLL:  ℓ = (1/M)·Σ_m (logsumexp(z_m) − z_m[y_m]);      dz_m += w·(softmax(z_m) − onehot(y_m))/M
///     KL:   K = (1/M)·Σ_m Σ_v p0_mv·(log p0_mv − log p_mv);  dz_m += w·(p_m − p0_m)/M
///     NPO and SimNPO: see `Preference`; per chunk i with S_i = Σ_{m ∈ i} NLL_m,
///           dz_m += w·(∂L_i/∂S_i)/N·(softmax(z_m) − onehot(y_m)) for the rows m of chunk i
/// Shape glossary: M rows, V vocabulary, N chunks; z, z0 [M, V] (current and frozen θ0 logits);
/// w the term's weight (−1 for gradient ascent, λ for a retain term). The KL kernel is ours (the
/// kernels module has cross-entropy only); it uses log-softmax in Double for the value.
public enum TokenLosses {
    /// The two preference-style forget losses, per chunk i of a batch of N chunks, averaged over
    /// the chunks. With log π(y_i) = −S_i (the chunk's summed next-token log-probability), |y_i|
    /// its predicted tokens and softplus(x) = log(1 + eˣ) = −log σ(−x):
    ///
    ///     NPO:     L_i = (2/β)·softplus(β·(log π_θ(y_i) − log π_θ0(y_i)))     ∂L_i/∂S_i = −2·σ(β·r_i)
    ///     SimNPO:  L_i = (2/β)·softplus(β·log π_θ(y_i)/|y_i| + γ)              ∂L_i/∂S_i = −2·σ(β·s_i + γ)/|y_i|
    ///
    /// (r_i the log-ratio, s_i the length-normalised log-probability.) Both equal (2/β)·log 2 for
    /// NPO at θ = θ0, and both push log π_θ(y_i) down with a weight that fades as the chunk is
    /// forgotten — gradient ascent whose step shrinks, so the model is not driven to collapse.
    public enum Preference: Sendable, Equatable {
        /// `reference[i]` = log π_θ0(y_i) of chunk i.
        case npo(beta: Float, reference: [Double])
        case simNPO(beta: Float, gamma: Float)

        /// The same loss on chunks `range` of the batch (NPO's references follow their chunks).
        func restricted(to range: Range<Int>) -> Preference {
            guard case let .npo(beta, reference) = self else { return self }
            return .npo(beta: beta, reference: Array(reference[range]))
        }

        /// (L_i, ∂L_i/∂S_i) of a chunk with summed NLL `s` over `count` predicted tokens.
        func term(chunk i: Int, summedNLL s: Double, count: Int) -> (Double, Double) {
            switch self {
            case let .npo(beta, reference):
                let b = Double(beta), r = -s - reference[i]
                return (2 / b * softplus(b * r), -2 * sigmoid(b * r))
            case let .simNPO(beta, gamma):
                guard count > 0 else { return (2 / Double(beta) * softplus(Double(gamma)), 0) }
                let b = Double(beta), x = b * (-s / Double(count)) + Double(gamma)
                return (2 / b * softplus(x), -2 * sigmoid(x) / Double(count))
            }
        }
    }

    /// log(1 + eˣ) without overflow.
    static func softplus(_ x: Double) -> Double { x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)) }
    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

    /// Mean of `loss` over the chunks whose prediction rows are consecutive in `logits`
    /// (`rowsPerChunk[i]` rows each, their true next tokens in `targets`); adds `weight`·dL/dz
    /// into `dLogits`.
    public static func preference(_ loss: Preference, logits: Tensor, targets: [Int32], rowsPerChunk: [Int],
                                  weight: Float, dLogits: Tensor?, threads: Int = 1) -> Float {
        let m = targets.count, n = rowsPerChunk.count, v = logits.count / max(m, 1)
        precondition(rowsPerChunk.reduce(0, +) == m && logits.count == m * v, "rows \(rowsPerChunk) for \(m) targets")
        guard n > 0 else { return 0 }
        let lse = Tensor(shape: [max(m, 1)])
        return targets.withUnsafeBufferPointer { y in
            if m > 0 {
                _ = CrossEntropy.forward(logits: logits.pointer, targets: y.baseAddress!, logSumExp: lse.data,
                                         rows: m, classes: v, threads: threads)
            }
            var total = 0.0, first = 0
            for (i, count) in rowsPerChunk.enumerated() {
                var s = 0.0
                for r in first ..< first + count {
                    s += Double(lse.data[r]) - Double(logits.data[r * v + Int(y[r])])
                }
                let (value, slope) = loss.term(chunk: i, summedNLL: s, count: count)
                total += value
                if let dLogits, count > 0 {
                    // backward adds (dLoss/count)·(softmax − onehot) to each of the chunk's rows.
                    CrossEntropy.backward(dLoss: weight * Float(slope / Double(n)) * Float(count),
                                          logits: logits.pointer + first * v, targets: y.baseAddress! + first,
                                          logSumExp: lse.pointer + first, dLogits: dLogits.data + first * v,
                                          rows: count, classes: v, threads: threads)
                }
                first += count
            }
            return Float(total / Double(n))
        }
    }

    /// Mean NLL of `targets` under `logits` [M, V]; adds `weight`·dℓ/dz into `dLogits`.
    public static func negativeLogLikelihood(logits: Tensor, targets: [Int32], weight: Float,
                                             dLogits: Tensor?, threads: Int = 1) -> Float {
        let m = targets.count, v = logits.count / max(m, 1)
        precondition(logits.count == m * v, "logits \(logits.count) for \(m) targets")
        guard m > 0 else { return 0 }
        let lse = Tensor(shape: [m])
        return targets.withUnsafeBufferPointer { y in
            let (loss, _) = CrossEntropy.forward(logits: logits.pointer, targets: y.baseAddress!, logSumExp: lse.data,
                                                 rows: m, classes: v, threads: threads)
            if let dLogits {
                CrossEntropy.backward(dLoss: weight, logits: logits.pointer, targets: y.baseAddress!,
                                      logSumExp: lse.pointer, dLogits: dLogits.data, rows: m, classes: v,
                                      threads: threads)
            }
            return loss
        }
    }

    /// Mean KL(p_θ0 ‖ p_θ) over the M rows; adds `weight`·dK/dz into `dLogits`.
    public static func klDivergence(reference: Tensor, logits: Tensor, rows m: Int, weight: Float,
                                    dLogits: Tensor?) -> Float {
        guard m > 0 else { return 0 }
        let v = logits.count / m
        var total = 0.0
        let k = weight / Float(m)
        for r in 0 ..< m {
            let z = logits.data + r * v, z0 = reference.data + r * v
            let (lse, lse0) = (logSumExp(z, v), logSumExp(z0, v))
            var row = 0.0
            for j in 0 ..< v {
                let logP0 = Double(z0[j]) - lse0, logP = Double(z[j]) - lse
                let p0 = exp(logP0)
                row += p0 * (logP0 - logP)
                if let dLogits { dLogits.data[r * v + j] += k * Float(exp(logP) - p0) }
            }
            total += row
        }
        return Float(total / Double(m))
    }

    static func logSumExp(_ z: UnsafePointer<Float>, _ v: Int) -> Double {
        var mx = z[0]
        for j in 1 ..< v { mx = max(mx, z[j]) }
        var s = 0.0
        for j in 0 ..< v { s += exp(Double(z[j] - mx)) }
        return Double(mx) + log(s)
    }

    /// Adversarial labels: for each row, the most likely token under θ0 other than the true
    /// next token `targets[m]` (rows already aligned so that row m predicts targets[m]).
    public static func adversarialLabels(referenceLogits: Tensor, targets: [Int32]) -> [Int32] {
        let m = targets.count, v = referenceLogits.count / max(m, 1)
        return (0 ..< m).map { r in
            let z = referenceLogits.data + r * v
            var best = -1
            for j in 0 ..< v where j != Int(targets[r]) && (best < 0 || z[j] > z[best]) { best = j }
            return Int32(best)
        }
    }
}
