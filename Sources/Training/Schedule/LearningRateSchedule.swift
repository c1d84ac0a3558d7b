/// Linear warmup then linear decay to zero (the schedule of BERT fine-tuning and PEFT examples).
///
///     lr(t) = peak · t / W                 for t < W        (t counts from 0)
///     lr(t) = peak · (S − t) / (S − W)     for W ≤ t < S
///
/// with W warmup steps and S total steps; `rate(at:)` gives the rate used by optimizer step t.
public struct LearningRateSchedule: Sendable, Equatable, Codable {
    public let peak: Float
    public let warmupStepCount: Int
    public let totalStepCount: Int

    /// `warmupStepCount` is clamped to `totalStepCount`.
    public init(peak: Float, warmupStepCount: Int, totalStepCount: Int) {
        precondition(peak >= 0 && warmupStepCount >= 0 && totalStepCount >= 1, "invalid schedule")
        self.peak = peak
        self.warmupStepCount = min(warmupStepCount, totalStepCount)
        self.totalStepCount = totalStepCount
    }

    /// The learning rate of step `step` (0-based). Warmup starts at peak/W, not 0, so no step is wasted.
    public func rate(at step: Int) -> Float {
        if step < warmupStepCount {
            return peak * Float(step + 1) / Float(warmupStepCount)
        }
        let remaining = totalStepCount - step
        let decaySteps = totalStepCount - warmupStepCount
        guard remaining > 0, decaySteps > 0 else { return 0 }
        return peak * Float(remaining) / Float(decaySteps)
    }
}
