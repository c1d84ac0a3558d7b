import Models
import Support

/// Batches of examples of similar length, in a seeded order that changes every epoch.
///
/// Why: padding a batch to its longest sequence wastes work on short ones. Each epoch the
/// example indices are shuffled, cut into windows of `batchSize × bucketWindow` examples, each
/// window is sorted by length (ties by index) and cut into batches, and the batches of the
/// epoch are shuffled again — so batches are near-uniform in length while their membership and
/// order stay random. Everything is a function of (seed, epoch): replaying gives the same batches.
public struct LengthBucketBatcher: Sendable {
    public let lengths: [Int]
    public let batchSize: Int
    /// Batches per sorting window; 1 means no bucketing (plain shuffled batches).
    public let bucketWindow: Int
    public let seed: UInt64

    public init(lengths: [Int], batchSize: Int, bucketWindow: Int = 16, seed: UInt64) {
        precondition(batchSize >= 1 && bucketWindow >= 1, "batch size and window must be positive")
        self.lengths = lengths
        self.batchSize = batchSize
        self.bucketWindow = bucketWindow
        self.seed = seed
    }

    /// Number of batches per epoch (the last one of each window may be smaller).
    public var batchCountPerEpoch: Int { batches(epoch: 0).count }

    /// The batches of `epoch` (0-based), each a list of example indices; every index exactly once.
    public func batches(epoch: Int) -> [[Int]] {
        // Mix the epoch into the seed so epochs are independent streams.
        var generator = SplitMix64(seed: seed &+ 0xD1B5_4A32_D192_ED03 &* UInt64(epoch + 1))
        var order = Array(lengths.indices)
        generator.shuffle(&order)
        var batches: [[Int]] = []
        let window = batchSize * bucketWindow
        var start = 0
        while start < order.count {
            let end = min(start + window, order.count)
            let sorted = order[start..<end].sorted { (lengths[$0], $0) < (lengths[$1], $1) }
            var b = 0
            while b < sorted.count {
                batches.append(Array(sorted[b..<min(b + batchSize, sorted.count)]))
                b += batchSize
            }
            start = end
        }
        generator.shuffle(&batches)
        return batches
    }
}
