import Approximate
import ArgumentParser
import CommandSupport
import Foundation
import Models
import Training

/// `bench unlearn --exact`: exact unlearning on the same model, data and metrics as the
/// approximate methods. An S3T decoder run is trained on forget ∪ retain (one example per
/// article chunk, its article as the group) with the `lethe` commands, the forget set is
/// forgotten exactly (`lethe forget`; `lethe retrain` when the deletions leave a shard dead, so
/// that the run answers again), and the served ensemble is evaluated like every other row.
struct ExactUnlearning {
    /// The served ensemble before and after forgetting.
    var before: ForgetEvaluation
    var after: ForgetEvaluation
    var trainSeconds: Double
    var trainedTokens: Int
    /// `lethe forget` (ledger, truncation, publish, erasure) and `lethe retrain`, wall seconds.
    var forgetSeconds: Double
    var retrainSeconds: Double
    /// Tokens the retrain put through forward and backward (0 when no shard needed it).
    var retrainedTokens: Int
    /// Live shards right after the deletions, before any retrain.
    var liveShardsAfterForget: Int
    var shards: Int
}

/// `bench unlearn` refused or failed for a reason that is no usage error (exit 1): the exact run
/// failed (the sweep's results are written), or --out is in use by another run.
struct BenchUnlearnFailure: Error, CustomStringConvertible {
    let description: String
}

