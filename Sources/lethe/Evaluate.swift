import ArgumentParser
import CommandSupport
import Foundation
import Models
import Planning
import Support
import Training

/// `lethe evaluate --run`: accuracy and macro-F1 of a run's served ensemble and of each shard.
struct EvaluateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "evaluate",
        abstract: "Evaluate a run's served ensemble (argmax of the mean of the shards' logits) on labelled data.",
        discussion: """
            Prints ensemble accuracy and macro-F1, and the accuracy of every served shard model. \
            A run whose every shard is dead (deletions reached the first slice of every \
            sequence) has no model to evaluate: the command refuses (exit 1) and says to run \
            `lethe retrain`.

            Example:
              lethe evaluate --run Checkpoints/runs/demo --data Datasets/bbc-news/test.jsonl

            \(ExitStatus.help())
            """)

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }
    @Option(help: "Labelled JSON Lines data (id, text, label, …).")
    var data: String
    @OptionGroup var precisionOptions: InferencePrecisionOptions
    @OptionGroup var threadOptions: EnsembleThreadsOptions
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func validate() throws {
        try InputFiles.check([("--data", data)])
    }

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        let plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let encoder = try settings.loadBaseEncoder(run: layout.directory, precision: precisionOptions.precision)
        let clock = ContinuousClock(), start = clock.now
        let ensemble = try RunAccess.servedEnsemble(layout, labels: plan.labels, encoder: encoder)
        let dataset = try Dataset.read(from: URL(fileURLWithPath: data), source: data)
        let truth = try dataset.examples.map { e -> Int in
            guard let k = plan.labels.index(of: e.label) else {
                // The data's fault, not the command line's: a refusal (1) naming the example.
                if e.label.isEmpty {
                    throw UserFacingError(description: "\(data): example \(e.id) has no label; evaluate needs labelled "
                                          + "data. Use `lethe predict` for unlabelled texts.")
                }
                throw UserFacingError(description: "\(data): example \(e.id) has label \(String(reflecting: e.label)), "
                                      + "which the run was not trained on (its labels: "
                                      + "\(plan.labels.names.joined(separator: ", "))). Evaluate on examples of these "
                                      + "labels only, or plan and train a run on data that has this label.")
            }
            return k
        }
        let texts = dataset.examples.map(ensemble.input)
        let perShard = try ensemble.shardLogits(texts, threads: threadOptions.threads)
        let k = plan.labels.count
        let mean = RunEnsemble.meanLogits(perShard, textCount: texts.count, classCount: k)
        let predicted = mean.map(ClassificationMetrics.argmax)
        var report = EvaluationReport(
            examples: texts.count, strategy: ensemble.composition.strategy.rawValue, precision: encoder.precision.rawValue,
            liveShards: ensemble.members.map(\.shard),
            accuracy: ClassificationMetrics.accuracy(predicted: predicted, truth: truth),
            macroF1: ClassificationMetrics.macroF1(predicted: predicted, truth: truth, classCount: k),
            shards: [], seconds: 0)
        for (index, member) in ensemble.members.enumerated() {
            let p = perShard[index].map(ClassificationMetrics.argmax)
            let entry = ensemble.composition.entry(shard: member.shard)
            report.shards.append(.init(shard: member.shard, sequence: entry?.sequence ?? -1,
                                       prefixLength: entry?.prefixLength ?? 0,
                                       accuracy: ClassificationMetrics.accuracy(predicted: p, truth: truth),
                                       macroF1: ClassificationMetrics.macroF1(predicted: p, truth: truth, classCount: k)))
        }
        report.seconds = (clock.now - start).seconds
        print(json ? try report.json() : report.text)
    }
}

struct EvaluationReport: Encodable {
    struct Shard: Encodable {
        var shard: Int, sequence: Int, prefixLength: Int, accuracy: Double, macroF1: Double
    }
    var examples: Int
    var strategy: String
    /// The arithmetic of the frozen products the answers were computed in (`--precision`).
    var precision: String
    var liveShards: [Int]
    var accuracy: Double
    var macroF1: Double
    var shards: [Shard]
    var seconds: Double

    var text: String {
        var lines = [String(format: "ensemble of %@ on %@: accuracy %.2f%%, macro-F1 %.2f%%",
                            counted(liveShards.count, "\(strategy) shard model"), counted(examples, "example"),
                            accuracy * 100, macroF1 * 100)]
        for s in shards {
            lines.append(String(format: "  shard %d (sequence %d, prefix %d): accuracy %.2f%%, macro-F1 %.2f%%",
                                s.shard, s.sequence, s.prefixLength, s.accuracy * 100, s.macroF1 * 100))
        }
        lines.append(String(format: "evaluated in %.1f s, frozen products in %@", seconds, precision))
        return lines.joined(separator: "\n")
    }

    func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .snakeCased
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
