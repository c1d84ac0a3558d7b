import Kernels
import Support

/// A linear classification head on the pooled sentence representation, forward and backward.
///
///     z = p / ‖p‖₂  (when `normalizesInput`, as sentence-transformers embeddings are) or z = p
///     logits = z·Wᵀ + b
///
/// Shape glossary: B sequences, C hidden, K classes; p, z [B, C], W [K, C], b [K], logits [B, K].
/// Backward accumulates dW, db and returns dp; for the normalised input
/// dp = (dz − z·(z·dz)) / ‖p‖. Initialised like `torch.nn.Linear`: W, b ~ U(±1/√C).
public final class ClassificationHead: @unchecked Sendable {
    public let classCount: Int
    public let inputSize: Int
    public let normalizesInput: Bool
    public let weight: Tensor, bias: Tensor
    public let gradWeight: Tensor, gradBias: Tensor

    public init(classCount: Int, inputSize: Int, normalizesInput: Bool, seed: UInt64) {
        self.classCount = classCount; self.inputSize = inputSize; self.normalizesInput = normalizesInput
        weight = Tensor(shape: [classCount, inputSize]); bias = Tensor(shape: [classCount])
        gradWeight = Tensor(shape: weight.shape); gradBias = Tensor(shape: bias.shape)
        var g = SplitMix64(seed: seed)
        let bound = 1 / Float(inputSize).squareRoot()
        for i in 0..<weight.count { weight[i] = g.nextFloat(in: -bound, bound) }
        for i in 0..<bias.count { bias[i] = g.nextFloat(in: -bound, bound) }
    }

    /// Copies weights from another head of the same shape (stage snapshots).
    public func load(weight w: [Float], bias b: [Float]) {
        precondition(w.count == weight.count && b.count == bias.count, "head sizes differ")
        for i in 0..<w.count { weight[i] = w[i] }
        for i in 0..<b.count { bias[i] = b[i] }
    }

    /// What backward needs: the head input z and the norms ‖p‖.
    public struct Saved { let z: Tensor; let norms: [Float] }

    /// logits [B, K] of pooled [B, C].
    public func forward(_ pooled: Tensor, batch: Int) -> (logits: Tensor, saved: Saved) {
        let c = inputSize
        let z = Tensor(shape: [batch, c])
        var norms = [Float](repeating: 1, count: batch)
        for b in 0..<batch {
            let p = pooled.pointer + b * c, zr = z.data + b * c
            var scale: Float = 1
            if normalizesInput {
                var s: Float = 0
                for j in 0..<c { s += p[j] * p[j] }
                norms[b] = max(s.squareRoot(), 1e-12)
                scale = 1 / norms[b]
            }
            for j in 0..<c { zr[j] = p[j] * scale }
        }
        let logits = Tensor(shape: [batch, classCount])
        Linear.forward(z.pointer, weight: weight.pointer, bias: bias.pointer, into: logits.data, rows: batch,
                       inFeatures: c, outFeatures: classCount)
        return (logits, Saved(z: z, norms: norms))
    }

    /// Accumulates dW, db (when `trainable`) and returns dp [B, C].
    public func backward(dLogits: Tensor, saved: Saved, batch: Int, trainable: Bool) -> Tensor {
        let c = inputSize
        let dZ = Tensor(shape: [batch, c])
        Linear.backward(dY: dLogits.pointer, x: saved.z.pointer, weight: weight.pointer, dX: dZ.data,
                        dWeight: trainable ? gradWeight.data : nil, dBias: trainable ? gradBias.data : nil,
                        rows: batch, inFeatures: c, outFeatures: classCount)
        guard normalizesInput else { return dZ }
        let dP = Tensor(shape: [batch, c])
        for b in 0..<batch {
            let z = saved.z.pointer + b * c, dz = dZ.pointer + b * c, dp = dP.data + b * c
            var dot: Float = 0
            for j in 0..<c { dot += z[j] * dz[j] }
            let inv = 1 / saved.norms[b]
            for j in 0..<c { dp[j] = (dz[j] - z[j] * dot) * inv }
        }
        return dP
    }

    public func zeroGradients() { gradWeight.zero(); gradBias.zero() }
}
