import Foundation
import Kernels
import Support
import Testing
@testable import Models
@testable import Planning
@testable import Training

/// Real MiniLM, a small slice of BBC headlines: determinism, the activation cache, learning.
@Suite(.serialized) struct ClassifierTrainerTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let encoder: MiniLMEncoder? = try? MiniLMEncoder(directory: root.path + "/Checkpoints/base/all-MiniLM-L6-v2")

    static func setup(layers: [Int], targets: [LoRATarget] = [.query, .value], dropout: Float = 0,
                      count: Int = 40) throws -> (LoRAClassifier, [TrainingExample]) {
        let encoder = try #require(Self.encoder)
        let data = try Dataset.read(from: root.appendingPathComponent("Datasets/bbc-news/train.jsonl"))
        let examples = Array(data.examples.prefix(count * 10).enumerated().filter { $0.offset % 10 == 0 }.map(\.element))
        let labels = data.labelVocabulary
        let lora = try LoRAConfiguration(rank: 4, alpha: 8, dropout: dropout, targets: targets)
        let model = try LoRAClassifier(encoder: encoder, lora: lora, adapterLayers: layers, classCount: labels.count,
                                       seed: 11)
        return (model, try TextField.text.trainingExamples(examples, labels: labels, model: model))
    }

    static func weights(_ model: LoRAClassifier) -> [Float] {
        var all: [Float] = []
        for l in model.adapters.keys.sorted() {
            for (_, a) in model.adapters[l]!.sorted(by: { $0.key < $1.key }) { all += a.loraA.values + a.loraB.values }
        }
        return all + model.head.weight.values + model.head.bias.values
    }

    static let config = TrainingConfiguration(epochCount: 2, batchSize: 8, learningRate: 2e-3, seed: 5, threadCount: 1)

    @Test func sameSeedAndThreadsGiveBitIdenticalWeights() throws {
        var runs: [[Float]] = []
        for _ in 0..<2 {
            let (model, examples) = try Self.setup(layers: [4, 5], dropout: 0.1)
            _ = try ClassifierTrainer(model: model, trainableLayers: [4, 5], configuration: Self.config).train(examples)
            runs.append(Self.weights(model))
        }
        #expect(runs[0] == runs[1])
        let (fresh, _) = try Self.setup(layers: [4, 5], dropout: 0.1)
        #expect(Self.weights(fresh) != runs[0], "training changed nothing")
        // A different seed gives different weights.
        let (other, examples) = try Self.setup(layers: [4, 5], dropout: 0.1)
        var changed = Self.config; changed.seed = 6
        _ = try ClassifierTrainer(model: other, trainableLayers: [4, 5], configuration: changed).train(examples)
        #expect(Self.weights(other) != runs[0])
    }

    @Test func activationCacheMatchesUncachedTraining() throws {
        var results: [([Float], TrainingReport)] = []
        for cached in [true, false] {
            let (model, examples) = try Self.setup(layers: [5])
            var c = Self.config; c.usesActivationCache = cached
            let report = try ClassifierTrainer(model: model, trainableLayers: [5], configuration: c).train(examples)
            results.append((Self.weights(model), report))
        }
        // Bit for bit: the frozen layers run every sequence unpadded, in batches of equal length,
        // so their states do not depend on which batch asked for them.
        #expect(results[0].0.map(\.bitPattern) == results[1].0.map(\.bitPattern))
        #expect(results[0].1.epochMeanLosses == results[1].1.epochMeanLosses)
        let cache = try #require(results[0].1.cache)
        let (_, examples) = try Self.setup(layers: [5])
        #expect(cache.layer == 5)
        #expect(cache.exampleCount == examples.count)
        #expect(cache.byteCount == examples.reduce(0) { $0 + $1.ids.count * 384 * 4 })
        // Filled before the first step, so both epochs' lookups hit.
        #expect(cache.missCount == 0 && cache.hitCount == 2 * examples.count)
    }

    /// The stages of a shard share the frozen layers' states: a trainer whose states were computed
    /// by another trainer, from a boundary below or above, trains the same bits as one alone.
    @Test func sharedBaseStatesGiveTheBitsOfATrainerAlone() throws {
        let store = BaseStates(byteBudget: 1 << 30, keepFrom: 3)
        let (_, examples) = try Self.setup(layers: [5], count: 24)
        let distinct = Set(examples.map(\.ids)).count
        /// A fresh model trained on `layer` (adapters from there up), with the store or alone.
        func trained(_ layer: Int, _ subset: [TrainingExample], shared: Bool) throws -> [UInt32] {
            let (model, _) = try Self.setup(layers: Array(layer...5), count: 24)
            _ = try ClassifierTrainer(model: model, trainableLayers: [layer], configuration: Self.config,
                                      baseStates: shared ? store : nil).train(subset)
            return Self.weights(model).map(\.bitPattern)
        }
        // From below: layer 3's inputs for half of the examples; layer 5's for all, half of them
        // computed from those, keeping layers 3 and 4 on the way.
        _ = try trained(3, Array(examples.prefix(12)), shared: true)
        #expect(store.count(atLayer: 3) == 12 && store.count(atLayer: 4) == 0)
        #expect(try trained(5, examples, shared: true) == trained(5, examples, shared: false))
        #expect(store.count(atLayer: 3) == distinct && store.count(atLayer: 4) == distinct)
        // From above: layer 4's inputs, every one computed by the layer-5 trainer.
        #expect(try trained(4, examples, shared: true) == trained(4, examples, shared: false))
    }

    @Test func cacheRespectsItsByteBudget() throws {
        let (model, examples) = try Self.setup(layers: [5], count: 16)
        var c = Self.config; c.cacheByteBudget = 40_000
        let report = try ClassifierTrainer(model: model, trainableLayers: [5], configuration: c).train(examples)
        let cache = try #require(report.cache)
        #expect(cache.byteCount <= 40_000 && cache.exampleCount > 0 && cache.exampleCount < examples.count)
        #expect(cache.hitCount + cache.missCount == 2 * examples.count)
    }

    /// A served model lays its adapters out once for inference: its logits keep every bit of
    /// the same model laying them out at each product, and installing adapters again drops
    /// the layout (the new weights are used).
    @Test func adaptersLaidOutOnceForInferenceChangeNoBit() throws {
        let (model, examples) = try Self.setup(layers: [4, 5], targets: LoRATarget.allCases, count: 12)
        var random = SplitMix64(seed: 3)
        for layer in model.adapters.values {
            for adapter in layer.values {
                for i in 0..<adapter.loraB.count { adapter.loraB[i] = Float(Int(random.next() % 2001) - 1000) * 1e-5 }
            }
        }
        let batch = TokenBatch(examples.map(\.ids), padID: model.encoder.tokenizer.padID)
        let perProduct = model.logits(batch, threads: 2).values
        model.prepareForInference()
        #expect(model.logits(batch, threads: 2).values == perProduct)
        #expect(model.logits(batch, threads: 1).values == perProduct)
        // New adapters on layer 5 (B doubled): the prepared layout of the old ones is gone.
        let doubled = model.adapters[5]!.mapValues { old -> LoRAAdapter in
            let copy = LoRAAdapter(inFeatures: old.inFeatures, outFeatures: old.outFeatures, rank: old.rank, seed: 1)
            copy.loraA.copy(from: old.loraA)
            for i in 0..<copy.loraB.count { copy.loraB[i] = 2 * old.loraB[i] }
            return copy
        }
        model.install(doubled, onLayer: 5)
        #expect(model.logits(batch, threads: 2).values != perProduct)
    }

    @Test func frozenActiveAdaptersDoNotChangeAndLossFalls() throws {
        // S3T stage 2: block 1 (layer 5) trained and frozen, block 2 (layer 4) trains, head trains.
        let (model, examples) = try Self.setup(layers: [4, 5])
        let top = model.adapters[5]![.query]!
        for i in 0..<top.loraB.count { top.loraB[i] = Float(i % 7) * 1e-3 }
        let before = top.loraA.values + top.loraB.values
        var c = Self.config; c.epochCount = 4
        let report = try ClassifierTrainer(model: model, trainableLayers: [4], configuration: c).train(examples)
        #expect(top.loraA.values + top.loraB.values == before)
        #expect(model.adapters[4]![.value]!.loraB.values.contains { $0 != 0 })
        #expect(report.epochMeanLosses.last! < report.epochMeanLosses.first!)
        #expect(throws: TrainingError.layerWithoutAdapters(layer: 3)) {
            try ClassifierTrainer(model: model, trainableLayers: [3], configuration: c)
        }
    }
}

