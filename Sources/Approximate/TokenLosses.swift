import Foundation
import Kernels

/// The two loss terms of the unlearning objectives, on logits rows, with their gradients.
///
///     NLL:  ℓ = (1/M)·Σ_m (logsumexp(z_m) − z_m[y_m]);      dz_m += w·(softmax(z_m) − onehot(y_m))/M
///     KL:   K = (1/M)·Σ_m Σ_v p0_mv·(log p0_mv − log p_mv);  dz_m += w·(p_m − p0_m)/M
/// Shape glossary: M rows, V vocabulary; z, z0 [M, V] (current and frozen θ0 logits); w the
/// term's weight (−1 for gradient ascent, λ for a retain term). The KL kernel is ours (the
/// kernels module has cross-entropy only); it uses log-softmax in Double for the value.
public enum TokenLosses {
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
