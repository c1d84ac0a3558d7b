import Approximate
import Kernels
import Models
import Planning
import Support

/// Trains S3T (and SISA) stages of a decoder run: LoRA blocks on the top layers of a frozen
/// Llama decoder (SmolLM2), next-token loss on the texts of the stage's slices.
///
/// Each example's text is tokenized once (no BOS) and cut into chunks of at most
/// `settings.maxTokenCount` tokens, as `lethe unlearn` chunks its data (a remainder of fewer than
/// two tokens has no prediction and is dropped). A stage trains one LoRA adapter that covers the
/// inherited layers and its block: the inherited pairs are loaded and frozen (S3T: the blocks of
/// earlier stages, active above the block) or continue training (SISA), the block's pairs start
/// fresh from the stage seed (B = 0). Each epoch visits the chunks in a permutation drawn from
/// the stage seed; the batches run through the epochs' permutations back to back. AdamW with the
/// run's weight decay and clipping, warmup then linear decay. The loss is the mean next-token
/// NLL over the batch's real tokens. Batches are cut into groups of sequences, one per thread
/// (`Unlearner`), so the same seed and thread count give the same bits.
public final class DecoderStageTrainer: StageTrainer {
    public let model: LlamaModel
    public let settings: TrainingSettings
    let padID: Int
    private let chunksByID: [String: [[Int]]]

    /// Tokenizes and chunks every example of `dataset` once.
    public init(model: LlamaModel, settings: TrainingSettings, dataset: Dataset, padID: Int,
                tokenize: (String) -> [Int]) throws {
        guard settings.modelKind == .decoder else {
            throw TrainingError.invalidValue(field: "model_kind", value: settings.modelKind.rawValue,
                                             reason: "the decoder stage trainer trains decoder runs")
        }
        guard let field = TextField(rawValue: settings.textField) else {
            throw TrainingError.invalidValue(field: "text-field", value: settings.textField, reason: "use text or text+lead")
        }
        self.model = model; self.settings = settings; self.padID = padID
        var byID: [String: [[Int]]] = [:]
        for example in dataset.examples {
            byID[example.id] = Self.chunks(tokenize(field.input(of: example)), length: settings.maxTokenCount)
        }
        chunksByID = byID
    }

    /// `ids` cut into consecutive chunks of at most `length` tokens, each of at least two.
    public static func chunks(_ ids: [Int], length: Int) -> [[Int]] {
        stride(from: 0, to: ids.count, by: length).compactMap { start in
            let chunk = Array(ids[start ..< min(start + length, ids.count)])
            return chunk.count >= 2 ? chunk : nil
        }
    }

