import ArgumentParser
import CommandSupport
import Foundation
import Support
import Kernels
import Models
import Planning
import Training

/// `lethe bench serve`: `lethe serve` under load from wrk over loopback, with and without a
/// stream of deletions, swap latency, and the FLOP-bound limit of the ensemble's work.
public struct BenchServeCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Throughput and latency of `lethe serve` under wrk, with and without concurrent forgets; swap latency.",
        discussion: """
            Copies --run beside itself (the forgets change the copy only), starts `lethe serve` on it \
            as a child process on a loopback port, and drives POST /v2/models/lethe/infer with wrk \
            (one text per request, cycling through the texts of --data) at each --concurrency for \
            --seconds: requests/s, p50 and p99 latency. Then the same with a stream of \
            --forgets-per-second deletions through POST /v1/forget (examples of slice 0 of every \
            shard, so every shard keeps serving a prefix). Then --swaps deletions through the CLI \
            (`lethe forget`, another process): the time from the publish (served.json's modification \
            time) to the first answer from the new generation. Last, the limit: the requests/s the \
            measured float32 FMA peak allows for the ensemble's matrix work per request (frozen layers \
            below the lowest adapter once, the layers above once per live shard, LoRA products, at the \
            texts' real token counts), and the share of it reached. wrk and the server share the \
            machine's cores.

            With --python, Tools/serve_torch.py serves the same composition first (FastAPI, uvicorn, \
            PyTorch with PEFT, adapters read from the stage files with h5py, torch on --threads \
            threads) under the same wrk runs, and the table shows both sides and the ratio.

            With --versus-precision, a second server answers in that precision beside the first, and \
            the two are loaded in turn, --rounds times at each concurrency, before the forget series \
            (on the run as trained, no forgets): the median requests/s of each and their ratio, \
            measured in one run rather than across two runs minutes apart on a shared machine.

            Examples:
              lethe bench serve --run Checkpoints/runs/demo --concurrency 1 8 64 --seconds 10
              lethe bench serve --python /work/venv-torch/bin/python
              lethe bench serve --precision bf16 --versus-precision fp32 --rounds 3

            \(BenchHelp.exitCodes)
            """)

    @Option(name: .customLong("run"), help: "A trained run (make demo makes Checkpoints/runs/demo).")
    var runDirectory = "Checkpoints/runs/demo"
    @Option(help: "JSON Lines file whose texts the requests carry.") var data = "Datasets/bbc-news/test.jsonl"
    @Option(parsing: .upToNextOption, help: "Open connections of each load run, each \(Self.connectionBounds.text).")
    var concurrency: [Int] = [1, 8, 64]
    @Option(help: "Seconds of each load run, \(Self.secondsBounds.text).") var seconds = 10
    @Option(help: "Deletions per second during the second series, \(Self.rateBounds.text).") var forgetsPerSecond = 10.0
    @Option(help: "Deletions through the CLI whose swap latency is measured, \(Self.swapBounds.text).") var swaps = 5
    @Option(help: "Server threads per ensemble pass, \(CommonBounds.threads.text).")
    var threads = CommonBounds.defaultThreads
    @Option(help: "Server --max-batch, \(Self.connectionBounds.text).") var maxBatch = 64
    @Option(help: "Server --max-wait-ms, \(Self.waitBounds.text).") var maxWaitMs = 2.0
    @OptionGroup var precisionOptions: InferencePrecisionOptions
    @Option(help: "Also serve the run in this precision (fp32 or bf16) and load both servers in turn: their requests/s and ratio in one run.")
    var versusPrecision: Precision?
    @Option(help: "Alternating rounds per concurrency with --versus-precision, \(Self.roundBounds.text).") var rounds = 3
    @Option(help: "A Python with torch, peft, h5py, fastapi and uvicorn: also drive Tools/serve_torch.py (the same ensemble served with FastAPI + PyTorch) with the same load, first.")
    var python: String?
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    static let connectionBounds = OptionBounds(1...4096)
    static let secondsBounds = OptionBounds(1...3600)
    static let rateBounds = OptionBounds(0.1...1000.0)
    static let swapBounds = OptionBounds(0...1000)
    static let waitBounds = OptionBounds(0.0...1000.0)
    static let roundBounds = OptionBounds(1...100)

    public func validate() throws {
        try RunOptions.checkUTF8(runDirectory, option: "--run")
        guard !concurrency.isEmpty else { throw ValidationError("--concurrency needs at least one value.") }
        for c in concurrency { try Self.connectionBounds.check(c, option: "--concurrency") }
        try Self.secondsBounds.check(seconds, option: "--seconds")
        try Self.rateBounds.check(forgetsPerSecond, option: "--forgets-per-second")
        try Self.swapBounds.check(swaps, option: "--swaps")
        try CommonBounds.threads.check(threads, option: "--threads")
        try Self.connectionBounds.check(maxBatch, option: "--max-batch")
        try Self.waitBounds.check(maxWaitMs, option: "--max-wait-ms")
        try Self.roundBounds.check(rounds, option: "--rounds")
        try InputFiles.check([("--data", data)])
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        guard FileManager.default.fileExists(atPath: layout.servedURL.path) else {
            throw ValidationError("--run \(runDirectory): no served.json; train the run first (make demo makes Checkpoints/runs/demo).")
        }
        if let versus = versusPrecision {
            // Two servers in one precision would measure the machine's noise, not a ratio.
            let main = try precisionOptions.precision ?? TrainingSettings.load(from: layout.settingsURL).precision
            guard versus != main else {
                throw ValidationError("--versus-precision \(versus.rawValue): the run is served in \(main.rawValue) already "
                                      + "(--precision, or the run's own); give the other precision.")
            }
        }
    }

    public func run() throws {
        let report = ResultReport(json: json)
        let load = MachineLoad()
        load.printWarning(json: json)
        report.record("load_average", load.averages)
        report.say("machine: \(load.logicalCPUs) logical CPUs, \(load.text)")
        let source = URL(fileURLWithPath: runDirectory).standardizedFileURL
        // A sibling copy, so the run's relative base-model path still resolves.
        let copy = source.deletingLastPathComponent().appendingPathComponent(".bench-serve-\(UUID().uuidString)")
        let copyCleanup = InterruptCleanup.shared.remove(copy)
        defer { InterruptCleanup.shared.release(copyCleanup) }
        try FileManager.default.copyItem(at: source, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let texts = try Self.texts(data)
        let plan = try Plan.load(from: Plan.url(inRun: copy))
        let candidates = (0..<plan.shardCount).flatMap { Array(plan.members(shard: $0, slice: 0)) }
        var cursor = 0
        let limit = try Self.flopLimit(run: copy, plan: plan, texts: texts, threads: threads,
                                       precision: precisionOptions.precision)
        report.say(String(format: "FLOP-bound limit: %.0f requests/s (%.2f GFLOP per request, mean %.1f tokens; "
                          + "%@ peak %.1f GFLOP/s on %d thread%@ for the frozen weights' products, float32 %.1f for the rest)",
                          limit.requestsPerSecond, limit.flopsPerRequest / 1e9, limit.meanTokens,
                          limit.precision.rawValue, limit.peakGflops, threads, threads == 1 ? "" : "s", limit.float32PeakGflops))

        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-serve-\(UUID().uuidString)")
        let scratchCleanup = InterruptCleanup.shared.remove(scratch)
        defer { InterruptCleanup.shared.release(scratchCleanup) }
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let torchRuns = try python.map { try torchSeries(python: $0, run: copy, texts: texts, scratch: scratch, report: report) }
        let binary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        let server = try ServeChild(binary: binary, run: copy, threads: threads, maxBatch: maxBatch, maxWaitMs: maxWaitMs,
                                    precision: precisionOptions.precision)
        defer { _ = server.stop() }
        for text in texts.prefix(8) { _ = BlockingHTTP.infer(server.base, text: text) }
        // The precisions are compared on the run as trained, before the forget series cuts
        // every shard's prefix (a deletion in slice 0 takes each shard down to two blocks).
        if let versus = versusPrecision {
            report.record("versus", try precisionSeries(versus: versus, run: copy, main: server, binary: binary,
                                                        texts: texts, scratch: scratch, report: report))
        }

        var rows: [[String: Any]] = []
        report.say("concurrency  requests/s  p50 ms  p99 ms   errors | with \(forgetsPerSecond) forgets/s: requests/s  p50 ms  p99 ms   errors  forgets")
        report.say("(errors: non-2xx answers and requests wrk gave up on, timeouts included)")
        for c in concurrency {
            let plain = try WrkRun.run(url: server.base + "/v2/models/lethe/infer", texts: texts, connections: c,
                                       seconds: Double(seconds), scriptDirectory: scratch)
            let stream = ForgetStream(base: server.base, perSecond: forgetsPerSecond, ids: Array(candidates[cursor...]))
            let loaded = try WrkRun.run(url: server.base + "/v2/models/lethe/infer", texts: texts, connections: c,
                                        seconds: Double(seconds), scriptDirectory: scratch)
            let forgets = stream.stop()
            cursor += forgets.acknowledged + forgets.failed
            report.say(String(format: "%11d  %10.1f  %6.1f  %6.1f  %7d | %32.1f  %6.1f  %6.1f  %7d  %7d", c,
                              plain.requestsPerSecond, plain.p50Milliseconds, plain.p99Milliseconds, plain.errors,
                              loaded.requestsPerSecond, loaded.p50Milliseconds, loaded.p99Milliseconds, loaded.errors,
                              forgets.acknowledged))
            for (name, run) in [("", plain), (" with forgets", loaded)] where run.requests == 0 {
                report.say("  WARNING: no request was answered at concurrency \(c)\(name) in \(seconds) s: the server stalled")
            }
            rows.append(["concurrency": c, "plain": try Self.object(plain), "with_forgets": try Self.object(loaded),
                         "forgets_acknowledged": forgets.acknowledged, "forgets_failed": forgets.failed,
                         "share_of_limit": plain.requestsPerSecond / limit.requestsPerSecond])
        }
        let swapTimes = try candidates[cursor...].prefix(swaps).compactMap { id -> Double? in
            try Self.swapLatency(binary: binary, run: copy, base: server.base, id: id, text: texts[0])
        }
        if !swapTimes.isEmpty {
            let sorted = swapTimes.sorted()
            report.say(String(format: "swap latency (publish by `lethe forget` → first answer from the new generation), "
                              + "%d swaps: median %.1f ms, max %.1f ms", sorted.count, 1000 * sorted[sorted.count / 2],
                              1000 * (sorted.last ?? 0)))
        }
        if let torchRuns {
            report.say("side by side (no forgets): concurrency, Lethe requests/s / p99 ms, PyTorch requests/s / p99 ms, ratio")
            for (row, torch) in zip(rows, torchRuns) {
                guard let c = row["concurrency"] as? Int, let plain = row["plain"] as? [String: Any],
                      let rate = plain["requests_per_second"] as? Double, let p99 = plain["p99_ms"] as? Double else { continue }
                report.say(String(format: "%11d  %8.1f / %6.1f   %8.1f / %6.1f   %.2f×", c, rate, p99,
                                  torch.requestsPerSecond, torch.p99Milliseconds, rate / torch.requestsPerSecond))
            }
            report.record("torch", try torchRuns.map(Self.object))
        }
        if let top = rows.last, let c = top["concurrency"] as? Int, let share = top["share_of_limit"] as? Double {
            report.say(String(format: "at concurrency %d: %.0f%% of the FLOP-bound limit", c, 100 * share))
        }
        report.record("limit", ["requests_per_second": limit.requestsPerSecond, "flops_per_request": limit.flopsPerRequest,
                                "mean_tokens": limit.meanTokens, "peak_gflops": limit.peakGflops])
        report.record("runs", rows)
        report.record("swap_seconds", swapTimes)
        report.record("threads", threads)
        report.record("server_exit_status", Int(server.stop()))
        try report.finish()
    }

    /// The run served in `versus` beside `main` (the --precision server), the two loaded in turn by
    /// the same wrk runs, `rounds` times at each concurrency: the ratio of their medians.
    func precisionSeries(versus: Precision, run: URL, main: ServeChild, binary: URL, texts: [String], scratch: URL,
                         report: ResultReport) throws -> [[String: Any]] {
        let other = try ServeChild(binary: binary, run: run, threads: threads, maxBatch: maxBatch, maxWaitMs: maxWaitMs,
                                   precision: versus)
        defer { _ = other.stop() }
        for text in texts.prefix(8) { _ = BlockingHTTP.infer(other.base, text: text) }
        let mainName = try (precisionOptions.precision ?? TrainingSettings.load(from: RunLayout(directory: run).settingsURL).precision)
            .rawValue
        report.say("\(mainName) against \(versus.rawValue), \(rounds) alternating round(s) of \(seconds) s each: "
                   + "median requests/s of each, ratio of the medians (lowest–highest round)")
        func column(_ name: String) -> String {
            String(repeating: " ", count: max(0, 8 - name.count)) + name.prefix(8)
        }
        report.say("concurrency  \(column(mainName))  \(column(versus.rawValue))  ratio")
        return try concurrency.map { c in
            func rate(_ server: ServeChild) throws -> Double {
                try WrkRun.run(url: server.base + "/v2/models/lethe/infer", texts: texts, connections: c,
                               seconds: Double(seconds), scriptDirectory: scratch).requestsPerSecond
            }
            var mine: [Double] = [], theirs: [Double] = []
            for _ in 0..<rounds {
                theirs.append(try rate(other))
                mine.append(try rate(main))
            }
            let ratios = zip(mine, theirs).map { $0 / $1 }
            let ratio = mine.median / theirs.median
            report.say(String(format: "%11d  %8.1f  %8.1f  %.2f× (%.2f–%.2f)", c, mine.median, theirs.median, ratio,
                              ratios.min() ?? 0, ratios.max() ?? 0))
            return ["concurrency": c, "requests_per_second": mine, "versus_requests_per_second": theirs,
                    "ratio_of_medians": ratio]
        }
    }

    /// Tools/serve_torch.py on the same run under the same wrk runs (no forgets).
    func torchSeries(python: String, run: URL, texts: [String], scratch: URL, report: ResultReport) throws -> [WrkRun] {
        let script = URL(fileURLWithPath: "Tools/serve_torch.py")
        guard FileManager.default.fileExists(atPath: script.path) else {
            throw ValidationError("--python: Tools/serve_torch.py is not here; run from the repository's root.")
        }
        let server = try ServeChild(executable: URL(fileURLWithPath: python),
                                    arguments: [script.path, "--run", run.path, "--threads", "\(threads)"])
        defer { _ = server.stop() }
        for text in texts.prefix(8) { _ = BlockingHTTP.infer(server.base, text: text) }
        report.say("PyTorch (Tools/serve_torch.py, FastAPI + uvicorn, \(threads) torch thread(s)):")
        return try concurrency.map { c in
            let run = try WrkRun.run(url: server.base + "/v2/models/lethe/infer", texts: texts, connections: c,
                                     seconds: Double(seconds), scriptDirectory: scratch)
            report.say(String(format: "%11d  %10.1f  %6.1f  %6.1f  %7d", c, run.requestsPerSecond, run.p50Milliseconds,
                              run.p99Milliseconds, run.errors))
            return run
        }
    }

    static func object(_ run: WrkRun) throws -> Any {
        try JSONSerialization.jsonObject(with: try JSONEncoder.report().encode(run))
    }

    /// The texts of a JSON Lines file (its "text" fields), at most 512.
    static func texts(_ path: String) throws -> [String] {
        let content = try String(contentsOfFile: path, encoding: .utf8)
        let texts = content.split(separator: "\n").prefix(512).compactMap { line -> String? in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])?["text"] as? String
        }
        guard !texts.isEmpty else { throw ValidationError("--data \(path): no line with a \"text\" string.") }
        return texts
    }

    /// Starts a `lethe forget` of `id` and polls inference until an answer comes from the
    /// generation it published; returns that answer's arrival minus served.json's mtime.
    static func swapLatency(binary: URL, run: URL, base: String, id: String, text: String) throws -> Double? {
        let process = Process()
        process.executableURL = binary
        process.arguments = ["forget", "--run", run.path, "--id", id]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        var polls: [(arrival: Date, generation: Int)] = []
        try process.run()
        while process.isRunning {
            if let answer = BlockingHTTP.infer(base, text: text) {
                polls.append((Date(), Int(answer.headers["lethe-generation"] ?? "") ?? -1))
            }
        }
        let servedURL = RunLayout(directory: run).servedURL
        let composition = try ServedComposition.load(from: servedURL)
        let published = (try FileManager.default.attributesOfItem(atPath: servedURL.path)[.modificationDate] as? Date) ?? Date()
        let target = Int(composition.ledgerHead.sequenceNumber)
        let deadline = Date().addingTimeInterval(10)
        while polls.last.map({ $0.generation < target }) ?? true, Date() < deadline {
            if let answer = BlockingHTTP.infer(base, text: text) {
                polls.append((Date(), Int(answer.headers["lethe-generation"] ?? "") ?? -1))
            }
        }
        guard let first = polls.first(where: { $0.generation >= target }) else { return nil }
        return max(0, first.arrival.timeIntervalSince(published))
    }

    struct Limit {
        let requestsPerSecond: Double
        let flopsPerRequest: Double
        let meanTokens: Double
        /// The peak of the frozen weights' products (bf16 or float32).
        let peakGflops: Double
        let float32PeakGflops: Double
        let precision: Precision
    }

    /// FLOPs (2 per multiply-add) of the ensemble's matrix products for one text of each
    /// length, averaged over `texts`, against the measured peaks: the frozen weights' products
    /// at the peak of the served precision, attention and adapters at the float32 one.
    static func flopLimit(run: URL, plan: Plan, texts: [String], threads: Int, precision: Precision?) throws -> Limit {
        let layout = RunLayout(directory: run)
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        let encoder = try settings.loadBaseEncoder(run: run)
        let precision = precision ?? settings.precision
        let ensemble = try RunAccess.servedEnsemble(layout, labels: plan.labels, encoder: encoder)
        let c = encoder.configuration
        let h = Double(c.hiddenSize), inner = Double(c.intermediateSize), layers = c.layerCount
        let shared = ensemble.members.compactMap { $0.model.lowestAdapterLayer }.min() ?? layers
        let loraPerToken = ensemble.members.reduce(0.0) { sum, member in
            let model = member.model
            let perLayer = model.lora.targets.reduce(0.0) { total, target in
                let (input, output) = target.features(hidden: c.hiddenSize, intermediate: c.intermediateSize)
                return total + 2 * Double(model.lora.rank) * Double(input + output)
            }
            return sum + perLayer * Double(model.adapters.count)
        }
        var weightFlops = 0.0, otherFlops = 0.0, tokens = 0.0
        let tokenizer = ensemble.members[0].model
        let layerRuns = Double(shared + ensemble.members.count * (layers - shared))
        for text in texts {
            let n = Double(tokenizer.encode(text).count)
            weightFlops += layerRuns * n * 2 * (4 * h * h + 2 * h * inner)
            otherFlops += layerRuns * 4 * n * n * h + n * loraPerToken
            tokens += n
        }
        let count = Double(texts.count)
        let peak = PeakThroughput.measure(threads: threads)
        let secondsPerRequest = (weightFlops / peak.ceiling(precision) + otherFlops / peak.ceilingGflops) / 1e9 / count
        return Limit(requestsPerSecond: 1 / secondsPerRequest, flopsPerRequest: (weightFlops + otherFlops) / count,
                     meanTokens: tokens / count, peakGflops: peak.ceiling(precision),
                     float32PeakGflops: peak.ceilingGflops, precision: precision)
    }
}

/// Deletions at a steady rate through POST /v1/forget, on a thread of their own.
final class ForgetStream: @unchecked Sendable {
    private let lock = NSLock()
    private var running = true
    private var acknowledged = 0
    private var failed = 0
    private let finished = DispatchSemaphore(value: 0)

    init(base: String, perSecond: Double, ids: [String]) {
        let thread = Thread { [self] in
            let interval = 1 / perSecond
            var due = Date()
            for id in ids {
                guard lock.withLock({ running }) else { break }
                let body = try? JSONSerialization.data(withJSONObject: ["ids": [id]])
                let answer = BlockingHTTP.send("POST", base + "/v1/forget", body: body)
                lock.withLock { if answer?.status == 200 { acknowledged += 1 } else { failed += 1 } }
                due = due.addingTimeInterval(interval)
                let wait = due.timeIntervalSinceNow
                if wait > 0 { Thread.sleep(forTimeInterval: wait) }
            }
            finished.signal()
        }
        thread.start()
    }

    func stop() -> (acknowledged: Int, failed: Int) {
        lock.withLock { running = false }
        finished.wait()
        return lock.withLock { (acknowledged, failed) }
    }
}
