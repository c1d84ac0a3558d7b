/// What a stage trainer is given: which block to train, on which examples, from which state.
public struct StageJob: Sendable {
    public let lineage: StageLineage
    /// The stage's seed (`StageKey.seed(runSeed:shard:)`): adapter initialisation, shuffles, dropout.
    public let seed: UInt64
    /// Ids of the examples of slices π1..πi, slice by slice in prefix order, each slice sorted.
    public let exampleIDs: [String]
    /// Adapters trained by earlier stages of the prefix. Those on `lineage.blockLayers` are the
    /// starting values of trainable adapters (SISA continues from the previous stage); all
    /// others are frozen and active. Trainable adapters without a starting value are fresh
    /// (B = 0, A drawn from `seed`).
    public let inheritedAdapters: [NamedTensor]
    /// The head of the previous stage, nil for stage 1 (a fresh head drawn from `seed`).
    public let inheritedHead: [NamedTensor]?
    /// The stage as messages name it: "shard K stage I" (e.g. in `TrainingError.nonFiniteLoss`).
    public let description: String

    public init(lineage: StageLineage, seed: UInt64, exampleIDs: [String], inheritedAdapters: [NamedTensor],
                inheritedHead: [NamedTensor]?, description: String) {
        self.lineage = lineage; self.seed = seed; self.exampleIDs = exampleIDs
        self.inheritedAdapters = inheritedAdapters; self.inheritedHead = inheritedHead
        self.description = description
    }
}

/// What a stage trainer returns: the adapters of the trained block (PEFT names, relative to
/// the model: "encoder.layer.N.<module>/lora_A"), the head, and what it measured.
public struct StageResult: Sendable {
    public var adapters: [NamedTensor]
    public var head: [NamedTensor]
    /// Mean loss over the last epoch.
    public var trainingLoss: Double
    public var examplesSeen: Int

    public init(adapters: [NamedTensor], head: [NamedTensor], trainingLoss: Double, examplesSeen: Int) {
        self.adapters = adapters; self.head = head
        self.trainingLoss = trainingLoss; self.examplesSeen = examplesSeen
    }
}

/// Progress of one stage, reported by the trainer after every step.
public struct StageProgress: Sendable {
    public var epoch: Int
    public var epochCount: Int
    public var step: Int
    public var stepCount: Int
    /// Running mean loss of the current epoch.
    public var loss: Double
    public var examplesDone: Int

    public init(epoch: Int, epochCount: Int, step: Int, stepCount: Int, loss: Double, examplesDone: Int) {
        self.epoch = epoch; self.epochCount = epochCount; self.step = step
        self.stepCount = stepCount; self.loss = loss; self.examplesDone = examplesDone
    }
}

/// Trains one stage deterministically: the same job (seed included) and thread count must
/// give bit-identical tensors. Reports progress through the callback; never prints.
public protocol StageTrainer {
    func train(_ job: StageJob, progress: (StageProgress) -> Void) throws -> StageResult
}
