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
        let writer = Task {
            try await Task.sleep(for: .milliseconds(200))
            older.release()
        }
        #expect(await gate.drain(below: 5) == 0)
        #expect(clock.now - start >= .milliseconds(150), "the drain returned before the older answer was written")
        #expect(gate.pending(below: 6) == 1, "the answer of the new generation is not waited for")
        try await writer.value
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
        let writer = Task {
            for _ in 0..<6 {
                try await Task.sleep(for: .milliseconds(50))
                reading.progressed()
            }
            reading.release()
        }
        let clock = ContinuousClock(), start = clock.now
        #expect(await gate.drain(below: 2, stall: 0.12) == 1, "only the answer that stopped is closed")
        #expect(clock.now - start >= .milliseconds(250), "the progressing answer was waited for")
        try await writer.value
        withExtendedLifetime(stopped) {}
    }
}
