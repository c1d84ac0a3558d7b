import Foundation
import Testing
@testable import Training

/// Golden values were computed independently with Python's hashlib/struct/numpy, following
/// docs/FORMAT.md ("Stage checkpoints"):
///   h1 = sha256(b"a\nb"), h2 = sha256(b"c"); key = sha256((h1 + "\n" + h2).encode())
///   seed = u64le(sha256(b"lethe-stage-seed" + u64le(7) + u64le(1) + key.encode())[:8])
struct StageIdentityTests {
    let h1 = "7e18f737311b2dc3b2f269dd78396b0351f14fb66efa879f768cb23181883c78"
    let h2 = "2e7d2c03a9507ae265ecf5b5356885a53393a2029d241394997265a1a25aefc6"

    @Test func keyAndSeedMatchTheDocumentedEncoding() {
        let key = StageKey(prefixSliceHashes: [h1, h2])
        #expect(key.hex == "351f4c0e6f0b306e8e2641e2c35d997812a10f29506cee7e70127da06f3cda4a")
        #expect(key.seed(runSeed: 7, shard: 1) == 5_568_047_064_456_265_975)
        #expect(key.seed(runSeed: 7, shard: 0) != key.seed(runSeed: 7, shard: 1))
        #expect(key.seed(runSeed: 8, shard: 1) != key.seed(runSeed: 7, shard: 1))
        #expect(StageKey(prefixSliceHashes: [h2, h1]) != key, "order of the prefix matters")
    }

    @Test func tensorDigestMatchesTheDocumentedByteOrder() {
        let tensors = [NamedTensor(name: "head/weight", shape: [2, 2], values: [1, 2, 3, -0.5]),
                       NamedTensor(name: "adapters/x/lora_A", shape: [1, 3], values: [0.25, 0.5, 0.75])]
        #expect(TensorDigest.sha256(tensors) == "fe4a2cc9b5b6568f3caa3fe71d2aae64cf80da6755ff8beb03f1d52decde8a79")
        #expect(TensorDigest.sha256(tensors.reversed()) == TensorDigest.sha256(tensors))
        let changed = [tensors[0], NamedTensor(name: "adapters/x/lora_A", shape: [3, 1], values: [0.25, 0.5, 0.75])]
        #expect(TensorDigest.sha256(changed) != TensorDigest.sha256(tensors), "the shape is hashed")
    }

    @Test func cyclicSequencesShareNoStagesAndSuffixRotationsShareTheirPrefix() throws {
        let hashes = ["a", "b", "c"].map { String(repeating: $0, count: 64) }
        let cyclic = try StageSchedule(shard: 0, sequences: [[0, 1, 2], [2, 0, 1], [1, 2, 0]], sliceHashes: hashes,
                                       layerCount: 6, layersPerBlock: 2, strategy: .s3t)
        #expect(cyclic.stages.count == 9)
        #expect(cyclic.stages[0].blockLayers == [4, 5])
        #expect(cyclic.stages[1].blockLayers == [2, 3])
        #expect(cyclic.stages[2].blockLayers == [0, 1])
        // B > L style: two sequences starting with slice 0 share stage 1.
        let shared = try StageSchedule(shard: 2, sequences: [[0, 1, 2], [0, 2, 1]], sliceHashes: hashes,
                                       layerCount: 6, layersPerBlock: 1, strategy: .s3t)
        #expect(shared.stages.count == 5)
        #expect(shared.stages[0].sequences == [0, 1])
        #expect(shared.sequenceKeys[0][0] == shared.sequenceKeys[1][0])
        #expect(shared.sequenceKeys[0][1] != shared.sequenceKeys[1][1])
        #expect(shared.stages[0].blockLayers == [5])
        #expect(shared.stages.allSatisfy { $0.shard == 2 })
        // Parents always come before their children.
        for (i, stage) in shared.stages.enumerated() {
            if let parent = stage.parentKey {
                #expect(shared.stages[..<i].contains { $0.key == parent })
            }
        }
    }

    @Test func scheduleRefusesBlocksThatDoNotFitAndSISAWithSeveralSequences() {
        let hashes = ["a", "b", "c"].map { String(repeating: $0, count: 64) }
        #expect(throws: TrainingError.self) {
            try StageSchedule(shard: 0, sequences: [[0, 1, 2]], sliceHashes: hashes, layerCount: 6,
                              layersPerBlock: 3, strategy: .s3t)
        }
        #expect(throws: TrainingError.self) {
            try StageSchedule(shard: 0, sequences: [[0, 1, 2], [1, 2, 0]], sliceHashes: hashes, layerCount: 6,
                              layersPerBlock: 2, strategy: .sisa)
        }
        #expect(throws: TrainingError.self) {
            try StageSchedule(shard: 0, sequences: [[0, 1, 1]], sliceHashes: hashes, layerCount: 6,
                              layersPerBlock: 2, strategy: .s3t)
        }
        let sisa = try? StageSchedule(shard: 0, sequences: [[1, 0, 2]], sliceHashes: hashes, layerCount: 6,
                                      layersPerBlock: 1, strategy: .sisa)
        #expect(sisa?.stages.map(\.blockLayers) == [[3, 4, 5], [3, 4, 5], [3, 4, 5]])
    }
}