    /// The LoRA configuration of a run's settings on `layers`.
    public static func adapterConfiguration(_ settings: TrainingSettings, layers: [Int]) throws -> LlamaAdapterConfiguration {
        let targets = try settings.targets.map { name -> LlamaProjection in
            guard let target = LlamaProjection(rawValue: name) else {
                throw TrainingError.invalidValue(field: "targets", value: name, reason: "a decoder's modules are "
                    + LlamaProjection.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return target
        }
        return try LlamaAdapterConfiguration(rank: settings.rank, alpha: settings.alpha, targets: targets,
                                             layers: layers, useRSLoRA: settings.useRSLoRA)
    }

    /// The stage-file name of an adapter parameter ("layers.L.q_proj.lora_A" → "layers.L.q_proj/lora_A").
    static func stageName(_ parameter: String) -> String {
        guard let dot = parameter.lastIndex(of: ".") else { return parameter }
        return parameter[..<dot] + "/" + parameter[parameter.index(after: dot)...]
    }

    /// An adapter over every layer `tensors` name and `extraLayers`, with `tensors` loaded
    /// (stage-file names); the other pairs fresh from `seed`.
    public static func adapter(for model: LlamaModel, settings: TrainingSettings, tensors: [NamedTensor],
                               extraLayers: [Int] = [], seed: UInt64) throws -> LlamaAdapter {
        let layers = Set(tensors.compactMap { StageCheckpoint.layerIndex(ofAdapter: $0.name) }).union(extraLayers)
        let adapter = LlamaAdapter(configuration: try adapterConfiguration(settings, layers: layers.sorted()),
                                   weights: model.weights, seed: seed)
        try load(tensors, into: adapter, settings: settings)
        return adapter
    }

    /// Copies `tensors` (stage-file names) into the matching parameters of `adapter`.
    static func load(_ tensors: [NamedTensor], into adapter: LlamaAdapter, settings: TrainingSettings) throws {
        let byName = Dictionary(uniqueKeysWithValues: adapter.parameters.map { (stageName($0.name), $0) })
        for tensor in tensors {
            guard let p = byName[tensor.name] else {
                throw TrainingError.fileInvalid(file: tensor.name, reason: "not an adapter of this run's targets ("
                    + settings.targets.joined(separator: ", ") + ")")
            }
            guard p.value.shape == tensor.shape else {
                throw TrainingError.fileInvalid(file: tensor.name, reason: "shape \(tensor.shape), expected \(p.value.shape)")
            }
            for i in 0 ..< tensor.values.count { p.value[i] = tensor.values[i] }
        }
    }

    public func train(_ job: StageJob, progress: (StageProgress) -> Void) throws -> StageResult {
        var chunks: [[Int]] = []
        for id in job.exampleIDs {
            guard let c = chunksByID[id] else {
                throw TrainingError.invalidValue(field: "example", value: id, reason: "the plan names an "
                    + "example the dataset does not contain; train with the dataset the plan was made from")
            }
            chunks += c
        }
        guard !chunks.isEmpty else { throw TrainingError.noExamples }
        let block = job.lineage.blockLayers
        let epochs = settings.epochs, batch = min(settings.batchSize, UnlearningConfiguration.Limits.batchSize.upperBound)
        // The epochs' permutations back to back; step k takes chunks k·b ..< (k + 1)·b of it.
        var order: [[Int]] = []
        var rng = SplitMix64(seed: job.seed ^ 0xDEC0_DE5E)
        for _ in 0 ..< epochs {
            var permutation = Array(chunks.indices)
            rng.shuffle(&permutation)
            order += permutation.map { chunks[$0] }
        }
        let steps = (order.count + batch - 1) / batch
        let inherited = Set(job.inheritedAdapters.compactMap { StageCheckpoint.layerIndex(ofAdapter: $0.name) })
        let layers = inherited.union(block).sorted()
        let configuration = try UnlearningConfiguration(
            learningRate: settings.learningRate, steps: steps, batchSize: batch, seed: job.seed,
            maxGradientNorm: settings.gradientClipNorm, adapter: try Self.adapterConfiguration(settings, layers: layers))
        if BLASRuntime.threadCount != settings.threadCount { BLASRuntime.setThreadCount(settings.threadCount) }
        let unlearner = try Unlearner(model: model, objective: .fineTune, configuration: configuration, forget: order,
                                      padID: padID, threads: settings.threadCount)
        try Self.load(job.inheritedAdapters, into: unlearner.adapter, settings: settings)
        unlearner.adapter.frozenLayers = inherited.subtracting(block)
        // The layers below the stage's block are the frozen base: run them once per chunk, not once per epoch.
        try unlearner.cacheBaseStreams()
        let schedule = LearningRateSchedule(peak: settings.learningRate,
                                            warmupStepCount: Int((Float(steps) * settings.warmupFraction).rounded()),
                                            totalStepCount: steps)
        let optimizer = AdamW.Configuration(learningRate: settings.learningRate, weightDecay: settings.weightDecay,
                                            maxGradientNorm: settings.gradientClipNorm)
        var epochLoss = 0.0, epochSteps = 0, epoch = 0
        for k in 0 ..< steps {
            unlearner.adapter.zeroGradients()
            let report: UnlearningStep
            do { report = try unlearner.accumulate(step: k) } catch ApproximateError.nonFiniteLoss(let step, let loss) {
                throw TrainingError.nonFiniteLoss(stage: job.description, step: step, loss: loss)
            }
            unlearner.adapter.step(k + 1, optimizer: optimizer, learningRate: schedule.rate(at: k))
            // The epoch a step belongs to: the one its first chunk comes from.
            let stepEpoch = min(k * batch / chunks.count, epochs - 1)
            if stepEpoch != epoch { epochLoss = 0; epochSteps = 0; epoch = stepEpoch }
            epochLoss += Double(report.loss); epochSteps += 1
            progress(StageProgress(epoch: epoch + 1, epochCount: epochs, step: k + 1, stepCount: steps,
                                   loss: epochLoss / Double(epochSteps),
                                   examplesDone: min((k + 1) * batch, order.count) * job.exampleIDs.count / max(chunks.count, 1)))
        }
        let blockSet = Set(block)
        let adapters = unlearner.adapter.parameters
            .filter { LlamaAdapter.layer(of: $0).map(blockSet.contains) ?? false }
            .map { NamedTensor(name: Self.stageName($0.name), shape: $0.value.shape, values: $0.value.values) }
        return StageResult(adapters: adapters, head: [], trainingLoss: epochLoss / Double(epochSteps),
                           examplesSeen: epochs * job.exampleIDs.count)
    }
}
