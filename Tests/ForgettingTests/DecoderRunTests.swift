import Foundation
import Models
import Planning
import RunFixtures
import Testing
@testable import Audit
@testable import Training

/// S3T on the real SmolLM2 decoder through the command line: text data without labels, LoRA
/// blocks on the top layers, forgetting, auditing, replay, and the served ensemble (the mean of
/// the live shards' next-token probabilities). Needs `make setup` (model and data on disk).
@Suite(.serialized) struct DecoderRunTests {
    static let root = LetheProcess.root
    static let model = root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf")

    /// 16 BBC headlines with their lead paragraph as text data in 4 groups.
    static func writeTexts(to url: URL) throws {
        let lines = try String(contentsOf: root.appendingPathComponent("Datasets/bbc-news/test.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(16)
        var out = ""
        for (i, line) in lines.enumerated() {
            let record = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            let text = "\(record["text"] as! String). \(record["lead"] as? String ?? "")"
            let object: [String: Any] = ["id": String(format: "t%02d", i), "text": text, "group": "g\(i % 4)"]
            out += String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self) + "\n"
        }
        try out.write(to: url, atomically: true, encoding: .utf8)
    }

    @Test func decoderRunTrainsForgetsReplaysAndServesTheMixture() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-decoder-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("texts.jsonl")
        try Self.writeTexts(to: data)
        let runA = scratch.appendingPathComponent("a"), runB = scratch.appendingPathComponent("b")
        try lethe(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2", "--seed", "3",
                   "--run", runA.path])
        try FileManager.default.createDirectory(at: runB, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Plan.url(inRun: runA), to: Plan.url(inRun: runB))
        let train = ["--epochs", "1", "--max-tokens", "24", "--batch-size", "4", "--threads", "1", "--seed", "5",
                     "--model", Self.model.path]
        try lethe(["train", "--run", runA.path] + train)
        // Two shards at once in child processes: the same bits as one after the other.
        try lethe(["train", "--run", runB.path, "--jobs", "2"] + train)

