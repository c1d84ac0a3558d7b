import Foundation
@testable import Serving
import Testing

/// The gate that orders answers before this server's deletion acknowledgments.
@Suite struct AnswerGateTests {
    @Test func anAnswerAnAcceptedDeletionSupersedesIsNotAdmitted() {
        let gate = AnswerGate()
        #expect(gate.admit(generation: 3, channel: nil, isSuperseded: { true }) == nil)
        #expect(gate.pending(below: 10) == 0)
        let ticket = gate.admit(generation: 3, channel: nil, isSuperseded: { false })
        #expect(ticket != nil && gate.pending(below: 4) == 1 && gate.pending(below: 3) == 0)
        ticket?.release()
        ticket?.release()   // twice is once
        #expect(gate.pending(below: 4) == 0)
    }

    @Test func aDrainWaitsForOlderAnswersOnly() async throws {
        let gate = AnswerGate()
        let older = try #require(gate.admit(generation: 2, channel: nil, isSuperseded: { false }))
        let newer = try #require(gate.admit(generation: 5, channel: nil, isSuperseded: { false }))
        let clock = ContinuousClock(), start = clock.now
        // (A thread of its own, not a task: a test process busy with other suites may leave the
        // cooperative pool without a free thread for seconds.)
        Thread {
            Thread.sleep(forTimeInterval: 0.2)
            older.release()
        }.start()
        #expect(await gate.drain(below: 5, stall: 600) == 0)
        #expect(clock.now - start >= .milliseconds(150), "the drain returned before the older answer was written")
        #expect(gate.pending(below: 6) == 1, "the answer of the new generation is not waited for")
        withExtendedLifetime(newer) {}
    }

    @Test func aDrainGivesUpOnAnAnswerNeverWrittenAndReleasesIt() async {
        let gate = AnswerGate()
        var ticket = gate.admit(generation: 1, channel: nil, isSuperseded: { false })
        #expect(await gate.drain(below: 2, stall: 0.05) == 1)
        #expect(gate.pending(below: 2) == 0)
        // A ticket dropped without a write releases itself.
        ticket = gate.admit(generation: 1, channel: nil, isSuperseded: { false })
        #expect(gate.pending(below: 2) == 1)
        ticket = nil
        #expect(gate.pending(below: 2) == 0 && ticket == nil)
    }

    /// An answer that keeps writing pieces is waited for past the stall time; one that stops
    /// is given up on.
    @Test func aDrainWaitsForAnAnswerThatKeepsProgressing() async throws {
        let gate = AnswerGate()
        let reading = try #require(gate.admit(generation: 1, channel: nil, isSuperseded: { false }))
        let stopped = try #require(gate.admit(generation: 1, channel: nil, isSuperseded: { false }))
        let clock = ContinuousClock(), start = clock.now
        Thread {
            for _ in 0..<15 {
                Thread.sleep(forTimeInterval: 0.1)
                reading.progressed()
            }
            reading.release()
        }.start()
        #expect(await gate.drain(below: 2, stall: 1) == 1, "only the answer that stopped is closed")
        #expect(clock.now - start >= .milliseconds(1400), "the progressing answer was waited for past the stall time")
        withExtendedLifetime(stopped) {}
    }
}
