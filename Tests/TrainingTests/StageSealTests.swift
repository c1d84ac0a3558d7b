import Foundation
import Store
import Testing
@testable import Training

/// Stage checkpoints are sealed files (`HDF5Seal`): they load back exactly, and any changed byte
/// is a damaged-stage error naming the file and saying how to get the stage back.
@Suite struct StageSealTests {
    static let checkpoint = StageCheckpoint(
        lineage: StageLineage(shard: 1, sequences: [0, 2], stage: 1, prefixSlices: [3],
                              prefixSliceHashes: [String(repeating: "a", count: 64)], blockLayers: [5]),
        record: StageRecord(strategy: .s3t, baseModelSHA256: String(repeating: "b", count: 64), hyperparametersJSON: "{}",
                            seed: 11, threadCount: 2, softwareVersion: "test", trainingLoss: 0.25, examplesSeen: 8,
                            wallTimeSeconds: 1.5, labels: ["x", "y"]),
        adapters: [NamedTensor(name: "encoder.layer.5.attention.self.query/lora_A", shape: [2, 3],
                               values: [1, -2, 3.5, .leastNonzeroMagnitude, -0, 6])],
        head: [NamedTensor(name: "bias", shape: [2], values: [-1, 1]),   // sorted by name, as a file lists them
               NamedTensor(name: "weight", shape: [2, 3], values: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6])])

    static func saved() throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("lethe-stage-seal-\(UUID().uuidString)/stage-1-x.h5")
        try checkpoint.save(to: url)
        return url
    }

    @Test func aSavedStageIsSealedVersion3AndLoadsBackExactly() throws {
        let url = try Self.saved()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        #expect(try Data(contentsOf: url).starts(with: Data("lethe-sha256 ".utf8)))
        try HDF5Seal.check(fileAt: url)
        let loaded = try StageCheckpoint.load(from: url)
        // Everything but the training time, which version 3 keeps out of the file.
        #expect(loaded == Self.stored)
        #expect(loaded.storedTensors.map { $0.values.map(\.bitPattern) }
                == Self.checkpoint.storedTensors.map { $0.values.map(\.bitPattern) })
        let file = try HDF5File.open(url)
        #expect(try file.intAttribute(named: "format_version") == 3)
        #expect(try !file.hasAttribute(named: "wall_time_seconds"))
        try file.close()
    }

    @Test func everyChangedByteIsTheDamagedStageErrorNamingTheFile() throws {
        let url = try Self.saved()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let original = try Data(contentsOf: url)
        // The seal line, its padding, the superblock, and every 97th byte after it.
        let positions = [0, 20, 100, 511, 512, 513, 600] + Array(stride(from: 700, to: original.count, by: 97))
        for position in positions {
            var damaged = original
            damaged[position] ^= 0x10
            try damaged.write(to: url)
            #expect(performing: { try StageCheckpoint.load(from: url) }, throws: { error in
                guard case TrainingError.damagedStage(let file, _) = error else { return false }
                return file == url.path && "\(error)".hasPrefix(url.path) && "\(error)".contains("lethe train")
            })
        }
        try original.prefix(original.count - 1).write(to: url)
        #expect(performing: { try StageCheckpoint.load(from: url) }, throws: { error in
            guard case TrainingError.damagedStage(_, let reason) = error else { return false }
            return reason.contains("cut short or extended")
        })
        try original.write(to: url)
        #expect(try StageCheckpoint.load(from: url) == Self.stored)
    }

    /// Files sealed before the version became 2 hold the same content and are read.
    @Test func aSealedVersion1StageIsRead() throws {
        let url = try Self.saved()
        defer { try? FileManager.default.removeItem(at: url.deletingLastPathComponent()) }
        let file = try HDF5File.open(url, mode: .readWrite)
        try file.setAttribute(1, named: "format_version")
        try file.close()
        try HDF5Seal.seal(fileAt: url)
        #expect(try StageCheckpoint.load(from: url) == Self.stored)
    }

    /// `checkpoint` as a file gives it back: without its training time (version 3).
    static var stored: StageCheckpoint {
        var expected = checkpoint
        expected.record.wallTimeSeconds = 0
        return expected
    }
}