        let layout = RunLayout(directory: runA), layoutB = RunLayout(directory: runB)
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        #expect(settings.modelKind == .decoder && settings.targets == ["q_proj", "v_proj"] && settings.layersPerBlock == 1)
        let served = try ServedComposition.load(from: layout.servedURL)
        #expect(served.liveShards.count == 2)
        for entry in served.liveShards {
            for (index, key) in entry.stageKeys.enumerated() {
                let a = try StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: index + 1, key: key))
                let b = try StageCheckpoint.load(from: layoutB.stageURL(shard: entry.shard, stage: index + 1, key: key))
                #expect(a.adapters == b.adapters, "--jobs 2 gave other bits")
                #expect(a.record.modelKind == .decoder && a.head.isEmpty && a.record.labels.isEmpty)
                // SmolLM2 has 30 layers: stage i trains layer 30 − i.
                #expect(a.lineage.blockLayers == [30 - (index + 1)])
                #expect(a.adapters.map(\.name).allSatisfy { $0.hasPrefix("layers.\(30 - (index + 1)).") })
            }
        }

        // The served mixture equals the mean of the shard models' probabilities, computed here
        // from each shard's own scores.
        let (model, tokenizer) = try LlamaModel.load(path: Self.model.path)
        let ensemble = try DecoderEnsemble(layout: layout, composition: served, model: model)
        let probe = [tokenizer.encode("Shares in the bank fell after profits missed forecasts", allowSpecial: false)]
        let mixture = try ensemble.scores(of: probe)[0].logProbabilities
        let perShard = try ensemble.members.map { try model.scores(of: probe, adapter: $0.adapter)[0].logProbabilities }
        for t in mixture.indices {
            let expected = log(perShard.map { exp(Double($0[t])) }.reduce(0, +) / Double(perShard.count))
            #expect(abs(Double(mixture[t]) - expected) < 1e-4, "token \(t): \(mixture[t]) vs \(expected)")
        }
        #expect(zip(perShard[0], perShard[1]).contains { $0 != $1 }, "the shards' adapters differ")
        // Batched, padded, on two threads (the shared base layers run once per batch): the
        // scores of each sequence scored alone.
        let probes = ["Shares in the bank fell", "The minister said on Tuesday that the plan would go ahead",
                      "Rain", "Fans queued overnight for tickets to the final"].map { tokenizer.encode($0, allowSpecial: false) }
        #expect(ensemble.sharedLayers == 30 - 2)
        let batched = try ensemble.scores(of: probes, batchSize: 3, padID: tokenizer.eosID, threads: 2)
        for (probe, scores) in zip(probes, batched) {
            let alone = try ensemble.scores(of: [probe])[0]
            #expect(scores.logProbabilities.count == probe.count - 1 && scores.correct == alone.correct)
            for (a, b) in zip(scores.logProbabilities + scores.expectedLogProbabilities + scores.logProbabilityDeviations,
                              alone.logProbabilities + alone.expectedLogProbabilities + alone.logProbabilityDeviations) {
                #expect(abs(a - b) < 1e-4, "\(a) vs \(b)")
            }
        }

        // Forget one example of shard 0's slice 0: its stages are erased, nothing served saw it,
        // and the surviving prefix is bit-identical to run B's (trained from scratch on it).
        let plan = try Plan.load(from: Plan.url(inRun: runA))
        let forgotten = try #require(plan.members(shard: 0, slice: 0).first)
        try lethe(["forget", "--run", runA.path, "--id", forgotten])
        #expect(try !ExampleAudit.audit(run: runA, id: forgotten).servedNow)
        #expect(try lethe(["verify", "--run", runA.path]).contains("OK"))
        let after = try ServedComposition.load(from: layout.servedURL)
        for entry in after.liveShards {
            for (index, key) in entry.stageKeys.enumerated() {
                let a = try StageCheckpoint.load(from: layout.stageURL(shard: entry.shard, stage: index + 1, key: key))
                let b = try StageCheckpoint.load(from: layoutB.stageURL(shard: entry.shard, stage: index + 1, key: key))
                #expect(a.adapters == b.adapters)
            }
        }
        let replay = try lethe(["verify", "--run", runA.path, "--replay", "2"])
        #expect(replay.contains("bit-identical") && replay.contains("OK"), "\(replay)")
        #expect(try lethe(["status", "--run", runA.path]).contains("s3t on a decoder"))

        // The ensemble scores and generates through the command line; a classifier command refuses.
        let perplexity = try lethe(["perplexity", "--run", runA.path, "--data", data.path, "--chunk-tokens", "24", "--json"])
        let value = try #require((try JSONSerialization.jsonObject(with: Data(perplexity.utf8)) as? [String: Any])?["perplexity"] as? Double)
        #expect(value.isFinite && value > 1)
        #expect(try !lethe(["generate", "--run", runA.path, "The bank", "--new-tokens", "3"]).isEmpty)
        // From a directory where the default --model is not: the run names its own base model.
        let elsewhere = try LetheProcess.runTool("/bin/sh", ["-c", "cd / && exec \"$0\" \"$@\"", try LetheProcess.binary().path,
                                                             "generate", "--run", runA.path, "The bank", "--new-tokens", "2"])
        #expect(elsewhere.status == 0, "\(elsewhere.output)")
        let both = try LetheProcess.run(["perplexity", "--run", runA.path, "--data", data.path, "--model", "/nonexistent.gguf"])
        #expect(both.status == 64 && both.output.contains("--run and --model: give one"), "\(both.output)")
        let refused = try LetheProcess.run(["predict", "--run", runA.path, "--text", "hello"])
        #expect(refused.status != 0 && refused.output.contains("decoder run"))
    }

    @discardableResult
    func lethe(_ arguments: [String]) throws -> String { try LetheProcess.succeed(arguments) }
}