/// Where a run's settings say the base model is.
@Suite struct BaseModelPathTests {
    @Test func modelPathsAreStoredRelativeToTheRunAndResolvedFromIt() {
        let cwd = FileManager.default.currentDirectoryPath
        let run = URL(fileURLWithPath: cwd).appendingPathComponent("Checkpoints/runs/demo")
        let stored = TrainingSettings.storedModelPath("Checkpoints/base/all-MiniLM-L6-v2", run: run)
        #expect(stored == "../../base/all-MiniLM-L6-v2")
        let settings = TrainingSettings(baseModel: stored, baseModelSHA256: "")
        #expect(settings.baseModelDirectory(run: run).standardizedFileURL.path
                == URL(fileURLWithPath: cwd).appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path)
        // An absolute path stays absolute, and so does one that shares only the root with the run.
        #expect(TrainingSettings.storedModelPath("/opt/models/m", run: run) == "/opt/models/m")
        #expect(TrainingSettings.storedModelPath("x/m", run: URL(fileURLWithPath: "/elsewhere/run")).hasPrefix("/"))
    }

    /// A scratch directory holding `model/model.safetensors` with the bytes "weights".
    private static func scratchModel() throws -> (scratch: URL, model: URL) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-model-\(UUID().uuidString)")
        let model = scratch.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: model, withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: model.appendingPathComponent("model.safetensors"))
        return (scratch, model)
    }

    @Test func theWeightsAreCheckedByTheirSHA256BeforeTheEncoderReadsThem() throws {
        let (scratch, model) = try Self.scratchModel()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let weights = model.appendingPathComponent("model.safetensors")
        let hash = "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"  // SHA-256 of "weights"
        try TrainingSettings(baseModel: "model", baseModelSHA256: hash).checkBaseModel(model)
        let other = String(repeating: "0", count: 64)
        let settings = TrainingSettings(baseModel: "model", baseModelSHA256: other)
        // Refused before the encoder would fail on these bytes, which are no safetensors file.
        #expect(throws: TrainingError.baseModelMismatch(file: weights.path, expected: other, found: hash)) {
            _ = try settings.loadBaseEncoder(run: scratch)
        }
        let message = "\(TrainingError.baseModelMismatch(file: weights.path, expected: other, found: hash))"
        #expect(message.hasPrefix(weights.path) && message.contains(other) && message.contains(hash)
                && message.contains("make setup"))
        try FileManager.default.removeItem(at: weights)
        #expect {
            try settings.checkBaseModel(model)
        } throws: { error in
            guard case TrainingError.baseModelMismatch(weights.path, other, let found) = error else { return false }
            return found.contains("no readable file")
        }
    }

    /// A run moved on its own to another depth finds no model at its relative path: the error
    /// says so and how to put the model (or a link) there; once linked, the hash check passes.
    @Test func aRunMovedWithoutItsModelIsToldWhereToLinkIt() throws {
        let (scratch, model) = try Self.scratchModel()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = scratch.appendingPathComponent("deeper/run")
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        let hash = "9a129038d9a00aed0cf6a7ea059ca50a813449061ab87848cf1a13eafdf33b2c"  // SHA-256 of "weights"
        let settings = TrainingSettings(baseModel: "../base/model", baseModelSHA256: hash)
        let expected = settings.baseModelDirectory(run: run)
        #expect(expected.path == scratch.appendingPathComponent("deeper/base/model").path)
        #expect {
            try settings.checkBaseModel(expected)
        } throws: { error in
            let message = "\(error)"
            return message.hasPrefix(expected.path) && message.contains("`../base/model`")
                && message.contains("ln -s <the model> \(expected.path)") && message.contains(hash)
        }
        try FileManager.default.createDirectory(at: expected.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: expected, withDestinationURL: model)
        try settings.checkBaseModel(settings.baseModelDirectory(run: run))
    }

    /// Settings written when model paths were relative to the working directory still find
    /// their model there when the run directory has none at that path.
    @Test func aPathRelativeToTheWorkingDirectoryIsUsedWhenTheRunHasNoModelThere() throws {
        let (scratch, model) = try Self.scratchModel()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let depth = URL(fileURLWithPath: FileManager.default.currentDirectoryPath).standardizedFileURL.pathComponents.count - 1
        let relative = String(repeating: "../", count: depth) + model.path.dropFirst()
        let settings = TrainingSettings(baseModel: relative, baseModelSHA256: "")
        let run = scratch.appendingPathComponent("runs/r")
        #expect(settings.baseModelDirectory(run: run).path == model.standardizedFileURL.path)
        // Relative to the run directory when it exists there.
        let runModel = TrainingSettings(baseModel: "../../model", baseModelSHA256: "")
        #expect(runModel.baseModelDirectory(run: run).path == model.standardizedFileURL.path)
    }
}
