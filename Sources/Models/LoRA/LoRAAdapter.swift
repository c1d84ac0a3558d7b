import Kernels
import Support

/// The trainable low-rank pair of one linear layer, with its gradients.
///
/// PEFT orientation and initialisation: `loraA` [r, in] ~ U(−1/√in, 1/√in) (PEFT's
/// kaiming_uniform with a = √5), `loraB` [out, r] = 0, so a fresh adapter is the identity
/// (it adds nothing). `gradA`/`gradB` are accumulated by backward; callers zero them.
public final class LoRAAdapter: @unchecked Sendable {
    public let inFeatures: Int
    public let outFeatures: Int
    public let rank: Int
    public let loraA: Tensor
    public let loraB: Tensor
    public let gradA: Tensor
    public let gradB: Tensor

    /// A fresh adapter; A drawn from a SplitMix64 stream of `seed`.
    public init(inFeatures: Int, outFeatures: Int, rank: Int, seed: UInt64) {
        self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.rank = rank
        loraA = Tensor(shape: [rank, inFeatures]); loraB = Tensor(shape: [outFeatures, rank])
        gradA = Tensor(shape: [rank, inFeatures]); gradB = Tensor(shape: [outFeatures, rank])
        let bound = 1 / Float(inFeatures).squareRoot()
        var generator = SplitMix64(seed: seed)
        for i in 0..<loraA.count {
            let u = Float(generator.next() >> 40) / 16_777_216.0
            loraA[i] = (2 * u - 1) * bound
        }
    }

    /// The kernels' view of this adapter's sizes.
    public var shape: LoRALinear.Shape { .init(inFeatures: inFeatures, outFeatures: outFeatures, rank: rank) }

    /// Zeroes both gradients.
    public func zeroGradients() { gradA.zero(); gradB.zero() }

    /// An adapter that shares this one's weights (the same tensors, not copies) and has
    /// gradients of its own: a thread group accumulates into it while another group
    /// accumulates into this adapter, and `addGradients(of:)` then sums them.
    public func gradientReplica() -> LoRAAdapter { LoRAAdapter(sharingWeightsOf: self) }

    /// Adds the gradients of `replica` (made by `gradientReplica()`) into this adapter's.
    public func addGradients(of replica: LoRAAdapter) {
        precondition(replica.loraA === loraA && replica.loraB === loraB, "not a gradient replica of this adapter")
        gradA.add(replica.gradA)
        gradB.add(replica.gradB)
    }

    private init(sharingWeightsOf other: LoRAAdapter) {
        inFeatures = other.inFeatures; outFeatures = other.outFeatures; rank = other.rank
        loraA = other.loraA; loraB = other.loraB
        gradA = Tensor(shape: other.gradA.shape); gradB = Tensor(shape: other.gradB.shape)
    }
}
