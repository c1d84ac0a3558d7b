import Forgetting
import CommandSupport
import Foundation
import Models
import Planning
import Store
import Support
import Training

/// The costly half of `lethe bench forget --accuracy`: trains S3T (B = 3) and SISA (B = 1) runs
/// of BBC News at the demo's settings (Tools/demo.sh), measures ensemble accuracy on the test
/// split after 10, 50 and 100 random deletions (truncation only, no retraining, as in the S3T
/// paper's deletion experiments), then times a SISA shard retrain (`Retrainer` on one shard
/// whose every slice was hit) and a full retrain (the `full` baseline on the same plan).
struct ForgetAccuracyExperiment {
    struct Point: Encodable {
        var strategy: String
        var budget: Int
        var deletions: Int
        /// nil when every shard is dead (nothing is served).
        var accuracy: Double?
        var liveShards: Int
        enum CodingKeys: String, CodingKey {
            case strategy, budget, deletions, accuracy, liveShards = "live_shards"
        }
    }

    struct Result: Encodable {
        var points: [Point]
        var trainSeconds: [String: Double]
        var sisaShardRetrainSeconds: Double
        var sisaShardRetrainStages: Int
        var fullRetrainSeconds: Double
        enum CodingKeys: String, CodingKey {
            case points, trainSeconds = "train_seconds", sisaShardRetrainSeconds = "sisa_shard_retrain_seconds"
            case sisaShardRetrainStages = "sisa_shard_retrain_stages", fullRetrainSeconds = "full_retrain_seconds"
        }
    }

    let trainData: String
    let testData: String
    let shardCount: Int
    let sliceCount: Int
    let deletionCounts: [Int]
    let seed: UInt64
    let threads: Int
    let modelDirectory: String

    /// Tools/demo.sh: r 16, α 32 on q k v o up down, blocks of 1 layer, 3 epochs at lr 3e-3.
    func settings(_ strategy: TrainingStrategy, modelSHA256: String) -> TrainingSettings {
        TrainingSettings(strategy: strategy, epochs: 3, rank: 16, alpha: 32,
                         targets: ["attention.self.query", "attention.self.key", "attention.self.value",
                                   "attention.output.dense", "intermediate.dense", "output.dense"],
                         layersPerBlock: 1, learningRate: 3e-3, seed: 0, threadCount: threads,
                         baseModel: modelDirectory, baseModelSHA256: modelSHA256)
    }

    func run(in workspace: URL, say: (String) -> Void) throws -> Result {
        let train = try Dataset.read(from: URL(fileURLWithPath: trainData), source: trainData)
        let test = try Dataset.read(from: URL(fileURLWithPath: testData), source: testData)
        let encoder = try MiniLMEncoder(directory: modelDirectory)
        let modelSHA256 = try FileDigest.sha256(of: URL(fileURLWithPath: modelDirectory + "/model.safetensors")).hex
        let clock = ContinuousClock()
        var generator = SplitMix64(seed: seed)
        let deletionOrder = train.examples.map(\.id).shuffled(using: &generator)
        var points: [Point] = []
        var trainSeconds: [String: Double] = [:]
        var runs: [TrainingStrategy: (URL, Plan)] = [:]

        for (strategy, budget) in [(TrainingStrategy.s3t, 3), (.sisa, 1)] {
            let run = workspace.appendingPathComponent(strategy.rawValue)
            let plan = try Planner.makePlan(for: train, parameters: PlanParameters(
                shardCount: shardCount, sliceCount: sliceCount, budget: budget, seed: 0))
            try FileManager.default.createDirectory(at: run, withIntermediateDirectories: true)
            try plan.save(to: Plan.url(inRun: run))
            let runner = try makeRunner(run, plan: plan, train: train, encoder: encoder,
                                        settings: settings(strategy, modelSHA256: modelSHA256))
            say("training \(strategy.rawValue) (B = \(budget)) …")
            trainSeconds[strategy.rawValue] = try clock.measure {
                for shard in 0..<plan.shardCount {
                    let schedule = try StageSchedule(
                        shard: shard, sequences: plan.sequences(of: shard),
                        sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                        layerCount: encoder.configuration.layerCount, layersPerBlock: 1, strategy: strategy)
                    try RunAccess.guarded(run).trainAndPublish(schedule, runner: runner,
                                                               members: { plan.currentMembers(shard: shard, slice: $0) },
                                                               gate: RunAccess.guarded(run).stageGate(tombstones: []),
                                                               events: { _ in })
                }
            }.seconds
            var done = 0
            for count in [0] + deletionCounts {
                let requests = deletionOrder[done..<count].map { ForgetRequest(target: .example($0)) }
                if !requests.isEmpty {
                    _ = try Forgetter(run: run).forget(requests, nowMilliseconds: Int64(count))
                }
                done = count
                let (accuracy, live) = try evaluate(run, plan: plan, test: test, encoder: encoder)
                points.append(Point(strategy: strategy.rawValue, budget: budget, deletions: count,
                                    accuracy: accuracy, liveShards: live))
                say("  \(strategy.rawValue) after \(count) deletions: "
                    + (accuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "all shards dead") + ", \(live) live shard(s)")
            }
            runs[strategy] = (run, plan)
        }

        // A SISA shard retrain: shard 0 after the deletions (every slice hit: all stages retrain).
        let (sisaRun, sisaPlan) = try runs[.sisa] ?? { throw ForgettingError.runFile(file: "sisa", reason: "missing run") }()
        let sisaRunner = try makeRunner(sisaRun, plan: sisaPlan, train: train, encoder: encoder,
                                        settings: settings(.sisa, modelSHA256: modelSHA256))
        say("retraining SISA shard 0 …")
        var records: [RetrainRecord] = []
        let shardSeconds = try clock.measure {
            records = try Retrainer(run: sisaRun, runner: sisaRunner, layerCount: encoder.configuration.layerCount)
                .retrain(shards: [0], nowMilliseconds: { 0 })
        }.seconds

        let fullSeconds = try trainFullBaseline(in: workspace, plan: sisaPlan, train: train, encoder: encoder,
                                                deleted: Set(deletionOrder.prefix(deletionCounts.max() ?? 0)),
                                                modelSHA256: modelSHA256, say: say)
        return Result(points: points, trainSeconds: trainSeconds, sisaShardRetrainSeconds: shardSeconds,
                      sisaShardRetrainStages: records.reduce(0) { $0 + $1.trainedStages.count },
                      fullRetrainSeconds: fullSeconds)
    }

