import Approximate
import CommandSupport
import Foundation

/// One evaluated setting of the unlearning sweep.
struct SweepPoint {
    let method: UnlearningMethod
    let learningRate: Float
    let steps: Int
    let evaluation: ForgetEvaluation
    let trainedTokens: Int
    let inSweep: Bool
    let reference: ForgetEvaluation
    let oracle: ForgetEvaluation

    /// The largest |AUC − oracle AUC| over the attacks: 0 means the forget set looks to every
    /// attack as it does to a model that never saw it; over-forgetting counts as much as under.
    var largestGap: Double { evaluation.largestGap(to: oracle) }
    var retainRatio: Double { evaluation.retain!.perplexity / reference.retain!.perplexity }
    /// Forgotten (every attack within ±0.05 of the oracle's AUC) while retain perplexity stays
    /// within 10% of θ0.
    var success: Bool { largestGap <= SweepPoint.gapBound && retainRatio <= 1.10 }
    static let gapBound = 0.05
}

extension BenchUnlearnCommand {
    func printTable(_ rows: [SweepPoint], reference: ForgetEvaluation, oracle: ForgetEvaluation, lr: Float, steps: Int,
                    parameters: Int, exact: ExactUnlearning? = nil, report: ResultReport) {
        let attacks = oracle.attacks.map(\.attack)
        report.say(String(format: "\nTable (lr %.0e, %d steps): perplexities, and per attack the AUC forget vs unseen with its gap to the oracle's", lr, steps))
        report.say("method        forget-ppl  retain-ppl  general-ppl  " + attacks.map { $0.rawValue.padding(toLength: 15, withPad: " ", startingAt: 0) }.joined()
                   + "max|gap|  pre-training ÷ run FLOPs")
        func line(_ name: String, _ e: ForgetEvaluation, _ ratio: String) {
            let cells = attacks.map { a -> String in
                guard let auc = e.auc(a), let o = oracle.auc(a) else { return "      -        " }
                return String(format: "%.3f (%+.3f) ", auc, auc - o)
            }.joined()
            report.say(String(format: "%@   %@   %@    %@  %@  %.3f   %@", padded(name),
                         ppl(e.forget.perplexity), ppl(e.retain!.perplexity), ppl(e.general!.perplexity), cells,
                         e.largestGap(to: oracle), ratio))
        }
        line("fine-tuned", reference, "-")
        line("oracle", oracle, "-")
        for r in rows {
            let cost = UnlearningCost(parameterCount: parameters, trainedTokens: r.trainedTokens)
            line(r.method.rawValue, r.evaluation, String(format: "%.2e", cost.ratio))
        }
        if let exact {
            line("s3t-before", exact.before, "-")
            let cost = UnlearningCost(parameterCount: parameters, trainedTokens: exact.retrainedTokens)
            line("s3t-exact", exact.after, exact.retrainedTokens == 0 ? "no training" : String(format: "%.2e", cost.ratio))
        }
    }

    /// The cost of the exact deletion against retraining, and the utility price of sharding.
    func printExactCost(_ exact: ExactUnlearning, oracleCost: (seconds: Double, tokens: Int), reference: ForgetEvaluation,
                        parameters: Int, report: ResultReport) {
        let flops = { (tokens: Int) in UnlearningCost(parameterCount: parameters, trainedTokens: tokens).runFLOPs }
        report.say(String(format: "exact deletion: lethe forget %.1f s (%d of %d shards live after it) + lethe retrain %.1f s, %.2e FLOPs (%d tokens); "
                          + "retraining θ0 without the forget set (the oracle's fine-tune): %.1f s, %.2e FLOPs (%d tokens)",
                          exact.forgetSeconds, exact.liveShardsAfterForget, exact.shards, exact.retrainSeconds,
                          flops(exact.retrainedTokens), exact.retrainedTokens, oracleCost.seconds, flops(oracleCost.tokens),
                          oracleCost.tokens))
        report.say(String(format: "utility price of sharding (S3T before forgetting ÷ θ0): retain ppl ×%.2f, general ppl ×%.2f, unseen ppl ×%.2f; S3T training %.1f s, %.2e FLOPs",
                          exact.before.retain!.perplexity / reference.retain!.perplexity,
                          exact.before.general!.perplexity / reference.general!.perplexity,
                          exact.before.unseen.perplexity / reference.unseen.perplexity, exact.trainSeconds, flops(exact.trainedTokens)))
    }

