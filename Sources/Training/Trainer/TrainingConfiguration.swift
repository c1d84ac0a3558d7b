import Kernels

/// Hyperparameters of one training run, recorded with every checkpoint.
public struct TrainingConfiguration: Sendable, Codable, Equatable {
    public var epochCount: Int
    public var batchSize: Int
    /// Peak learning rate of the warmup + linear decay schedule.
    public var learningRate: Float
    /// Fraction of all steps spent warming up.
    public var warmupFraction: Float
    public var weightDecay: Float
    /// Global gradient-norm clip; nil = none.
    public var maxGradientNorm: Float?
    public var seed: UInt64
    /// Threads of our kernels and of OpenBLAS; results are bit-identical for equal counts.
    public var threadCount: Int
    /// Batches per length-sorting window (1 = no bucketing).
    public var bucketWindow: Int
    /// Cache the frozen layers below the lowest adapter.
    public var usesActivationCache: Bool
    /// Upper bound of the activation cache, bytes.
    public var cacheByteBudget: Int
    /// 2 GiB.
    public static let defaultCacheByteBudget = 2 << 30

    public init(epochCount: Int = 3, batchSize: Int = 32, learningRate: Float = 1e-3, warmupFraction: Float = 0.06,
                weightDecay: Float = 0.01, maxGradientNorm: Float? = 1, seed: UInt64 = 0, threadCount: Int = 1,
                bucketWindow: Int = 16, usesActivationCache: Bool = true, cacheByteBudget: Int = defaultCacheByteBudget) {
        self.epochCount = epochCount; self.batchSize = batchSize; self.learningRate = learningRate
        self.warmupFraction = warmupFraction; self.weightDecay = weightDecay; self.maxGradientNorm = maxGradientNorm
        self.seed = seed; self.threadCount = threadCount; self.bucketWindow = bucketWindow
        self.usesActivationCache = usesActivationCache; self.cacheByteBudget = cacheByteBudget
    }

    /// Self, or an error naming the first bad field.
    public func validated() throws -> TrainingConfiguration {
        func bad(_ field: String, _ value: Any, _ reason: String) -> TrainingError {
            .invalidConfiguration(field: field, value: "\(value)", reason: reason)
        }
        guard epochCount >= 1 else { throw bad("epochs", epochCount, "must be at least 1") }
        guard batchSize >= 1 else { throw bad("batch-size", batchSize, "must be at least 1") }
        guard learningRate > 0, learningRate.isFinite else { throw bad("lr", learningRate, "must be positive") }
        guard (0...1).contains(warmupFraction) else { throw bad("warmup", warmupFraction, "must be in [0, 1]") }
        guard weightDecay >= 0 else { throw bad("weight-decay", weightDecay, "must not be negative") }
        guard threadCount >= 1 else { throw bad("threads", threadCount, "must be at least 1") }
        guard bucketWindow >= 1 else { throw bad("bucket-window", bucketWindow, "must be at least 1") }
        guard cacheByteBudget >= 0 else { throw bad("cache-budget", cacheByteBudget, "must not be negative") }
        return self
    }

    var optimizer: AdamW.Configuration {
        AdamW.Configuration(learningRate: learningRate, weightDecay: weightDecay, maxGradientNorm: maxGradientNorm)
    }
}
