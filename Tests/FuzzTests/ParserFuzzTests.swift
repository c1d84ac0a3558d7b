import Foundation
import Testing
@testable import Forgetting
@testable import Models
@testable import Planning
@testable import Training

/// Every parser of bytes Lethe did not write itself in this process — datasets, deletion logs,
/// tombstone logs, priors, safetensors and GGUF headers, plans, stage checkpoints, served
/// compositions, training settings — fed mutants of a valid input. Each must return a value or
/// throw; a trap, an out-of-bounds read or a runaway allocation ends the test process and
/// fails the run. `make test` runs `fuzzCount` mutants per parser; `make fuzz` runs more.
@Suite struct ParserFuzzTests {
    static let count = fuzzCount(default: 10_000)

    static let datasetSeed = Array("""
        {"id": "a/1", "text": "Shares rise", "label": "business", "group": "g1"}
        {"id": "a/2", "text": "Striker scores \\"twice\\"", "label": "sport", "lead": "x"}
        {"id": "a/3", "text": "ünïcödé – ok", "label": "business", "group": "g1"}

        """.utf8)

    @Test func datasets() {
        #expect(throws: Never.self) { _ = try Dataset.parse(Data(Self.datasetSeed), source: "seed.jsonl") }
        let tally = fuzz("JSON Lines dataset", seed: Self.datasetSeed, text: true, count: Self.count, randomSeed: 1) {
            _ = try Dataset.parse(Data($0), source: "fuzz.jsonl")
        }
        #expect(tally.accepted + tally.rejected == Self.count && tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func deletionLogs() {
        let seed = Array("""
            {"id": "a/1"}
            {"group": "g1", "request_id": "ticket-7", "timestamp": "2026-12-04T01:02:03Z"}
            {"id": "a/3", "request_id": "r3"}

            """.utf8)
        #expect(throws: Never.self) { _ = try RequestLog.parse(Data(seed), source: "seed.jsonl") }
        let tally = fuzz("deletion log", seed: seed, text: true, count: Self.count, randomSeed: 2) {
            _ = try RequestLog.parse(Data($0), source: "fuzz.jsonl")
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func priors() {
        let seed = Array("[0.4, 0.3, 0.2, 0.1]\n".utf8)
        let tally = fuzz("slice prior", seed: seed, text: true, count: Self.count, randomSeed: 3) {
            _ = try Prior.parse(Data($0), sliceCount: 4, source: "fuzz.json")
        }
        #expect(tally.rejected > 0)
    }

    @Test func tombstoneLogs() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("plan.tombstones")
        let seed = Array((TombstoneLog.header + "a/1\nb/22\nünï\n").utf8)
        let tally = try fuzzFiles("tombstone log", seed: seed, text: true, at: url, randomSeed: 4) { _ in
            _ = try TombstoneLog.read(url)
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func safetensorsHeaders() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let header = #"{"__metadata__":{"format":"pt"},"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},"# +
            #""h":{"dtype":"F16","shape":[4],"data_offsets":[24,32]},"i":{"dtype":"I64","shape":[1],"data_offsets":[32,40]}}"#
        var seed = (0..<8).map { UInt8(truncatingIfNeeded: header.utf8.count >> (8 * $0)) } + Array(header.utf8)
        seed += [UInt8](repeating: 0x3F, count: 40)
        let url = scratch.file("w.safetensors")
        let tally = try fuzzFiles("safetensors header", seed: seed, text: true, at: url, randomSeed: 5) { _ in
            let file = try SafeTensors(contentsOf: url.path)
            for name in file.tensors.keys.sorted() where file.tensors[name]?.dtype != .i64 {
                _ = try file.floats(name)
            }
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func ggufFiles() {
        let seed = GGUFBytes.small()
        #expect(throws: Never.self) { _ = try GGUFFile(data: Data(seed), path: "seed.gguf") }
        let tally = fuzz("GGUF", seed: seed, text: false, count: Self.count, randomSeed: 6) { bytes in
            let file = try GGUFFile(data: Data(bytes), path: "fuzz.gguf")
            for tensor in file.tensors { _ = try file.floats(named: tensor.name) }
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func plansBehindTheirSeal() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("plan.h5")
        try SealedFixtures.savePlan(at: url)
        let seed = Array(try Data(contentsOf: url))
        let (tally, unchanged) = try fuzzSealed("plan.h5", seed: seed, at: url, randomSeed: 7, load: {
            _ = try Plan.load(from: url)
        }, isDamaged: { error in
            guard case PlanningError.damagedPlan(let file, _) = error else { return false }
            return file == url.path
        })
        #expect(tally.accepted == unchanged && tally.rejected == Self.count - unchanged)
    }

    @Test func stageCheckpointsBehindTheirSeal() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("stage.h5")
        try SealedFixtures.checkpoint.save(to: url)
        let seed = Array(try Data(contentsOf: url))
        let (tally, unchanged) = try fuzzSealed("stage checkpoint", seed: seed, at: url, randomSeed: 8, load: {
            _ = try StageCheckpoint.load(from: url)
        }, isDamaged: { error in
            guard case TrainingError.damagedStage(let file, _) = error else { return false }
            return file == url.path
        })
        #expect(tally.accepted == unchanged && tally.rejected == Self.count - unchanged)
    }

    @Test func servedCompositions() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let layout = RunLayout(directory: scratch.url)
        let key = StageKey(prefixSliceHashes: [String(repeating: "3", count: 64)])
        try ServedComposition(strategy: .s3t, shards: [.init(shard: 0, sequence: 1, prefixLength: 1, stageKeys: [key]),
                                                     .dead(shard: 1)],
                              ledgerHead: LedgerAnchor(sequenceNumber: 2, hash: String(repeating: "4", count: 64)))
            .save(to: layout)
        let seed = Array(try Data(contentsOf: layout.servedURL))
        let tally = try fuzzFiles("served.json", seed: seed, text: true, at: layout.servedURL, randomSeed: 9) { _ in
            _ = try ServedComposition.load(from: layout.servedURL)
        }
        #expect(tally.rejected > 0)
    }

    @Test func trainingSettings() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("train.json")
        try TrainingSettings(baseModel: "../base", baseModelSHA256: String(repeating: "5", count: 64)).save(to: url)
        let seed = Array(try Data(contentsOf: url))
        let tally = try fuzzFiles("train.json", seed: seed, text: true, at: url, randomSeed: 10) { _ in
            _ = try TrainingSettings.load(from: url)
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    // MARK: - Support

    /// `fuzz` for parsers that read a file: each mutant is written to `url` first, then
    /// `parse` is given its bytes.
    func fuzzFiles(_ parser: String, seed: [UInt8], text: Bool, at url: URL, count: Int = ParserFuzzTests.count,
                   randomSeed: UInt64, _ parse: ([UInt8]) throws -> Void) throws -> FuzzTally {
        try Data(seed).write(to: url)
        try parse(seed)   // the seed itself is valid
        return fuzz(parser, seed: seed, text: text, count: count, randomSeed: randomSeed) { bytes in
            try Data(bytes).write(to: url)
            try parse(bytes)
        }
    }

    /// `fuzzFiles` for a sealed HDF5 file: only a mutant identical to the seed may load; every
    /// other one must be refused by the seal with the loader's damaged-file error naming `url`
    /// (`isDamaged`), so libhdf5 never parses a changed byte. Returns the tally and the number of
    /// mutants identical to the seed.
    func fuzzSealed(_ parser: String, seed: [UInt8], at url: URL, randomSeed: UInt64, load: () throws -> Void,
                    isDamaged: (any Error) -> Bool) throws -> (tally: FuzzTally, unchanged: Int) {
        var unchanged = -1   // the seed itself is loaded once first
        var wrong: [String] = []
        let tally = try fuzzFiles(parser, seed: seed, text: false, at: url, count: Self.count,
                                  randomSeed: randomSeed) { mutant in
            if mutant == seed { unchanged += 1 }
            do { try load() } catch {
                if !isDamaged(error) && wrong.count < 3 { wrong.append("\(error)") }
                throw error
            }
            if mutant != seed && wrong.count < 3 { wrong.append("a changed file loaded") }
        }
        #expect(wrong.isEmpty, "\(parser): \(wrong)")
        return (tally, unchanged)
    }
}
