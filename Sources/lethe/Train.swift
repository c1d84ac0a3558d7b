import ArgumentParser
import Crypto
import Foundation
import Kernels
import Models
import Planning
import Training

extension TrainingStrategy: ExpressibleByArgument {}

/// `lethe train`: trains the stages of a planned run (S3T, or the SISA / full baselines).
struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train the adapter blocks of a planned run (S3T stages, or the SISA/full baselines).",
        discussion: """
            For each shard and each of its sequences π, stage i trains LoRA block i counted from \
            the top (--layers-per-block layers) on slices π1..πi together with the head; the base \
            model and the other blocks are frozen. Stages shared by several sequences (equal \
            prefixes) are trained once. Each stage is committed atomically to \
            RUN/stages/shard-K/stage-I-<key>.h5; an interrupted run resumes where it stopped and \
            gives bit-identical files. Settings are saved in RUN/train.json on the first call and \
            reused after; options that contradict them are refused.

            --strategy sisa needs a plan with budget 1 (every adapter trainable at each stage); \
            --strategy full trains one model on all the data of the plan.

            Examples:
              lethe train --run Checkpoints/runs/demo --epochs 3 --rank 16
              lethe train --run Checkpoints/runs/demo --shard 0 --shard 1   # another process: --shard 2 --shard 3
            """)

    @Option(name: .customLong("run"), help: "Run directory holding plan.h5 (from `lethe plan`).")
    var runDirectory: String

    @Option(name: .customLong("shard"), help: "Train only this shard (repeatable); default: every shard.")
    var shards: [Int] = []

    @Option(help: "Training strategy: s3t, sisa or full. Default s3t.")
    var strategy: TrainingStrategy?
    @Option(help: "Epochs per stage. Default 3.")
    var epochs: Int?
    @Option(help: "LoRA rank r. Default 16.")
    var rank: Int?
    @Option(help: "LoRA alpha (scale alpha/r). Default 32.")
    var alpha: Float?
    @Option(parsing: .upToNextOption,
            help: "LoRA target modules: q k v o up down (or query key value …). Default: query value.")
    var targets: [String] = []
    @Option(help: "Encoder layers per adapter block. Default 2.")
    var layersPerBlock: Int?
    @Option(help: "Peak learning rate (warmup then linear decay). Default 1e-3.")
    var lr: Float?
    @Option(help: "Examples per batch. Default 16.")
    var batchSize: Int?
    @Option(help: "What the model reads: text, or text+lead (headline and first paragraph). Default text.")
    var textField: String?
    @Option(help: "Maximum tokens per example. Default 128.")
    var maxTokens: Int?
    @Option(help: "Run seed; every stage's seed derives from it, the shard and the stage key. Default 0.")
    var seed: UInt64?
    @Option(help: "Threads (results are bit-identical for equal thread counts). Default 1.")
    var threads: Int?
    @Option(help: "Base encoder directory. Default Checkpoints/base/all-MiniLM-L6-v2.")
    var model: String?
    @Option(help: "Dataset the plan was made from (default: the path recorded in the plan).")
    var data: String?

    @Flag(help: "One JSON line per stage instead of text.")
    var json = false

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        let plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settings = try resolveSettings(layout: layout)
        let dataset = try RunData.dataset(for: plan, override: data)
        let encoder = try MiniLMEncoder(directory: settings.baseModel)
        let trainer = try EncoderStageTrainer(encoder: encoder, settings: settings, labels: plan.labels, dataset: dataset)
        let clock = ContinuousClock(), origin = clock.now
        let runner = S3TRunner(layout: layout, settings: settings, trainer: trainer,
                               clock: { (clock.now - origin).seconds })
        let reporter = TrainReporter(json: json, terminal: isatty(STDOUT_FILENO) == 1 && !json,
                                     epochs: settings.epochs, clock: runner.clock)
        let layerCount = encoder.configuration.layerCount
        if settings.strategy == .full {
            let ids = (0..<plan.shardCount).flatMap { h in (0..<plan.sliceCount).flatMap { plan.members(shard: h, slice: $0) } }
                .filter { !plan.isTombstoned($0) }
            let adapterLayers = Array(max(0, layerCount - plan.sliceCount * settings.layersPerBlock)..<layerCount)
            let schedule = StageSchedule.full(dataHash: SliceHash.of(ids: ids), adapterLayers: adapterLayers)
            try runner.train(schedule, members: { _ in ids.sorted(by: UTF8Order.precedes) }, events: reporter.handle)
        } else {
            let selected = shards.isEmpty ? Array(0..<plan.shardCount) : shards
            for shard in selected {
                guard (0..<plan.shardCount).contains(shard) else {
                    throw ValidationError("--shard \(shard): the plan has shards 0..<\(plan.shardCount).")
                }
                let schedule = try StageSchedule(
                    shard: shard, sequences: plan.sequences(of: shard),
                    sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                    layerCount: layerCount, layersPerBlock: settings.layersPerBlock, strategy: settings.strategy)
                try runner.train(schedule, members: { slice in
                    plan.members(shard: shard, slice: slice).filter { !plan.isTombstoned($0) }
                }, events: reporter.handle)
            }
        }
        reporter.finish()
    }

    /// The run's saved settings, or new ones from the options (saved to train.json).
    func resolveSettings(layout: RunLayout) throws -> TrainingSettings {
        let modelDirectory = model ?? "Checkpoints/base/all-MiniLM-L6-v2"
        let targetNames = try targets.map(Self.moduleName)
        if FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            let saved = try TrainingSettings.load(from: layout.settingsURL)
            var given = saved
            if let strategy { given.strategy = strategy }
            if let epochs { given.epochs = epochs }
            if let rank { given.rank = rank }
            if let alpha { given.alpha = alpha }
            if !targetNames.isEmpty { given.targets = targetNames }
            if let layersPerBlock { given.layersPerBlock = layersPerBlock }
            if let lr { given.learningRate = lr }
            if let batchSize { given.batchSize = batchSize }
            if let textField { given.textField = textField }
            if let maxTokens { given.maxTokenCount = maxTokens }
            if let seed { given.seed = seed }
            if let threads { given.threadCount = threads }
            if let model { given.baseModel = model }
            if let (field, old, new) = saved.firstDifference(from: given) {
                throw TrainingError.settingsConflict(file: layout.settingsURL.path, field: field, saved: old, given: new)
            }
            return saved
        }
        var settings = TrainingSettings(baseModel: modelDirectory,
                                        baseModelSHA256: try Self.sha256(ofFile: modelDirectory + "/model.safetensors"))
        if let strategy { settings.strategy = strategy }
        if let epochs { settings.epochs = epochs }
        if let rank { settings.rank = rank }
        if let alpha { settings.alpha = alpha }
        if !targetNames.isEmpty { settings.targets = targetNames }
        if let layersPerBlock { settings.layersPerBlock = layersPerBlock }
        if let lr { settings.learningRate = lr }
        if let batchSize { settings.batchSize = batchSize }
        if let textField { settings.textField = textField }
        if let maxTokens { settings.maxTokenCount = maxTokens }
        if let seed { settings.seed = seed }
        if let threads { settings.threadCount = threads }
        try settings.validate()
        try settings.save(to: layout.settingsURL)
        return settings
    }

    /// Target names (q, k, v, o, up, down, query, value, … or module paths) → module paths.
    static func moduleName(_ name: String) throws -> String {
        if let target = LoRATarget.parse(name) { return target.rawValue }
        throw ValidationError("--targets \(name): use q, k, v, o, up, down (or query, key, value, …).")
    }

    /// SHA-256 of a file, streamed.
    static func sha256(ofFile path: String) throws -> String {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw ValidationError("cannot read \(path); check --model (run `make setup` for the default model).")
        }
        defer { try? handle.close() }
        var hasher = SHA256()
        while let chunk = try handle.read(upToCount: 8 << 20), !chunk.isEmpty { hasher.update(data: chunk) }
        return hasher.finalize().map { String(format: "%02x", $0) }.joined()
    }
}
