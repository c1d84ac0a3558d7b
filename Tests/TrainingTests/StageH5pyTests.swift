import Foundation
import Testing
import Planning
@testable import Training

/// h5py lists and reads every part of a stage checkpoint, and recomputes its canonical tensor
/// hash independently (Tools/inspect_stage.py in the venv of Tools/h5py_venv.sh).
struct StageH5pyTests {
    @Test func h5pyReadsStageCheckpointsAndAgreesOnTheTensorHash() throws {
        let root = S3TEndToEndTests.root
        let venv = Process()
        venv.executableURL = URL(fileURLWithPath: "/bin/bash")
        venv.arguments = [root.appendingPathComponent("Tools/h5py_venv.sh").path]
        let venvOut = Pipe()
        venv.standardOutput = venvOut
        try venv.run()
        let python = String(decoding: venvOut.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        venv.waitUntilExit()
        try #require(venv.terminationStatus != 3, "pip cannot reach the package registry")
        try #require(venv.terminationStatus == 0)

        let layout = try StageRunnerTests.temporaryRun()
        defer { try? FileManager.default.removeItem(at: layout.directory) }
        let hashes = [["a"], ["b", "c"]].map { SliceHash.of(ids: $0) }
        let schedule = try StageSchedule(shard: 0, sequences: [[1, 0]], sliceHashes: hashes, layerCount: 4,
                                         layersPerBlock: 2, strategy: .s3t)
        let settings = TrainingSettings(seed: 1, baseModel: "m", baseModelSHA256: String(repeating: "1", count: 64))
        try S3TRunner(layout: layout, settings: settings, trainer: RecordingTrainer(), clock: { 0 })
            .trainStages(schedule, members: { [["a"], ["b", "c"]][$0] },
                         gate: StageGate(layout: layout, tombstones: [], current: { [] })) { _ in }
        let url = layout.stageURL(schedule.stages[1])
        let checkpoint = try StageCheckpoint.load(from: url)

        let inspect = Process()
        inspect.executableURL = URL(fileURLWithPath: python)
        inspect.arguments = [root.appendingPathComponent("Tools/inspect_stage.py").path, url.path]
        let out = Pipe()
        inspect.standardOutput = out
        try inspect.run()
        let data = out.fileHandleForReading.readDataToEndOfFile()
        inspect.waitUntilExit()
        #expect(inspect.terminationStatus == 0)
        let report = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        #expect(report["hash_ok"] as? Bool == true)
        #expect(report["tensors_sha256"] as? String == checkpoint.tensorsSHA256)
        let tensors = try #require(report["tensors"] as? [String: [String: Any]])
        #expect(Set(tensors.keys) == Set(checkpoint.storedTensors.map(\.name)))
        #expect(tensors["adapters/encoder.layer.0.attention.self.query/lora_A"]?["shape"] as? [Int] == [2, 3])
        let attributes = try #require(report["attributes"] as? [String: Any])
        #expect(attributes["format"] as? String == "lethe-stage")
        #expect(attributes["stage"] as? Int == 2)
        #expect(attributes["prefix_slices"] as? [Int] == [1, 0])
        #expect(attributes["block_layers"] as? [Int] == [0, 1])
        #expect(attributes["stage_key"] as? String == schedule.stages[1].key.hex)
    }
}