    /// summary.json's record of the exact run.
    struct ExactSummary: Encodable {
        let before: ForgetEvaluation, after: ForgetEvaluation
        let trainSeconds: Double, trainedTokens: Int, forgetSeconds: Double, retrainSeconds: Double, retrainedTokens: Int
        let liveShardsAfterForget: Int, shards: Int, oracleSeconds: Double, oracleTokens: Int, largestGapAfter: Double
        init(_ e: ExactUnlearning, oracleSeconds: Double, oracleTokens: Int, largestGapAfter: Double) {
            before = e.before; after = e.after; trainSeconds = e.trainSeconds; trainedTokens = e.trainedTokens
            forgetSeconds = e.forgetSeconds; retrainSeconds = e.retrainSeconds; retrainedTokens = e.retrainedTokens
            liveShardsAfterForget = e.liveShardsAfterForget; shards = e.shards
            self.oracleSeconds = oracleSeconds; self.oracleTokens = oracleTokens; self.largestGapAfter = largestGapAfter
        }
        enum CodingKeys: String, CodingKey {
            case before, after, trainSeconds = "train_seconds", trainedTokens = "trained_tokens", forgetSeconds = "forget_seconds"
            case retrainSeconds = "retrain_seconds", retrainedTokens = "retrained_tokens"
            case liveShardsAfterForget = "live_shards_after_forget", shards, oracleSeconds = "oracle_seconds"
            case oracleTokens = "oracle_tokens", largestGapAfter = "largest_gap_after"
        }
    }

    /// Prints, per method, the share of sweep settings that forget and keep retain quality, and
    /// the best forgetting among the settings that keep retain quality (the smallest largest gap
    /// to the oracle), which ranks the methods even when the grid holds no full success.
    func printSweep(_ points: [SweepPoint], oracle: ForgetEvaluation, report: ResultReport) -> [(UnlearningMethod, Double)] {
        report.say("\nSweep: share of (lr × steps) settings with every attack's AUC within ±0.05 of the oracle's and retain ppl within 10% of θ0")
        report.say("(the retrain oracle's AUCs: " + oracle.attacks.map { String(format: "%@ %.3f", $0.attack.rawValue, $0.separation.rocAUC) }
                    .joined(separator: ", ") + ")")
        report.say("method        success  retain kept  smallest max|gap| with retain kept (setting)")
        var summary: [(UnlearningMethod, Double)] = [], best: [(UnlearningMethod, SweepPoint)] = []
        for method in UnlearningMethod.allCases {
            let mine = points.filter { $0.method == method }
            guard !mine.isEmpty else { continue }
            let share = Double(mine.filter(\.success).count) / Double(mine.count)
            summary.append((method, share))
            let kept = mine.filter { $0.retainRatio <= 1.10 }
            let top = kept.min { $0.largestGap < $1.largestGap }
            if let top { best.append((method, top)) }
            report.say(String(format: "%@  %d/%d %3.0f%%  %d/%d         %@", padded(method.rawValue), mine.filter(\.success).count,
                                mine.count, 100 * share, kept.count, mine.count,
                                top.map { String(format: "%.3f (lr %.0e, %d steps, retain ×%.2f)", $0.largestGap, $0.learningRate,
                                                 $0.steps, $0.retainRatio) } ?? "none"))
        }
        guard let leader = summary.max(by: { $0.1 < $1.1 }) else { return summary }
        guard let gdIn = summary.first(where: { $0.0 == .ascentDescentInDistribution })?.1 else {
            report.say("Most robust: \(leader.0.rawValue) (\(Int(100 * leader.1))% of settings succeed). Seed paper's finding "
                         + "(ga-gd-in most robust): not evaluated (ga-gd-in is not among --methods).")
            return summary
        }
        if leader.1 > 0 {
            report.say("Most robust: \(leader.0.rawValue) (\(Int(100 * leader.1))% of settings succeed). Seed paper's finding "
                         + "(ga-gd-in most robust): " + (gdIn >= leader.1 ? "reproduced (ga-gd-in ties or leads)." : "not reproduced here."))
            return summary
        }
        // No full success anywhere: rank by how far each method forgets while keeping retain quality.
        let ranked = best.sorted { $0.1.largestGap < $1.1.largestGap }
        guard let first = ranked.first else {
            report.say("Most robust: none. Seed paper's finding (ga-gd-in most robust): inconclusive: no setting kept retain ppl within 10%.")
            return summary
        }
        let second = ranked.dropFirst().first.map { String(format: "; next %@ at %.3f", $0.0.rawValue, $0.1.largestGap) } ?? ""
        report.say(String(format: "No setting comes within ±0.05 of the oracle on every attack with retain kept. Closest with retain kept: %@ (max |gap| %.3f%@).",
                            first.0.rawValue, first.1.largestGap, second))
        report.say("Seed paper's finding (ga-gd-in most robust): "
                     + (first.0 == .ascentDescentInDistribution ? "reproduced in this weaker sense (ga-gd-in comes closest to the oracle while keeping retain quality)."
                                                               : "not reproduced (\(first.0.rawValue) comes closer to the oracle than ga-gd-in with retain kept)."))
        return summary
    }