extension ClassifierTrainerTests {
    /// Two threads train each batch as two groups of sequences, each group's adapter gradients
    /// in a replica added afterwards: the same bits on every run with two threads (dropout
    /// included), and the same model as one thread up to the order in which rows are summed.
    @Test func threadGroupsAreDeterministicAndTrainTheModelOfOneThread() throws {
        func trained(threads: Int, dropout: Float) throws -> [Float] {
            let (model, examples) = try Self.setup(layers: [3, 4, 5], targets: [.query, .value, .output], dropout: dropout)
            var c = Self.config; c.threadCount = threads
            _ = try ClassifierTrainer(model: model, trainableLayers: [4, 5], configuration: c).train(examples)
            return Self.weights(model)
        }
        let one = try trained(threads: 1, dropout: 0), two = try trained(threads: 2, dropout: 0)
        #expect(try trained(threads: 2, dropout: 0).map(\.bitPattern) == two.map(\.bitPattern))
        #expect(try trained(threads: 2, dropout: 0.1) == trained(threads: 2, dropout: 0.1))
        // Every weight agrees to within a twentieth of one step's learning rate (AdamW divides by
        // √v, so rounding moves weights whose gradients are near zero by more than their last
        // bits); some differ, or the groups never ran. Dropping a group's gradients moves the
        // weights by whole steps.
        let worst = zip(one, two).map { abs($0 - $1) }.max()!
        #expect(worst <= Self.config.learningRate / 20, "largest difference \(worst)")
        #expect(one.map(\.bitPattern) != two.map(\.bitPattern), "two threads summed the gradients as one does")
    }

