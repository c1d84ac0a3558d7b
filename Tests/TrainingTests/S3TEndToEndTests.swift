import Foundation
import RunFixtures
import Testing
import Planning
import Store
@testable import Training

/// A small end-to-end run on the real MiniLM: 40 BBC headlines (8 per class), 2 shards
/// × 2 slices × 2 cyclic sequences, blocks of 1 layer (stage 1 = layer 5, stage 2 = layer 4),
/// rank 4 on query/value, 1 epoch, 1 thread. It drives the built `lethe` binary, as a user
/// would, so the kill test kills a real process. Needs `make setup` (model and data on disk).
@Suite(.serialized) struct S3TEndToEndTests {
    static let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func letheBinary() throws -> URL { try LetheProcess.binary() }
    @discardableResult
    static func lethe(_ arguments: [String]) throws -> String { try LetheProcess.succeed(arguments) }

    static let trainArguments = ["--epochs", "1", "--layers-per-block", "1", "--rank", "4",
                                 "--threads", "1", "--seed", "5",
                                 "--model", root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path]

    /// A scratch directory with the tiny dataset and a plan in `template/`.
    static func prepare() throws -> URL {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        try BBCSubset.write(perLabel: 8, to: scratch.appendingPathComponent("tiny.jsonl"))
        try lethe(["plan", "--data", scratch.appendingPathComponent("tiny.jsonl").path, "--shards", "2",
                   "--slices", "2", "--budget", "2", "--seed", "3", "--run", scratch.appendingPathComponent("template").path])
        return scratch
    }

