import Testing
@testable import Training

@Suite struct ScheduleAndBatcherTests {
    @Test func warmupThenLinearDecay() {
        let s = LearningRateSchedule(peak: 1, warmupStepCount: 4, totalStepCount: 12)
        #expect((0..<4).map(s.rate(at:)) == [0.25, 0.5, 0.75, 1])
        #expect(s.rate(at: 4) == 1)
        #expect(s.rate(at: 8) == 0.5)
        #expect(s.rate(at: 11) == 0.125)
        #expect(s.rate(at: 12) == 0)
    }

    @Test func batchesCoverEveryExampleOnceAndAreSortedWithinWindows() {
        let lengths = (0..<103).map { ($0 * 37) % 23 + 3 }
        let batcher = LengthBucketBatcher(lengths: lengths, batchSize: 8, bucketWindow: 4, seed: 7)
        for epoch in 0..<3 {
            let batches = batcher.batches(epoch: epoch)
            #expect(batches.flatMap { $0 }.sorted() == Array(0..<103))
            #expect(batches.allSatisfy { $0.count <= 8 })
            // Within a batch lengths are non-decreasing (they come from one sorted window).
            #expect(batches.allSatisfy { b in zip(b, b.dropFirst()).allSatisfy { lengths[$0] <= lengths[$1] } })
        }
        #expect(batcher.batches(epoch: 0) == batcher.batches(epoch: 0))
        #expect(batcher.batches(epoch: 0) != batcher.batches(epoch: 1))
        #expect(LengthBucketBatcher(lengths: lengths, batchSize: 8, seed: 8).batches(epoch: 0) != batcher.batches(epoch: 0))
        // Bucketing reduces padding against plain shuffled batches.
        func padding(_ batches: [[Int]]) -> Int {
            batches.reduce(0) { total, b in
                let l = b.map { lengths[$0] }
                return total + l.max()! * l.count - l.reduce(0, +)
            }
        }
        let plain = LengthBucketBatcher(lengths: lengths, batchSize: 8, bucketWindow: 1, seed: 7)
        #expect(padding(batcher.batches(epoch: 0)) < padding(plain.batches(epoch: 0)))
    }
}