    /// Two SVG charts: largest |gap| to the oracle vs retain perplexity ratio per setting, and the
    /// success share per method.
    func writeCharts(_ points: [SweepPoint], summary: [(UnlearningMethod, Double)], report: ResultReport) throws {
        let dir = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                      "#bcbd22", "#17becf", "#393b79"]
        let (w, h, m) = (640.0, 420.0, 60.0)
        var svg = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(w))' height='\(Int(h))' font-family='sans-serif' font-size='11'>\n"
        svg += "<text x='\(w / 2)' y='18' text-anchor='middle'>Sweep: largest |AUC − oracle AUC| over the attacks vs retain perplexity / θ0</text>\n"
        let maxRatio = max(1.5, points.map(\.retainRatio).filter(\.isFinite).max() ?? 1.5)
        // The gap axis runs 0…0.5 (a gap beyond it is drawn at the edge).
        func x(_ gap: Double) -> Double { m + (w - 2 * m) * min(gap, 0.5) / 0.5 }
        func y(_ r: Double) -> Double { h - m - (h - 2 * m) * min(r, maxRatio) / maxRatio }
        svg += "<rect x='\(x(0))' y='\(y(1.1))' width='\(x(SweepPoint.gapBound) - x(0))' height='\(y(0) - y(1.1))' fill='#e8f5e9'/>\n"
        svg += "<line x1='\(m)' y1='\(h - m)' x2='\(w - m)' y2='\(h - m)' stroke='black'/><line x1='\(m)' y1='\(m)' x2='\(m)' y2='\(h - m)' stroke='black'/>\n"
        svg += "<text x='\(w / 2)' y='\(h - 20)' text-anchor='middle'>largest |AUC − oracle AUC| over the attacks (0 = like the retrained model)</text>\n"
        svg += "<text x='15' y='\(h / 2)' transform='rotate(-90 15 \(h / 2))' text-anchor='middle'>retain perplexity / fine-tuned θ0</text>\n"
        for tick in stride(from: 0.0, through: 0.5, by: 0.1) { svg += "<text x='\(x(tick))' y='\(h - m + 14)' text-anchor='middle'>\(String(format: "%.1f", tick))</text>\n" }
        for (i, method) in UnlearningMethod.allCases.enumerated() {
            for p in points where p.method == method {
                svg += "<circle cx='\(x(p.largestGap))' cy='\(y(p.retainRatio))' r='4' fill='\(colors[i])'><title>\(method.rawValue) lr \(p.learningRate) steps \(p.steps)</title></circle>\n"
            }
            svg += "<rect x='\(w - m - 90)' y='\(m + Double(i) * 14 - 8)' width='8' height='8' fill='\(colors[i])'/><text x='\(w - m - 78)' y='\(m + Double(i) * 14)'>\(method.rawValue)</text>\n"
        }
        svg += "</svg>\n"
        try svg.write(to: dir.appendingPathComponent("sweep-auc-vs-retain.svg"), atomically: true, encoding: .utf8)
        var bars = "<svg xmlns='http://www.w3.org/2000/svg' width='\(Int(w))' height='320' font-family='sans-serif' font-size='11'>\n"
        bars += "<text x='\(w / 2)' y='18' text-anchor='middle'>Share of sweep settings within ±0.05 of the oracle on every attack, retain ppl within 10%</text>\n"
        let slot = (w - 40) / Double(max(summary.count, 1))
        for (i, (method, share)) in summary.enumerated() {
            let bx = 30 + Double(i) * slot, bh = 220 * share
            bars += "<rect x='\(bx)' y='\(250 - bh)' width='\(0.75 * slot)' height='\(bh)' fill='\(colors[i % colors.count])'/>"
            bars += "<text x='\(bx + 0.375 * slot)' y='264' text-anchor='end' transform='rotate(-30 \(bx + 0.375 * slot) 264)'>\(method.rawValue)</text>"
            bars += "<text x='\(bx + 0.375 * slot)' y='\(245 - bh)' text-anchor='middle'>\(Int(100 * share))%</text>\n"
        }
        bars += "</svg>\n"
        try bars.write(to: dir.appendingPathComponent("sweep-success-share.svg"), atomically: true, encoding: .utf8)
        report.say("charts: \(dir.path)/sweep-auc-vs-retain.svg, sweep-success-share.svg")
    }
}


