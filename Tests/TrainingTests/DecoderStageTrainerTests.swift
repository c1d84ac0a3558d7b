import Foundation
import Kernels
import Models
import Planning
import Testing
@testable import Training

/// S3T stages on a tiny random Llama decoder: chunking, determinism, frozen inherited blocks,
/// and that next-token training lowers the loss.
@Suite struct DecoderStageTrainerTests {
    static func model() throws -> LlamaModel {
        let c = try LlamaConfiguration(vocabularySize: 29, hiddenSize: 16, intermediateSize: 24, layerCount: 4,
                                       headCount: 4, kvHeadCount: 2, ropeBase: 10000, rmsEpsilon: 1e-5,
                                       maxPositions: 32)
        return try LlamaModel(weights: LlamaWeights(randomWith: c, seed: 11, scale: 0.3), precision: .fp32)
    }

    /// Letters to ids 1…26, anything else to 27: a tokenizer a test can reason about.
    static func tokenize(_ text: String) -> [Int] {
        text.lowercased().unicodeScalars.map { s in
            (97...122).contains(Int(s.value)) ? Int(s.value) - 96 : 27
        }
    }

    static let dataset = Dataset(examples: [
        ("a", "the cat sat on the mat"), ("b", "a dog ran in the park"), ("c", "the cat sat on the mat again"), ("d", "x"),
    ].map { Example(id: $0.0, text: $0.1, label: "") }, source: "toy", sha256: "")

    static func settings(epochs: Int = 2, threads: Int = 1) -> TrainingSettings {
        var s = TrainingSettings(epochs: epochs, rank: 2, alpha: 4, targets: ["q_proj", "v_proj", "down_proj"],
                                 layersPerBlock: 1, learningRate: 5e-2, batchSize: 2, maxTokenCount: 8,
                                 threadCount: threads, baseModel: "", baseModelSHA256: "")
        s.modelKind = .decoder
        return s
    }

    static func job(stage: Int, block: [Int], inherited: [NamedTensor] = [], ids: [String] = ["a", "b", "c", "d"]) -> StageJob {
        let lineage = StageLineage(shard: 0, sequences: [0], stage: stage, prefixSlices: Array(0 ..< stage),
                                   prefixSliceHashes: (0 ..< stage).map { "h\($0)" }, blockLayers: block)
        return StageJob(lineage: lineage, seed: 42 + UInt64(stage), exampleIDs: ids, inheritedAdapters: inherited,
                        inheritedHead: nil, description: "shard 0 stage \(stage)")
    }

    func trainer(_ settings: TrainingSettings = Self.settings()) throws -> DecoderStageTrainer {
        try DecoderStageTrainer(model: try Self.model(), settings: settings, dataset: Self.dataset, padID: 0,
                                tokenize: Self.tokenize)
    }

    @Test func chunksDropRemaindersWithoutAPrediction() {
        #expect(DecoderStageTrainer.chunks(Array(0 ..< 7), length: 3) == [[0, 1, 2], [3, 4, 5]])
        #expect(DecoderStageTrainer.chunks(Array(0 ..< 8), length: 3) == [[0, 1, 2], [3, 4, 5], [6, 7]])
        #expect(DecoderStageTrainer.chunks([5], length: 3).isEmpty)
    }

    @Test func stagesAreDeterministicAndNamedByLayer() throws {
        let first = try trainer().train(Self.job(stage: 1, block: [3])) { _ in }
        let again = try trainer().train(Self.job(stage: 1, block: [3])) { _ in }
        #expect(first.adapters == again.adapters && first.head.isEmpty)
        #expect(first.adapters.map(\.name) == ["layers.3.q_proj/lora_A", "layers.3.q_proj/lora_B",
                                                "layers.3.v_proj/lora_A", "layers.3.v_proj/lora_B",
                                                "layers.3.down_proj/lora_A", "layers.3.down_proj/lora_B"])
        #expect(first.adapters.contains { $0.name.hasSuffix("lora_B") && $0.values.contains { $0 != 0 } }, "B moved off zero")
        #expect(first.examplesSeen == 2 * 4 && first.trainingLoss.isFinite)
        // Two threads: groups of sequences, the same bits every time (another count sums in another order).
        let two = try trainer(Self.settings(threads: 2)).train(Self.job(stage: 1, block: [3])) { _ in }
        let twoAgain = try trainer(Self.settings(threads: 2)).train(Self.job(stage: 1, block: [3])) { _ in }
        #expect(two.adapters == twoAgain.adapters)
        // Stage 2 trains only its block, with stage 1's above it.
        let second = try trainer().train(Self.job(stage: 2, block: [2], inherited: first.adapters)) { _ in }
        #expect(Set(second.adapters.compactMap { StageCheckpoint.layerIndex(ofAdapter: $0.name) }) == [2])
        let third = try trainer().train(Self.job(stage: 2, block: [2], inherited: first.adapters)) { _ in }
        #expect(second.adapters == third.adapters)
        // The inherited block changes the result: it is active in the forward pass.
        let alone = try trainer().train(Self.job(stage: 2, block: [2])) { _ in }
        #expect(alone.adapters != second.adapters)
    }

    @Test func frozenLayersDoNotMove() throws {
        let model = try Self.model()
        let adapter = try DecoderStageTrainer.adapter(for: model, settings: Self.settings(), tensors: [], extraLayers: [1, 2],
                                                      seed: 3)
        adapter.frozenLayers = [2]
        for p in adapter.parameters { for j in 0 ..< p.gradient.count { p.gradient[j] = 0.5 } }
        let before = adapter.parameters.map(\.value.values)
        adapter.step(1, optimizer: AdamW.Configuration(learningRate: 0.1, weightDecay: 0.01, maxGradientNorm: nil))
        for (p, old) in zip(adapter.parameters, before) {
            let layer = LlamaAdapter.layer(of: p)
            #expect((p.value.values == old) == (layer == 2), "\(p.name)")
        }
    }

    @Test func trainingLowersTheNextTokenLoss() throws {
        var epochLosses: [Int: Double] = [:]
        _ = try trainer(Self.settings(epochs: 6)).train(Self.job(stage: 1, block: [3], ids: ["a", "c"])) { p in
            epochLosses[p.epoch] = p.loss
        }
        #expect(epochLosses.count == 6)
        #expect(epochLosses[6]! < epochLosses[1]!, "\(epochLosses.sorted { $0.key < $1.key })")
    }

    @Test func anUnknownExampleOrTargetIsRefused() throws {
        #expect(throws: TrainingError.self) { try trainer().train(Self.job(stage: 1, block: [3], ids: ["zz"])) { _ in } }
        var bad = Self.settings()
        bad.targets = ["attention.self.query"]
        #expect(throws: TrainingError.self) { try bad.validate() }
    }
}