extension BenchUnlearnCommand {
    /// Trains, forgets and evaluates the S3T run in OUT/exact-run (replaced each time).
    func exactUnlearning(tokenizer: BPETokenizer, forget: [[Int]], retain: [[Int]], report: ResultReport,
                         evaluate: (DecoderEnsemble) throws -> ForgetEvaluation) throws -> ExactUnlearning {
        let root = URL(fileURLWithPath: out)
        let run = root.appendingPathComponent("exact-run"), data = root.appendingPathComponent("exact-texts.jsonl")
        try? FileManager.default.removeItem(at: run)
        try FileManager.default.createDirectory(at: root, withIntermediateDirectories: true)
        // One line per chunk: the article's first chunk decoded back to text, grouped by article.
        var lines = "", forgetIDs: [String] = []
        for (prefix, chunks) in [("f", forget), ("r", retain)] {
            for (k, chunk) in chunks.enumerated() {
                let id = String(format: "%@%03d", prefix, k)
                if prefix == "f" { forgetIDs.append(id) }
                let object: [String: Any] = ["id": id, "text": try tokenizer.decode(chunk), "group": "article-" + id]
                lines += String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                                as: UTF8.self) + "\n"
            }
        }
        try lines.write(to: data, atomically: true, encoding: .utf8)
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        func lethe(_ arguments: [String]) throws -> (String, Double) {
            let start = Date()
            let (status, output) = try ChildProcess.run(binary, arguments)
            guard status == 0 else {
                throw BenchUnlearnFailure(description: "--exact: lethe \(arguments.joined(separator: " ")) failed (exit \(status)): "
                                     + output.trimmingCharacters(in: .whitespacesAndNewlines))
            }
            return (output, Date().timeIntervalSince(start))
        }
        /// Tokens of the stages a `train`/`retrain --json` output reports (examples × chunk length).
        func tokens(_ output: String) -> Int {
            output.split(separator: "\n").reduce(0) { sum, line in
                guard let event = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      event["event"] as? String == "trained", let seen = event["examples_seen"] as? Int else { return sum }
                return sum + seen * chunkTokens
            }
        }
        _ = try lethe(["plan", "--data", data.path, "--shards", "\(exactShards)", "--slices", "\(exactSlices)",
                       "--budget", "\(exactBudget)", "--seed", "\(seed)", "--run", run.path])
        let train = ["--model", options.model, "--epochs", "\(exactEpochs)", "--max-tokens", "\(chunkTokens)",
                     "--batch-size", "\(batchSize)", "--lr", "\(fineTuneLR)", "--rank", "\(rank)", "--alpha", "\(2 * rank)",
                     "--targets", "q", "k", "v", "o", "gate", "up", "down",
                     "--layers-per-block", "\(exactLayersPerBlock)", "--threads", "\(options.threads)",
                     "--seed", "\(seed)", "--precision", options.precision.rawValue, "--json"]
        let (trained, trainSeconds) = try lethe(["train", "--run", run.path] + train)
        report.say(String(format: "exact: S3T run of %d shards × %d slices × %d sequences (blocks of %d layers, all projections, %d epochs) trained in %.1f s",
                          exactShards, exactSlices, exactBudget, exactLayersPerBlock, exactEpochs, trainSeconds))
        let layout = RunLayout(directory: run)
        let base = try TrainingSettings.load(from: layout.settingsURL).loadBaseDecoder(run: run, precision: options.precision).model
        var clock = Date()
        let before = try evaluate(try RunAccess.servedDecoderEnsemble(layout, model: base))
        report.say(String(format: "s3t before forgetting (evaluated in %.1f s): %@", Date().timeIntervalSince(clock), describe(before)))
        let (_, forgetSeconds) = try lethe(["forget", "--run", run.path] + forgetIDs.flatMap { ["--id", $0] })
        let live = try ServedComposition.load(from: layout.servedURL).liveShards.count
        var retrainSeconds = 0.0, retrainedTokens = 0
        if live < exactShards {
            let (output, seconds) = try lethe(["retrain", "--run", run.path, "--json"])
            retrainSeconds = seconds; retrainedTokens = tokens(output)
        }
        clock = Date()
        let after = try evaluate(try RunAccess.servedDecoderEnsemble(layout, model: base))
        report.say(String(format: "s3t after exact forgetting (forget %.1f s, %d of %d shards live after it, retrain %.1f s; evaluated in %.1f s): %@",
                          forgetSeconds, live, exactShards, retrainSeconds, Date().timeIntervalSince(clock), describe(after)))
        return ExactUnlearning(before: before, after: after, trainSeconds: trainSeconds, trainedTokens: tokens(trained),
                               forgetSeconds: forgetSeconds, retrainSeconds: retrainSeconds, retrainedTokens: retrainedTokens,
                               liveShardsAfterForget: live, shards: exactShards)
    }

    /// One bar per row of the table: the largest |AUC − oracle AUC| over the attacks, labelled
    /// with the retain perplexity relative to θ0.
    func writeExactChart(rows: [(String, ForgetEvaluation)], reference: ForgetEvaluation, oracle: ForgetEvaluation) throws {
        let (w, h) = (max(640.0, 60 + 58 * Double(rows.count)), 340.0)
        var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(w))' height='\(Int(h))' font-family='sans-serif' font-size='11'>\n"
        svg += "<text x='\(w / 2)' y='18' text-anchor='middle'>Exact (S3T) beside approximate: largest |AUC − oracle AUC| over the attacks (retain ppl ÷ θ0 above each bar)</text>\n"
        let top = max(0.5, rows.map { $0.1.largestGap(to: oracle) }.max() ?? 0.5)
        let y = { (gap: Double) in 260 - 220 * gap / top }
        svg += "<line x1='30' y1='\(y(SweepPoint.gapBound))' x2='\(w - 10)' y2='\(y(SweepPoint.gapBound))' stroke='#2ca02c' stroke-dasharray='4 3'/>"
        svg += "<text x='\(w - 12)' y='\(y(SweepPoint.gapBound) - 3)' text-anchor='end' fill='#2ca02c'>±0.05</text>\n"
        for (i, (name, e)) in rows.enumerated() {
            let gap = e.largestGap(to: oracle), x = 40 + Double(i) * 58
            let color = name.hasPrefix("s3t") ? "#d62728" : (name == "θ0" ? "#7f7f7f" : "#1f77b4")
            svg += "<rect x='\(x)' y='\(y(gap))' width='40' height='\(260 - y(gap))' fill='\(color)'><title>\(name): \(gap)</title></rect>"
            let ratio = (e.retain?.perplexity ?? .nan) / (reference.retain?.perplexity ?? .nan)
            svg += "<text x='\(x + 20)' y='\(y(gap) - 4)' text-anchor='middle'>×\(String(format: "%.2f", ratio))</text>"
            svg += "<text x='\(x + 20)' y='276' text-anchor='end' transform='rotate(-35 \(x + 20) 276)'>\(name)</text>\n"
        }
        svg += "</svg>\n"
        let url = URL(fileURLWithPath: out).appendingPathComponent("exact-vs-approximate.svg")
        try svg.write(to: url, atomically: true, encoding: .utf8)
    }
}