/// `name` left-aligned in 12 columns (Foundation's `%-12@` does not pad on Linux).
func padded(_ name: String) -> String { name.padding(toLength: max(12, name.count), withPad: " ", startingAt: 0) }

extension BenchUnlearnCommand {
    /// Writes OUT/summary.json — θ0 before and after the fine-tune, the oracle, every evaluated
    /// point and each method's sweep success share — and records the same in `report`.
    func writeSummary(before: ForgetEvaluation, reference: ForgetEvaluation, oracle: ForgetEvaluation,
                      points: [SweepPoint], summary: [(UnlearningMethod, Double)], parameters: Int,
                      wallSeconds: Double, report: ResultReport) throws {
        try report.record("base", encoding: before)
        try report.record("fine_tuned", encoding: reference)
        try report.record("oracle", encoding: oracle)
        try report.record("points", encoding: points.map { p in
            SummaryPoint(method: p.method.rawValue, learningRate: p.learningRate, steps: p.steps,
                         inSweep: p.inSweep, trainedTokens: p.trainedTokens, success: p.success,
                         flopsRatio: UnlearningCost(parameterCount: parameters, trainedTokens: p.trainedTokens).ratio,
                         evaluation: p.evaluation)
        })
        report.record("sweep_success_share", Dictionary(uniqueKeysWithValues: summary.map { ($0.0.rawValue, $0.1) }))
        report.record("wall_seconds", wallSeconds)
        report.record("seed", Int(truncatingIfNeeded: seed))
        let file = URL(fileURLWithPath: out).appendingPathComponent("summary.json")
        try report.write(to: file)
        report.say("summary: \(file.path)")
        try report.finish()
    }

    /// One evaluated setting as summary.json records it.
    struct SummaryPoint: Encodable {
        let method: String, learningRate: Float, steps: Int, inSweep: Bool, trainedTokens: Int, success: Bool
        let flopsRatio: Double, evaluation: ForgetEvaluation
        enum CodingKeys: String, CodingKey {
            case method, learningRate = "learning_rate", steps, inSweep = "in_sweep", trainedTokens = "trained_tokens"
            case success, flopsRatio = "pretraining_to_run_flops", evaluation
        }
    }
}
