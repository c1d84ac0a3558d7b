/// Closed forms for the deletion rate δ (docs/DESIGN.md §1).
///
/// δ = expected number of uniform random deletion requests absorbed until every shard is dead.
/// A sequence dies when its first slice is hit, and a shard when all its sequences are dead, so
/// with B′ = min(B, L) distinct first slices per shard, δ is the coupon-collector time of the
/// m·B′ first-slice cells among m·L equally likely cells: δ = m·L·H_{m·B′}; SISA (B = 1) gives
/// m·L·H_m. Uniform requests hit every slice equally only when slices have equal sizes, which
/// random assignment guarantees up to one example.
public enum DeletionRateTheory {
    /// The n-th harmonic number H_n = Σ_{k=1..n} 1/k (H_0 = 0), summed smallest term first.
    public static func harmonic(_ n: Int) -> Double {
        precondition(n >= 0, "harmonic number of a negative index")
        var sum = 0.0
        for k in stride(from: n, through: 1, by: -1) { sum += 1 / Double(k) }
        return sum
    }

    /// δ of S3T with m shards, L slices and budget B: m·L·H_{m·min(B, L)}.
    public static func s3t(shardCount m: Int, sliceCount l: Int, budget b: Int) -> Double {
        Double(m * l) * harmonic(m * min(b, l))
    }

    /// δ of SISA (one sequence per shard) with m shards and L slices: m·L·H_m.
    public static func sisa(shardCount m: Int, sliceCount l: Int) -> Double {
        s3t(shardCount: m, sliceCount: l, budget: 1)
    }
}
