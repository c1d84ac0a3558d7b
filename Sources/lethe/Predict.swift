import ArgumentParser
import CommandSupport
import Foundation
import Models
import Planning
import Training

/// `lethe predict --run`: the ensemble's label and class probabilities for texts.
struct PredictCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "predict",
        abstract: "Predict labels with a run's served ensemble (mean of the shards' logits).",
        discussion: """
            A run whose every shard is dead has no model to answer with: the command refuses \
            (exit 1) and says to run `lethe retrain`.

            Examples:
              lethe predict --run Checkpoints/runs/demo --text "Shares rise as profits beat forecasts"
              lethe predict --run Checkpoints/runs/demo --data Datasets/bbc-news/test.jsonl --json

            \(ExitStatus.help())
            """)

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }
    @Option(help: "A text to classify (repeatable).")
    var text: [String] = []
    @Option(help: "JSON Lines file of examples to classify (label optional).")
    var data: String?
    @OptionGroup var precisionOptions: InferencePrecisionOptions
    @OptionGroup var threadOptions: EnsembleThreadsOptions
    @Flag(help: "One JSON object per input instead of text.")
    var json = false

    func validate() throws {
        if text.isEmpty == (data == nil) { throw ValidationError("Give --text (one or more) or --data, not both.") }
        try InputFiles.check([("--data", data)])
    }

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        let plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let encoder = try settings.loadBaseEncoder(run: layout.directory, precision: precisionOptions.precision)
        let ensemble = try RunAccess.servedEnsemble(layout, labels: plan.labels, encoder: encoder)
        var ids: [String?] = text.map { _ in nil }
        var inputs = text
        if let data {
            let rows = try JSONLinesTexts.read(path: data)
            ids = rows.map(\.id); inputs = rows.map { row in
                settings.textField == "text+lead" && !(row.lead ?? "").isEmpty ? row.text + " " + (row.lead ?? "") : row.text
            }
        }
        // The frozen layers below the lowest served adapter run once for all shards (the same bits
        // as each shard's own pass, on any number of threads).
        let mean = try ensemble.ensembleLogits(inputs, threads: threadOptions.threads)
        for (index, row) in mean.enumerated() {
            guard !row.isEmpty else { throw RunStateError.everyShardDead(run: runDirectory) }
            let probabilities = ClassificationMetrics.softmax(row)
            let label = plan.labels.name(at: ClassificationMetrics.argmax(row))
            if json {
                var object: [String: Any] = ["label": label,
                                             "probabilities": Dictionary(uniqueKeysWithValues: zip(plan.labels.names, probabilities.map(Double.init)))]
                object["id"] = ids[index] ?? nil
                if ids[index] == nil { object["text"] = inputs[index] }
                let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                print(String(decoding: data, as: UTF8.self))
            } else {
                let top = zip(plan.labels.names, probabilities).sorted { $0.1 > $1.1 }.prefix(3)
                    .map { String(format: "%@ %.3f", $0.0, $0.1) }.joined(separator: ", ")
                print("\(ids[index] ?? inputs[index]) → \(label)  (\(top))")
            }
        }
    }
}

/// Texts of a JSON Lines file for prediction: id, text and optional lead; labels are not needed.
enum JSONLinesTexts {
    struct Row: Decodable { var id: String?; var text: String; var lead: String? }

    static func read(path: String) throws -> [Row] {
        guard let content = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw ValidationError("--data \(path): cannot be read as UTF-8 text; check the path (a JSON Lines file).")
        }
        var rows: [Row] = []
        for (number, line) in content.split(separator: "\n", omittingEmptySubsequences: false).enumerated()
        where !line.trimmingCharacters(in: .whitespaces).isEmpty {
            do { rows.append(try JSONDecoder().decode(Row.self, from: Data(line.utf8))) } catch {
                throw ValidationError("\(path):\(number + 1): not a JSON object with a \"text\" string.")
            }
        }
        return rows
    }
}
