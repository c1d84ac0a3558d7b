import Foundation
import Testing
import Planning
@testable import Training

/// `lethe finetune` on the real MiniLM and the tiny BBC subset of the S3T
/// end-to-end test: what the model file holds, determinism, equality with `lethe train
/// --strategy full`, resumption, evaluate/predict on it, and its input errors.
@Suite(.serialized) struct FinetuneTests {
    typealias E2E = S3TEndToEndTests
    static let arguments = ["--epochs", "1", "--rank", "4", "--threads", "1", "--seed", "5",
                            "--model", E2E.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path]

    /// The one stage checkpoint of a fine-tuned model directory.
    static func checkpoint(_ run: URL) throws -> (url: URL, checkpoint: StageCheckpoint) {
        let directory = RunLayout(directory: run).shardDirectory(0)
        let names = try FileManager.default.contentsOfDirectory(atPath: directory.path).filter { $0.hasSuffix(".h5") }
        #expect(names.count == 1, "one checkpoint: \(names)")
        let url = directory.appendingPathComponent(try #require(names.first))
        return (url, try StageCheckpoint.load(from: url))
    }

    @Test func writesACompleteDeterministicModelThatEvaluateAndPredictUse() throws {
        let scratch = try E2E.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl").path
        let a = scratch.appendingPathComponent("a"), b = scratch.appendingPathComponent("b")
        let output = try E2E.lethe(["finetune", "--data", data, "--run", a.path, "--layers", "2"] + Self.arguments)
        #expect(output.contains("1 stages trained"), "\(output)")
        try E2E.lethe(["finetune", "--data", data, "--run", b.path, "--layers", "2"] + Self.arguments)

        let (urlA, modelA) = try Self.checkpoint(a)
        let (_, modelB) = try Self.checkpoint(b)
        #expect(modelA.tensorsSHA256 == modelB.tensorsSHA256, "same seed and threads: bit-identical weights")
        #expect(modelA.adapters == modelB.adapters && modelA.head == modelB.head)

        // Adapters with PEFT names on the top two layers only, head, labels, provenance.
        let expectedNames = [4, 5].flatMap { layer in
            ["query", "value"].flatMap { module in
                ["lora_A", "lora_B"].map { "encoder.layer.\(layer).attention.self.\(module)/\($0)" }
            }
        }
        #expect(modelA.adapters.map(\.name).sorted() == expectedNames.sorted())
        #expect(modelA.adapters.first { $0.name.hasSuffix("query/lora_A") }?.shape == [4, 384], "lora_A is [r, in]")
        #expect(modelA.adapters.first { $0.name.hasSuffix("query/lora_B") }?.shape == [384, 4], "lora_B is [out, r]")
        #expect(modelA.head.map(\.shape).sorted { $0.count < $1.count } == [[5], [5, 384]])
        #expect(modelA.record.labels == ["business", "entertainment", "politics", "sport", "tech"])
        #expect(modelA.record.strategy == .full)
        #expect(modelA.record.baseModelSHA256 == "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db")
        #expect(modelA.record.examplesSeen == 40, "one epoch over the 40 examples")
        let settings = try TrainingSettings.load(from: RunLayout(directory: a).settingsURL)
        #expect(modelA.record.hyperparametersJSON == (try settings.canonicalJSON()))
        #expect(settings.rank == 4 && settings.layersPerBlock == 2 && settings.strategy == .full)

        // Running the same command again finds the model complete and changes nothing.
        let before = try Data(contentsOf: urlA)
        let again = try E2E.lethe(["finetune", "--data", data, "--run", a.path] + Self.arguments)
        #expect(again.contains("0 stages trained, 1 already complete"), "\(again)")
        #expect(try Data(contentsOf: urlA) == before)

        // evaluate and predict read it like any run.
        let evaluation = try E2E.lethe(["evaluate", "--run", a.path, "--json", "--data", data])
        let report = try #require(try JSONSerialization.jsonObject(with: Data(evaluation.utf8)) as? [String: Any])
        #expect(report["examples"] as? Int == 40 && report["strategy"] as? String == "full")
        #expect((report["shards"] as? [Any])?.count == 1)
        let prediction = try E2E.lethe(["predict", "--run", a.path, "--json", "--text", "Shares rise on profit hopes"])
        let predicted = try JSONSerialization.jsonObject(with: Data(prediction.utf8)) as? [String: Any]
        let probabilities = predicted?["probabilities"] as? [String: Double] ?? [:]
        #expect(probabilities.count == 5 && abs(probabilities.values.reduce(0, +) - 1) < 1e-4)

        // The same model as `lethe train --strategy full` on a 1 × 1 × 1 plan of the same data.
        let c = scratch.appendingPathComponent("c")
        try E2E.lethe(["plan", "--data", data, "--shards", "1", "--slices", "1", "--budget", "1", "--seed", "5",
                       "--run", c.path])
        try E2E.lethe(["train", "--run", c.path, "--strategy", "full", "--layers-per-block", "2"] + Self.arguments)
        #expect(try Self.checkpoint(c).checkpoint.tensorsSHA256 == modelA.tensorsSHA256)
    }

    @Test func refusesAnS3TRunContradictingSettingsAndImpossibleLayers() throws {
        let scratch = try E2E.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl").path
        let s3t = scratch.appendingPathComponent("template").path
        func failure(_ arguments: [String]) -> String {
            do { _ = try E2E.lethe(arguments); return "" } catch { return "\(error)" }
        }
        #expect(failure(["finetune", "--data", data, "--run", s3t] + Self.arguments).contains("holds an S3T run"))
        let out = scratch.appendingPathComponent("m").path
        #expect(failure(["finetune", "--data", data, "--run", out, "--layers", "7"] + Self.arguments)
            .contains("the model has 6 layers"))
        #expect(failure(["finetune", "--data", data, "--run", out, "--layers", "0"] + Self.arguments)
            .contains("--layers 0"))
        try E2E.lethe(["finetune", "--data", data, "--run", out, "--layers", "1"] + Self.arguments)
        #expect(failure(["finetune", "--data", data, "--run", out, "--layers", "3"] + Self.arguments)
            .contains("layers_per_block"))
    }
}
