import Foundation
import Testing
@testable import Forgetting
@testable import Models
@testable import Planning
import Store
@testable import Training

/// Every parser of bytes Lethe did not write itself in this process — datasets, deletion logs,
/// tombstone logs, priors, safetensors and GGUF headers, plans, stage checkpoints, served
/// compositions, training settings — fed mutants of a valid input. Each must return a value or
/// throw; a trap, an out-of-bounds read or a runaway allocation ends the test process and
/// fails the run. `make test` runs `fuzzCount` mutants per parser; `make fuzz` runs more.
@Suite struct ParserFuzzTests {
    static let count = fuzzCount(default: 10_000)
    /// HDF5-backed formats write a file per mutant; fewer of them keep `make test` short.
    static let fileCount = fuzzCount(default: 3_000)

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
        let tally = try fuzzFiles("tombstone log", seed: seed, text: true, at: url, randomSeed: 4) {
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
        let tally = try fuzzFiles("safetensors header", seed: seed, text: true, at: url, randomSeed: 5) {
            let file = try SafeTensors(contentsOf: url.path)
            for name in file.tensors.keys.sorted() where file.tensors[name]?.dtype != .i64 {
                _ = try file.floats(name)
            }
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    @Test func ggufFiles() {
        let seed = Self.smallGGUF()
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
        let examples = (0..<24).map { Example(id: "ex-\($0)", text: "t\($0)", label: $0 % 2 == 0 ? "a" : "b") }
        let plan = try Planner.makePlan(for: Dataset(examples: examples, source: "d", sha256: String(repeating: "0", count: 64)),
                                        parameters: PlanParameters(shardCount: 2, sliceCount: 3, budget: 3, seed: 1))
        let url = scratch.file("plan.h5")
        try plan.save(to: url)
        let seed = Array(try Data(contentsOf: url))
        let tally = try fuzzFiles("plan.h5", seed: seed, text: false, at: url, count: Self.fileCount, randomSeed: 7) {
            _ = try Plan.load(from: url)
        }
        #expect(tally.rejected > 0)
    }

    @Test func stageCheckpointsBehindTheirSeal() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let hashes = [String(repeating: "1", count: 64)]
        let lineage = StageLineage(shard: 0, sequences: [0], stage: 1, prefixSlices: [0], prefixSliceHashes: hashes,
                                   blockLayers: [5])
        let record = StageRecord(strategy: .s3t, baseModelSHA256: String(repeating: "2", count: 64), hyperparametersJSON: "{}",
                                 seed: 3, threadCount: 1, softwareVersion: "fuzz", trainingLoss: 0.5, examplesSeen: 4,
                                 wallTimeSeconds: 1, labels: ["a", "b"])
        let checkpoint = StageCheckpoint(
            lineage: lineage, record: record,
            adapters: [NamedTensor(name: "encoder.layer.5.attention.self.query/lora_A", shape: [2, 4], values: (0..<8).map(Float.init))],
            head: [NamedTensor(name: "weight", shape: [2, 4], values: (0..<8).map { Float($0) / 2 }),
                   NamedTensor(name: "bias", shape: [2], values: [0.5, -0.5])])
        let url = scratch.file("stage.h5")
        try checkpoint.save(to: url)
        let seed = Array(try Data(contentsOf: url))
        let tally = try fuzzFiles("stage checkpoint", seed: seed, text: false, at: url, count: Self.fileCount, randomSeed: 8) {
            _ = try StageCheckpoint.load(from: url)
        }
        #expect(tally.rejected > 0)
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
        let tally = try fuzzFiles("served.json", seed: seed, text: true, at: layout.servedURL, randomSeed: 9) {
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
        let tally = try fuzzFiles("train.json", seed: seed, text: true, at: url, randomSeed: 10) {
            _ = try TrainingSettings.load(from: url)
        }
        #expect(tally.rejected > 0 && tally.accepted > 0)
    }

    // MARK: - Support

    /// `fuzz` for parsers that read a file: each mutant is written to `url` first.
    func fuzzFiles(_ parser: String, seed: [UInt8], text: Bool, at url: URL, count: Int = ParserFuzzTests.count,
                   randomSeed: UInt64, _ parse: () throws -> Void) throws -> FuzzTally {
        try Data(seed).write(to: url)
        try parse()   // the seed itself is valid
        return fuzz(parser, seed: seed, text: text, count: count, randomSeed: randomSeed) { bytes in
            try Data(bytes).write(to: url)
            try parse()
        }
    }

    struct Scratch {
        let url: URL
        init(_ label: String = #function) throws {
            url = FileManager.default.temporaryDirectory
                .appendingPathComponent("lethe-fuzz-\(label.filter(\.isLetter))-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        }
        func file(_ name: String) -> URL { url.appendingPathComponent(name) }
        func remove() { try? FileManager.default.removeItem(at: url) }
    }

    /// A GGUF v3 file: a few metadata values (a string array among them) and an F32 and a Q8_0
    /// tensor, laid out as the format specifies (little-endian, 32-byte aligned data).
    static func smallGGUF() -> [UInt8] {
        func u32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func u64(_ v: UInt64) -> [UInt8] { (0..<8).map { UInt8(truncatingIfNeeded: v >> (8 * $0)) } }
        func text(_ s: String) -> [UInt8] { u64(UInt64(s.utf8.count)) + Array(s.utf8) }
        var out = Array("GGUF".utf8) + u32(3) + u64(2) + u64(3)
        out += text("general.name") + u32(8) + text("fuzz")
        out += text("tokens") + u32(9) + u32(8) + u64(2) + text("a") + text("bc")
        out += text("general.alignment") + u32(4) + u32(32)
        out += text("w.f32") + u32(2) + u64(2) + u64(2) + u32(0) + u64(0)
        out += text("w.q8") + u32(1) + u64(32) + u32(8) + u64(32)
        while out.count % 32 != 0 { out.append(0) }
        out += [0, 0, 128, 63, 0, 0, 0, 64, 0, 0, 64, 64, 0, 0, 128, 64]   // 1, 2, 3, 4 as f32
        out += [UInt8](repeating: 0, count: 16)
        out += [0x00, 0x38] + (0..<32).map { UInt8($0) }                  // d = 0.5, q = 0…31
        return out
    }
}