    /// A full retrain: the `full` baseline (one adapter set on all surviving data); its seconds.
    private func trainFullBaseline(in workspace: URL, plan sisaPlan: Plan, train: Dataset, encoder: MiniLMEncoder,
                                   deleted: Set<String>, modelSHA256: String, say: (String) -> Void) throws -> Double {
        let clock = ContinuousClock()
        let fullRun = workspace.appendingPathComponent("full")
        try FileManager.default.createDirectory(at: fullRun, withIntermediateDirectories: true)
        try sisaPlan.save(to: Plan.url(inRun: fullRun))
        let fullRunner = try makeRunner(fullRun, plan: sisaPlan, train: train, encoder: encoder,
                                        settings: settings(.full, modelSHA256: modelSHA256))
        let ids = train.examples.map(\.id).filter { !deleted.contains($0) }
        let layerCount = encoder.configuration.layerCount
        let schedule = StageSchedule.full(dataHash: SliceHash.of(ids: ids),
                                          adapterLayers: Array(layerCount - sliceCount ..< layerCount))
        say("training the full baseline …")
        return try clock.measure {
            try RunAccess.guarded(fullRun).trainAndPublish(schedule, runner: fullRunner,
                                                           members: { _ in ids.sorted(by: UTF8Order.precedes) },
                                                           gate: RunAccess.guarded(fullRun).stageGate(tombstones: []),
                                                           events: { _ in })
        }.seconds
    }

    private func makeRunner(_ run: URL, plan: Plan, train: Dataset, encoder: MiniLMEncoder,
                            settings: TrainingSettings) throws -> S3TRunner {
        let layout = RunLayout(directory: run)
        try settings.save(to: layout.settingsURL)
        let trainer = try EncoderStageTrainer(encoder: encoder, settings: settings, labels: plan.labels, dataset: train)
        return S3TRunner(layout: layout, settings: settings, trainer: trainer, labels: plan.labels.names, clock: { 0 })
    }

    /// Ensemble accuracy of the served composition (nil when nothing is served) and live shards.
    private func evaluate(_ run: URL, plan: Plan, test: Dataset, encoder: MiniLMEncoder) throws -> (Double?, Int) {
        let layout = RunLayout(directory: run)
        let composition = try ServedComposition.load(from: layout.servedURL)
        guard !composition.liveShards.isEmpty else { return (nil, 0) }
        let ensemble = try RunEnsemble(layout: layout, composition: composition, labels: plan.labels, encoder: encoder)
        let texts = test.examples.map(ensemble.input)
        let truth = test.examples.map { plan.labels.index(of: $0.label) ?? -1 }
        let mean = try ensemble.ensembleLogits(texts, threads: threads)
        return (ClassificationMetrics.accuracy(predicted: mean.map(ClassificationMetrics.argmax), truth: truth),
                ensemble.members.count)
    }
}
