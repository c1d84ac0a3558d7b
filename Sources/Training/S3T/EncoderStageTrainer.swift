import Kernels
import Models
import Planning

/// Trains S3T (and SISA) stages on the real encoder with `ClassifierTrainer`.
///
/// For a stage job it builds a `LoRAClassifier` with adapters on the inherited layers and on
/// the stage's block, copies the inherited tensors in (blocks of earlier stages stay active
/// and frozen; for SISA they are the starting values of the trainable adapters), loads the
/// previous stage's head, and trains the block and the head on the stage's examples with the
/// stage's seed. The activation cache sits below the block and is shared by the stages of a
/// shard (`BaseStates`), so the frozen base layers run about once per example and shard, and
/// backpropagation stops at the block. Stages are trained one at a time.
public final class EncoderStageTrainer: StageTrainer {
    public let encoder: MiniLMEncoder
    public let lora: LoRAConfiguration<LoRATarget>
    public let settings: TrainingSettings
    public let labels: LabelVocabulary
    private let examplesByID: [String: TrainingExample]
    /// The frozen base layers' states of the shard being trained (examples of different shards
    /// never meet, so it is emptied when the shard changes).
    private let baseStates: BaseStates
    private var baseStatesShard: Int?

    /// Tokenizes every example of `dataset` once (`settings.textField` picks the input).
    /// `lowestBlockLayer`: the lowest layer any stage of the run trains (the states entering the
    /// layers from there up are worth keeping); 0 when unknown.
    public init(encoder: MiniLMEncoder, settings: TrainingSettings, labels: LabelVocabulary,
                dataset: Dataset, lowestBlockLayer: Int = 0) throws {
        guard let field = TextField(rawValue: settings.textField) else {
            throw TrainingError.invalidValue(field: "text-field", value: settings.textField,
                                             reason: "use text or text+lead")
        }
        guard labels.count >= 2 else { throw TrainingError.tooFewLabels(names: labels.names) }
        self.encoder = encoder; self.settings = settings; self.labels = labels
        lora = try Self.loraConfiguration(settings)
        var byID: [String: TrainingExample] = [:]
        for example in dataset.examples {
            guard let label = labels.index(of: example.label) else {
                throw TrainingError.unknownLabel(id: example.id, label: example.label)
            }
            byID[example.id] = TrainingExample(ids: encoder.encode(field.input(of: example),
                                                                   maxLength: settings.maxTokenCount),
                                               label: label)
        }
        examplesByID = byID
        baseStates = BaseStates(byteBudget: TrainingConfiguration.defaultCacheByteBudget, keepFrom: lowestBlockLayer)
    }

    /// The adapter configuration of a run's settings.
    public static func loraConfiguration(_ settings: TrainingSettings) throws -> LoRAConfiguration<LoRATarget> {
        let targets = try settings.targets.map { name -> LoRATarget in
            guard let target = LoRATarget(rawValue: name) else {
                throw TrainingError.invalidValue(field: "targets", value: name, reason: "known modules are "
                    + LoRATarget.allCases.map(\.rawValue).joined(separator: ", "))
            }
            return target
        }
        return try LoRAConfiguration(rank: settings.rank, alpha: settings.alpha, targets: targets,
                                     useRSLoRA: settings.useRSLoRA)
    }

    public func train(_ job: StageJob, progress: (StageProgress) -> Void) throws -> StageResult {
        let examples = try job.exampleIDs.map { id -> TrainingExample in
            guard let example = examplesByID[id] else {
                throw TrainingError.invalidValue(field: "example", value: id, reason: "the plan names an "
                    + "example the dataset does not contain; train with the dataset the plan was made from")
            }
            return example
        }
        let block = job.lineage.blockLayers
        let model = try ShardModel.classifier(encoder: encoder, lora: lora, settings: settings,
                                              classCount: labels.count, adapters: job.inheritedAdapters,
                                              head: job.inheritedHead, extraLayers: block, seed: job.seed)
        let configuration = TrainingConfiguration(
            epochCount: settings.epochs, batchSize: settings.batchSize, learningRate: settings.learningRate,
            warmupFraction: settings.warmupFraction, weightDecay: settings.weightDecay,
            maxGradientNorm: settings.gradientClipNorm > 0 ? settings.gradientClipNorm : nil,
            seed: job.seed, threadCount: settings.threadCount)
        if baseStatesShard != job.lineage.shard { baseStates.removeAll(); baseStatesShard = job.lineage.shard }
        let trainer = try ClassifierTrainer(model: model, trainableLayers: block, trainsHead: true,
                                            configuration: configuration, baseStates: baseStates)
        var epochLoss = 0.0, epochSteps = 0, lastEpoch = 0
        let report: TrainingReport
        do {
            report = try trainer.train(examples) { p in
                if p.epoch != lastEpoch { epochLoss = 0; epochSteps = 0; lastEpoch = p.epoch }
                epochLoss += Double(p.batchLoss); epochSteps += 1
                progress(StageProgress(epoch: p.epoch, epochCount: p.epochCount, step: p.step, stepCount: p.stepCount,
                                       loss: epochLoss / Double(epochSteps), examplesDone: p.examplesSeen))
            }
        } catch TrainingError.nonFiniteLoss(_, let step, let loss) {
            throw TrainingError.nonFiniteLoss(stage: job.description, step: step, loss: loss)
        }
        return StageResult(adapters: ShardModel.adapterTensors(of: model, layers: block),
                           head: ShardModel.headTensors(of: model),
                           trainingLoss: Double(report.epochMeanLosses.last ?? .nan),
                           examplesSeen: report.examplesSeen)
    }
}