    /// A fresh run directory holding a copy of the template plan.
    static func copyPlan(_ scratch: URL, to name: String) throws -> URL {
        let run = scratch.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: scratch.appendingPathComponent("template/plan.h5"),
                                         to: run.appendingPathComponent("plan.h5"))
        return run
    }

    /// Every stage file of a run: file name → tensors SHA-256 (checked against the tensors on load).
    static func stageHashes(_ run: URL) throws -> [String: String] {
        var result: [String: String] = [:]
        for shard in 0..<2 {
            let directory = RunLayout(directory: run).shardDirectory(shard)
            guard FileManager.default.fileExists(atPath: directory.path) else { continue }
            for name in try FileManager.default.contentsOfDirectory(atPath: directory.path) where name.hasSuffix(".h5") {
                result["\(shard)/\(name)"] = try StageCheckpoint.load(from: directory.appendingPathComponent(name)).tensorsSHA256
            }
        }
        return result
    }

    @Test func trainsStagesWithLineageDeterministicallyAndResumesBitIdenticallyAfterAKill() throws {
        let scratch = try Self.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let runA = try Self.copyPlan(scratch, to: "a")
        let jsonLines = try Self.lethe(["train", "--run", runA.path, "--json"] + Self.trainArguments)
        let trained = jsonLines.split(separator: "\n").filter { $0.contains("\"event\":\"trained\"") }
        #expect(trained.count == 8, "2 shards × 2 sequences × 2 stages, no shared prefix")

        // Lineage: every stage of every sequence, with exactly its own block's adapters.
        let layout = RunLayout(directory: runA)
        let plan = try Plan.load(from: Plan.url(inRun: runA))
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        #expect(settings.baseModelSHA256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
        for shard in 0..<2 {
            for (b, sequence) in plan.sequences(of: shard).enumerated() {
                for stage in 1...2 {
                    let hashes = sequence.prefix(stage).map { plan.sliceHash(shard: shard, slice: $0) }
                    let key = StageKey(prefixSliceHashes: Array(hashes))
                    let checkpoint = try StageCheckpoint.load(from: layout.stageURL(shard: shard, stage: stage, key: key))
                    let l = checkpoint.lineage, r = checkpoint.record
                    #expect(l.shard == shard && l.stage == stage && l.sequences == [b])
                    #expect(l.prefixSlices == Array(sequence.prefix(stage)))
                    #expect(l.prefixSliceHashes == Array(hashes))
                    #expect(l.blockLayers == [6 - stage])
                    #expect(checkpoint.adapterLayers == [6 - stage], "stage \(stage) holds block \(stage) only")
                    #expect(checkpoint.adapters.map(\.name).sorted() == [
                        "encoder.layer.\(6 - stage).attention.self.query/lora_A",
                        "encoder.layer.\(6 - stage).attention.self.query/lora_B",
                        "encoder.layer.\(6 - stage).attention.self.value/lora_A",
                        "encoder.layer.\(6 - stage).attention.self.value/lora_B"])
                    let loraB = try #require(checkpoint.adapters.first { $0.name.hasSuffix("query/lora_B") })
                    #expect(loraB.shape == [384, 4] && loraB.values.contains { $0 != 0 }, "block was trained")
                    #expect(checkpoint.head.first { $0.name == "weight" }?.shape == [5, 384])
                    #expect(r.seed == key.seed(runSeed: 5, shard: shard))
                    #expect(r.threadCount == 1 && r.baseModelSHA256 == settings.baseModelSHA256)
                    #expect(r.hyperparametersJSON == (try settings.canonicalJSON()))
                    #expect(r.examplesSeen == sequence.prefix(stage).map { plan.memberCount(shard: shard, slice: $0) }.reduce(0, +))
                    #expect(r.trainingLoss.isFinite && r.trainingLoss > 0)
                }
            }
        }
        let hashesA = try Self.stageHashes(runA)
        #expect(hashesA.count == 8)

        // Determinism: a second, uninterrupted run gives the same tensors bit for bit, and the
        // same stage files byte for byte (the training times go to stages/timings.jsonl).
        let runB = try Self.copyPlan(scratch, to: "b")
        try Self.lethe(["train", "--run", runB.path] + Self.trainArguments)
        #expect(try Self.stageHashes(runB) == hashesA)
        for shard in 0..<2 {
            for name in RunLayout(directory: runA).stageFileNames(shard: shard) {
                let a = try Data(contentsOf: RunLayout(directory: runA).shardDirectory(shard).appendingPathComponent(name))
                let b = try Data(contentsOf: RunLayout(directory: runB).shardDirectory(shard).appendingPathComponent(name))
                #expect(a == b, "shard \(shard) \(name) differs between two trainings alike")
            }
        }
        let timings = try String(contentsOf: RunLayout(directory: runB).timingsURL, encoding: .utf8)
        #expect(timings.split(separator: "\n").count == 8 && timings.contains("\"seconds\":"), "\(timings)")

        // `--jobs 2`: both shards at once in child processes, the same files bit for bit and the
        // same served composition; one merged done line.
        let runJ = try Self.copyPlan(scratch, to: "j")
        let parallel = try Self.lethe(["train", "--run", runJ.path, "--jobs", "2", "--json"] + Self.trainArguments)
        let parallelLines = parallel.split(separator: "\n")
        #expect(parallelLines.filter { $0.contains("\"event\":\"trained\"") }.count == 8)
        #expect(parallelLines.filter { $0.contains("\"event\":\"done\"") }.count == 1)
        #expect(parallelLines.contains { $0.contains("\"jobs\":2") && $0.contains("\"stages_trained\":8") })
        #expect(try Self.stageHashes(runJ) == hashesA)
        #expect(try ServedComposition.load(from: RunLayout(directory: runJ).servedURL).shards
                == ServedComposition.load(from: layout.servedURL).shards)

        // Two threads train each batch as two groups of sequences, one per thread, and add the
        // groups' adapter gradients in order: the thread count is part of a run's settings, and
        // the same count gives the same files on every run (here two runs of two threads).
        var twoThreads = Self.trainArguments
        twoThreads[twoThreads.firstIndex(of: "--threads")! + 1] = "2"
        var twoThreadHashes: [[String: String]] = []
        for name in ["t", "u"] {
            let run = try Self.copyPlan(scratch, to: name)
            try Self.lethe(["train", "--run", run.path] + twoThreads)
            twoThreadHashes.append(try Self.stageHashes(run))
        }
        #expect(twoThreadHashes[0] == twoThreadHashes[1])
        #expect(Set(twoThreadHashes[0].keys) == Set(hashesA.keys))

        // A real kill once the first stage file exists, then a resume.
        let runC = try Self.copyPlan(scratch, to: "c")
        let process = Process()
        process.executableURL = try Self.letheBinary()
        process.arguments = ["train", "--run", runC.path] + Self.trainArguments
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let shard0 = RunLayout(directory: runC).shardDirectory(0)
        let deadline = Date().addingTimeInterval(120)
        func stageFiles() -> [String] {
            ((try? FileManager.default.contentsOfDirectory(atPath: shard0.path)) ?? []).filter { $0.hasPrefix("stage-") }
        }
        while stageFiles().isEmpty && process.isRunning && Date() < deadline { usleep(2_000) }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the process was killed, not finished")
        let survivors = try Self.stageHashes(runC)
        #expect(!survivors.isEmpty && survivors.count < 8)
        for (name, hash) in survivors { #expect(hashesA[name] == hash, "a stage written before the kill is complete") }
        let resumed = try Self.lethe(["train", "--run", runC.path] + Self.trainArguments)
        #expect(resumed.contains("\(survivors.count) already complete"))
        #expect(try Self.stageHashes(runC) == hashesA)
        #expect(try ServedComposition.load(from: RunLayout(directory: runC).servedURL).shards
                == ServedComposition.load(from: layout.servedURL).shards)

        // Contradicting the saved settings is refused.
        #expect(throws: LetheProcess.Failed.self) { try Self.lethe(["train", "--run", runC.path, "--epochs", "2"]) }

        // The ensemble answers: evaluate and predict on the run.
        let evaluation = try Self.lethe(["evaluate", "--run", runA.path, "--json",
                                         "--data", scratch.appendingPathComponent("tiny.jsonl").path])
        let report = try JSONSerialization.jsonObject(with: Data(evaluation.utf8)) as? [String: Any]
        #expect((report?["examples"] as? Int) == 40)
        #expect(((report?["shards"] as? [Any])?.count) == 2)
        let prediction = try Self.lethe(["predict", "--run", runA.path, "--json", "--text", "Shares rise on profit hopes"])
        let predicted = try JSONSerialization.jsonObject(with: Data(prediction.utf8)) as? [String: Any]
        let probabilities = predicted?["probabilities"] as? [String: Double] ?? [:]
        #expect(probabilities.count == 5 && abs(probabilities.values.reduce(0, +) - 1) < 1e-4)
    }
}