    /// Groups are consecutive, non-empty, cover the batch, and split its tokens about evenly.
    @Test func groupRangesSplitTheTokensEvenly() {
        let lengths = [30, 2, 2, 2, 2, 2, 30, 30]
        #expect(ClassifierTrainer.groupRanges(lengths: lengths, count: 1) == [0..<8])
        #expect(ClassifierTrainer.groupRanges(lengths: lengths, count: 2) == [0..<6, 6..<8])
        #expect(ClassifierTrainer.groupRanges(lengths: lengths, count: 3) == [0..<3, 3..<7, 7..<8])
        #expect(ClassifierTrainer.groupRanges(lengths: [5, 5, 5], count: 3) == [0..<1, 1..<2, 2..<3])
        #expect(ClassifierTrainer.groupRanges(lengths: [100, 1, 1], count: 3) == [0..<1, 1..<2, 2..<3])
        for count in 1...9 {
            let lengths = (0..<9).map { 3 + ($0 * 7) % 11 }
            let ranges = ClassifierTrainer.groupRanges(lengths: lengths, count: count)
            #expect(ranges.count == count && ranges.allSatisfy { !$0.isEmpty })
            #expect(ranges.first!.lowerBound == 0 && ranges.last!.upperBound == lengths.count)
            #expect(zip(ranges, ranges.dropFirst()).allSatisfy { $0.upperBound == $1.lowerBound })
        }
    }

    /// A diverging run stops at the first non-finite loss with the step and the loss, instead
    /// of training on (and returning) NaN weights.
    @Test func aNonFiniteLossStopsTraining() throws {
        let (model, examples) = try Self.setup(layers: [5])
        var c = Self.config; c.learningRate = 1e30; c.warmupFraction = 0
        #expect {
            _ = try ClassifierTrainer(model: model, trainableLayers: [5], configuration: c).train(examples)
        } throws: { error in
            guard case TrainingError.nonFiniteLoss(_, let step, let loss) = error else { return false }
            return step >= 2 && !loss.isFinite
        }
    }
}

/// Training in bfloat16: the same seed and threads give the same bits, the precision changes
/// the bits (it is really used), and the result is close to float32's.
@Suite(.serialized) struct BFloat16TrainingTests {
    static let encoder: MiniLMEncoder? = try? MiniLMEncoder(
        directory: ClassifierTrainerTests.root.path + "/Checkpoints/base/all-MiniLM-L6-v2", precision: .bf16)

    static func trained(_ encoder: MiniLMEncoder) throws -> [Float] {
        let data = try Dataset.read(from: ClassifierTrainerTests.root.appendingPathComponent("Datasets/bbc-news/train.jsonl"))
        let examples = Array(data.examples.prefix(200).enumerated().filter { $0.offset % 10 == 0 }.map(\.element))
        let lora = try LoRAConfiguration<LoRATarget>(rank: 4, alpha: 8, dropout: 0, targets: [.query, .value, .intermediate])
        let model = try LoRAClassifier(encoder: encoder, lora: lora, adapterLayers: [4, 5],
                                       classCount: data.labelVocabulary.count, seed: 11)
        let training = try TextField.text.trainingExamples(examples, labels: data.labelVocabulary, model: model)
        var config = ClassifierTrainerTests.config
        config.threadCount = 2
        _ = try ClassifierTrainer(model: model, trainableLayers: [4, 5], configuration: config).train(training)
        return ClassifierTrainerTests.weights(model)
    }

    @Test func bf16IsDeterministicAndCloseToFloat32() throws {
        let bf16 = try #require(Self.encoder), fp32 = try #require(ClassifierTrainerTests.encoder)
        #expect(bf16.precision == .bf16 && fp32.precision == .fp32)
        let first = try Self.trained(bf16), second = try Self.trained(bf16), reference = try Self.trained(fp32)
        #expect(first == second)
        #expect(first != reference, "bf16 training gave float32's bits: the precision is not used")
        // Close to float32: the weights moved the same way (relative distance well below 1).
        let distance = zip(first, reference).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }.squareRoot()
        let size = reference.reduce(0.0) { $0 + Double($1 * $1) }.squareRoot()
        #expect(distance / size < 0.05, "bf16 weights differ from float32 by \(distance / size) of their norm")
    }
}
