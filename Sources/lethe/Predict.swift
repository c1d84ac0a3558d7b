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
                // Control characters of an id or text are shown escaped, never sent raw to a terminal.
                print("\(terminalSafe(ids[index] ?? inputs[index])) → \(label)  (\(top))")
            }
        }
    }
}

/// Texts of a JSON Lines file for prediction: id, text and optional lead; labels are not needed.
enum JSONLinesTexts {
    struct Row: Decodable { var id: String?; var text: String; var lead: String? }

    /// A line that is not an object with a "text" string: a problem of the file (exit 1).
    struct Malformed: Error, CustomStringConvertible {
        let description: String
    }

    static func read(path: String) throws -> [Row] {
        guard let content = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw Malformed(description: "\(path): cannot be read as UTF-8 text; give a JSON Lines file, one "
                            + "{\"text\": …} object per line.")
        }
        var rows: [Row] = []
        // "\r\n" is one Character in Swift: lines end at either (LF and CRLF files).
        for (number, line) in content.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" }).enumerated() {
            if line.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            do { rows.append(try JSONDecoder().decode(Row.self, from: Data(line.utf8))) } catch {
                throw Malformed(description: "\(path):\(number + 1): \(DecodingError.fieldDescription(error)); each line "
                                + "must be a JSON object with a \"text\" string (\"id\" and \"lead\" optional).")
            }
        }
        guard !rows.isEmpty else {
            throw Malformed(description: "\(path): holds no line to classify; give one {\"text\": …} object per line.")
        }
        return rows
    }
}
