import ArgumentParser
import Forgetting
import CommandSupport
import Foundation
import Kernels
import Planning
import Store
import Support
import Training

/// `lethe bench forget`: latency of single forgets and of a 100,000-request deletion log.
public struct BenchForgetCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Time one forget (median over --count) and a large deletion log, end to end in process.",
        discussion: """
            Plans --data into a temporary run (--shards × --slices, budget --budget, cyclic), \
            puts a stand-in file at every stage path and a full-length served.json (forgetting \
            only names, keeps and erases stage files, so their content does not matter for \
            timing), then forgets --count random examples one request at a time: each is a full \
            forget (flag, ledger append, tombstone log append, publish, erase, receipt; seven fsyncs). Then a \
            fresh run forgets a --log-size request log (ids drawn with repeats and 1% unknown) in \
            one operation. With --run, it also reports the retrain costs recorded in that run \
            (stages/timings.jsonl) as ratios.

            --accuracy adds the measured costs and the accuracy experiment, at the demo's \
            settings (Tools/demo.sh: 4 shards × 3 slices, headlines, r 16 on all six linear \
            layers, 1 layer per block, 3 epochs, lr 3e-3): it trains an S3T run (B = 3) and a \
            SISA run (B = 1), prints ensemble accuracy on --test-data after 10, 50 and 100 \
            random deletions (truncation only) as a table (and an SVG chart with --svg), then \
            times a SISA shard retrain (lethe retrain of one shard), a full retrain of the run (the \
            S3T training of every stage from scratch) and one model on all the data (the full \
            baseline on the same plan), printed beside the forget latency as ratios. It takes \
            about 15–20 minutes on 2 shared cores (three trainings; 18 min measured at load 8–11); \
            the latency part alone \
            takes under a minute.

            Examples:
              lethe bench forget --data Datasets/bbc-news/train.jsonl
              lethe bench forget --accuracy --svg forget-accuracy.svg

            \(BenchHelp.exitCodes)
            """
    )

    @Option(help: "Dataset to plan.") var data = "Datasets/bbc-news/train.jsonl"
    @Option(help: "Shards m, \(rangeText(PlanParameters.shardLimit)).") var shards = 4
    @Option(help: "Slices L, \(rangeText(PlanParameters.sliceLimit)).") var slices = 3
    @Option(help: "Budget B, \(rangeText(PlanParameters.budgetLimit)) and at most L!.") var budget = 3
    @Option(help: "Single forgets to time, \(Self.forgetBounds.text).") var count = 100
    @Option(help: "Requests in the deletion log, \(Self.logBounds.text).") var logSize = 100_000
    @Option(name: .customLong("run"), help: "A trained run whose recorded stage wall times give the retrain costs.")
    var trainedRun: String?
    @Flag(help: "Also train S3T and SISA runs: accuracy after deletions, shard and full retrain times (about 15–20 min).")
    var accuracy = false
    @Option(help: "Test split for --accuracy.") var testData = "Datasets/bbc-news/test.jsonl"
    @Option(help: "Write the accuracy chart (SVG) here; implies --accuracy.") var svg: String?
    @Option(help: "Threads for --accuracy training, \(CommonBounds.threads.text).") var threads = CommonBounds.defaultThreads
    @Option(help: "Base encoder for --accuracy.") var model = "Checkpoints/base/all-MiniLM-L6-v2"
    @Flag(help: "Also print the median time of each phase of a forget, and the fsync floor of the disk.")
    var breakdown = false
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    static let forgetBounds = OptionBounds(1...100_000)
    static let logBounds = OptionBounds(1...10_000_000)

    public func validate() throws {
        if let trainedRun { try RunOptions.checkUTF8(trainedRun, option: "--run") }
        do { try PlanParameters(shardCount: shards, sliceCount: slices, budget: budget).validate() } catch {
            throw ValidationError("\(error)")
        }
        try Self.forgetBounds.check(count, option: "--count")
        try Self.logBounds.check(logSize, option: "--log-size")
        try CommonBounds.threads.check(threads, option: "--threads")
    }

    public func run() throws {
        let dataset = try Dataset.read(from: URL(fileURLWithPath: data), source: data)
        var generator = SplitMix64(seed: 1)
        let single = try measureSingleForgets(dataset, generator: &generator)
        let log = try measureLog(dataset, generator: &generator)
        let median = single.latencies[single.latencies.count / 2]
        var report = timings(single, log, median: median)
        let experiment = try accuracyExperiment(median: median, report: &report)
        if json {
            struct Output: Encodable { var timings: [String: Double]; var accuracy: ForgetAccuracyExperiment.Result? }
            print(String(decoding: try JSONEncoder.report().encode(Output(timings: report, accuracy: experiment)), as: UTF8.self))
            return
        }
        printForgets(dataset, single, log, median: median, experiment: experiment)
        printRetrains(report, median: median, experiment: experiment)
    }

    /// Single forgets on one long-lived engine, with per-phase times and the fsync floor.
    struct SingleForgets {
        var latencies: [Double] = []          // sorted
        var cpuTimes: [Double] = []           // CPU time of the process per forget: what load does not inflate
        var phases: [ForgetPhase?: [Double]] = [:]  // nil: the rest (lock, logic, receipt build)
        var floor: (file: Double, directory: Double, fileP90: Double)?
    }

    /// One log of `logSize` requests in one forget.
    struct LogForget {
        var seconds: Double
        var parseSeconds: Double
        var cpuSeconds: Double
        var receipt: ForgetReceipt?
        var phaseSeconds: [ForgetPhase: Double]
    }

    private func measureSingleForgets(_ dataset: Dataset, generator: inout SplitMix64) throws -> SingleForgets {
        let ids = dataset.examples.map(\.id)
        let clock = ContinuousClock()
        let single = try scratchRun(dataset)
        defer { try? FileManager.default.removeItem(at: single) }
        var result = SingleForgets()
        let forgetter = Forgetter(run: single)
        let probe = breakdown ? try FsyncProbe(in: single) : nil
        for index in 0..<count {
            let id = ids[generator.next(below: ids.count)]
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let cpuStart = Self.processCPUSeconds()
            let elapsed = try clock.measure {
                _ = try forgetter.forget([ForgetRequest(target: .example(id), requestID: "bench-\(index)")],
                                         nowMilliseconds: now)
            }
            result.cpuTimes.append(Self.processCPUSeconds() - cpuStart)
            result.latencies.append(seconds(elapsed))
            for phase in ForgetPhase.allCases {
                result.phases[phase, default: []].append(forgetter.lastPhaseSeconds[phase] ?? 0)
            }
            result.phases[nil, default: []].append(seconds(elapsed) - forgetter.lastPhaseSeconds.values.reduce(0, +))
            probe?.sample()  // between forgets: what an fsync costs right now
        }
        result.latencies.sort()
        result.floor = probe.map { (file: $0.file.median, directory: $0.directory.median,
                                    fileP90: $0.file.sorted()[$0.file.count * 9 / 10]) }
        return result
    }

    private func measureLog(_ dataset: Dataset, generator: inout SplitMix64) throws -> LogForget {
        let ids = dataset.examples.map(\.id)
        let clock = ContinuousClock()
        let batch = try scratchRun(dataset)
        defer { try? FileManager.default.removeItem(at: batch) }
        var lines = ""
        for index in 0..<logSize {
            let id = index % 100 == 99 ? "no-such-\(index)" : ids[generator.next(below: ids.count)]
            lines += "{\"id\":\"\(id)\",\"request_id\":\"log-\(index)\"}\n"
        }
        let logURL = batch.appendingPathComponent("requests.jsonl")
        try Data(lines.utf8).write(to: logURL)
        var receipt: ForgetReceipt?
        let parseStart = clock.now
        let requests = try RequestLog.read(from: logURL)
        let parseSeconds = seconds(clock.now - parseStart)
        let logForgetter = Forgetter(run: batch)
        let cpuStart = Self.processCPUSeconds()
        let forgetSeconds = try seconds(clock.measure {
            receipt = try logForgetter.forget(requests, nowMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        })
        return LogForget(seconds: forgetSeconds + parseSeconds, parseSeconds: parseSeconds,
                         cpuSeconds: Self.processCPUSeconds() - cpuStart,  // the forget, without the parse
                         receipt: receipt, phaseSeconds: logForgetter.lastPhaseSeconds)
    }

    /// The timings as the JSON report names them.
    private func timings(_ single: SingleForgets, _ log: LogForget, median: Double) -> [String: Double] {
        var report: [String: Double] = [
            "single_forget_median_ms": median * 1e3,
            "single_forget_p90_ms": single.latencies[single.latencies.count * 9 / 10] * 1e3,
            "single_forget_cpu_median_ms": single.cpuTimes.median * 1e3,
            "log_seconds": log.seconds, "log_parse_seconds": log.parseSeconds, "log_forget_cpu_seconds": log.cpuSeconds,
            "log_requests": Double(logSize), "log_forgotten_examples": Double(log.receipt?.forgottenExamples.count ?? 0),
        ]
        if breakdown {
            for (phase, values) in single.phases {
                report["phase_median_ms." + (phase?.key ?? "other")] = values.median * 1e3
            }
            for (phase, value) in log.phaseSeconds { report["log_phase_ms." + phase.key] = value * 1e3 }
            if let floor = single.floor {
                report["fsync_file_median_ms"] = floor.file * 1e3
                report["fsync_directory_median_ms"] = floor.directory * 1e3
            }
        }
        return report
    }

    /// Retrain times: recorded in a trained run (`--run`) and measured (`--accuracy`), whose
    /// accuracy-after-deletions experiment is returned.
    private func accuracyExperiment(median: Double, report: inout [String: Double]) throws -> ForgetAccuracyExperiment.Result? {
        if let trainedRun {
            let (shard, total) = try recordedRetrainSeconds(URL(fileURLWithPath: trainedRun))
            report["sisa_shard_retrain_seconds"] = shard
            report["full_retrain_seconds"] = total
            report["ratio_shard_retrain_to_forget"] = shard / median
            report["ratio_full_retrain_to_forget"] = total / median
        }
        guard accuracy || svg != nil else { return nil }
        let workspace = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-accuracy-\(UUID().uuidString)")
        let cleanup = InterruptCleanup.shared.remove(workspace)
        defer { InterruptCleanup.shared.release(cleanup); try? FileManager.default.removeItem(at: workspace) }
        let result = try ForgetAccuracyExperiment(
            trainData: data, testData: testData, shardCount: shards, sliceCount: slices, deletionCounts: [10, 50, 100],
            seed: 2, threads: threads, modelDirectory: model
        ).run(in: workspace) { line in if !json { print(line); fflush(nil) } }
        report["measured_sisa_shard_retrain_seconds"] = result.sisaShardRetrainSeconds
        report["measured_full_retrain_seconds"] = result.fullRetrainSeconds
        report["ratio_measured_sisa_shard_retrain_to_forget"] = result.sisaShardRetrainSeconds / median
        report["ratio_measured_full_retrain_to_forget"] = result.fullRetrainSeconds / median
        if let s3t = result.trainSeconds["s3t"] {
            report["measured_s3t_run_retrain_seconds"] = s3t
            report["ratio_measured_s3t_run_retrain_to_forget"] = s3t / median
        }
        if let svg {
            let chart = ForgetAccuracyChart(title: "BBC News: accuracy after random deletions (m = \(shards), L = \(slices))",
                                            points: result.points)
            try Data(chart.svg().utf8).write(to: URL(fileURLWithPath: svg))
        }
        return result
    }

    private func printForgets(_ dataset: Dataset, _ single: SingleForgets, _ log: LogForget, median: Double,
                              experiment: ForgetAccuracyExperiment.Result?) {
        print("BLAS core: \(BLASRuntime.coreName)" + (experiment == nil ? " (unused: forgetting does no math)" : ""))
        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").prefix(3)
        print("Load average (1, 5, 15 min) at the end: " + (load?.joined(separator: " ") ?? "unknown"))
        print("Run: \(dataset.examples.count) examples, \(shards) shards × \(slices) slices, budget \(budget)")
        print(String(format: "One forget (median of %d, end to end in process): %.2f ms (p90 %.2f ms)",
                     count, median * 1e3, single.latencies[single.latencies.count * 9 / 10] * 1e3))
        print(String(format: "  CPU time of the process per forget: median %.2f ms", single.cpuTimes.median * 1e3))
        print("  seven fsyncs each: unfinished-forget flag, ledger requests, tombstone log, served.json + its directory, "
              + "stage directory, ledger receipt")
        if breakdown {
            print("  per phase (median ms over the \(count) forgets):")
            for phase in ForgetPhase.allCases.map(Optional.some) + [nil] {
                let name = phase?.rawValue ?? "other (lock, logic, receipt build)"
                print("    " + name.padding(toLength: 36, withPad: " ", startingAt: 0)
                      + String(format: "%8.3f", (single.phases[phase] ?? []).median * 1e3))
            }
            if let floor = single.floor {
                print(String(format: "  fsync floor, sampled between the forgets (median of %d): file append + fsync %.3f ms "
                             + "(p90 %.3f ms), directory fsync after a rename %.3f ms", count, floor.file * 1e3,
                             floor.fileP90 * 1e3, floor.directory * 1e3))
            }
        }
        print(String(format: "Log of %d requests: %.2f s (parse %.2f s; CPU time of the forget %.2f s), %d examples forgotten",
                     logSize, log.seconds, log.parseSeconds, log.cpuSeconds, log.receipt?.forgottenExamples.count ?? 0))
        if breakdown {
            print("  phases (ms): " + ForgetPhase.allCases.map { phase in
                String(format: "%@ %.1f", phase.rawValue, (log.phaseSeconds[phase] ?? 0) * 1e3)
            }.joined(separator: ", "))
        }
    }

    private func printRetrains(_ report: [String: Double], median: Double, experiment: ForgetAccuracyExperiment.Result?) {
        if let shard = report["sisa_shard_retrain_seconds"], let total = report["full_retrain_seconds"] {
            print(String(format: "Recorded retrain: one shard %.1f s (%.0f× a forget), full %.1f s (%.0f× a forget)",
                         shard, shard / median, total, total / median))
        } else if experiment == nil {
            print("Retrain ratios: pass --accuracy (measured) or --run with a trained run (recorded stage wall times).")
        }
        if let experiment {
            print(String(format: "Measured SISA shard retrain (%d stages): %.1f s = %.0f× a forget",
                         experiment.sisaShardRetrainStages, experiment.sisaShardRetrainSeconds,
                         experiment.sisaShardRetrainSeconds / median))
            // "Full retrain on the same run": every stage of every shard of the run, from
            // scratch, which is what a deletion would cost without S3T's truncation. One model on all
            // the data (the full baseline) is printed beside it for comparison.
            if let s3t = experiment.trainSeconds["s3t"] {
                print(String(format: "Measured full retrain of the run from scratch (every stage of every shard): %.1f s = %.0f× a forget (target ≥ 10^4×)",
                             s3t, s3t / median))
            }
            print(String(format: "Measured training of one model on all the data (the full baseline, same plan): %.1f s = %.0f× a forget",
                         experiment.fullRetrainSeconds, experiment.fullRetrainSeconds / median))
            print("Training: " + experiment.trainSeconds.sorted { $0.key < $1.key }
                .map { String(format: "%@ %.1f s", $0.key, $0.value) }.joined(separator: ", "))
            print("\nEnsemble accuracy on \(testData) after random deletions (no retraining):")
            print("deletions | " + experiment.points.map { "\($0.strategy) B=\($0.budget)" }.uniqued().joined(separator: " | "))
            for count in experiment.points.map(\.deletions).uniqued() {
                let cells = experiment.points.filter { $0.deletions == count }.map { point in
                    (point.accuracy.map { String(format: "%.2f%%", $0 * 100) } ?? "dead") + " (\(point.liveShards) live)"
                }
                print(String(format: "%9d | ", count) + cells.joined(separator: " | "))
            }
            print(String(format: "Expected random deletions before every shard is dead (docs/DESIGN.md §1): S3T B=3 %.1f, SISA %.1f",
                         DeletionRateTheory.s3t(shardCount: shards, sliceCount: slices, budget: 3),
                         DeletionRateTheory.sisa(shardCount: shards, sliceCount: slices)))
            if let svg { print("chart: \(svg)") }
        }
    }


    /// A planned run with stand-in stage files and a full-length composition.
    private func scratchRun(_ dataset: Dataset) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-forget-\(UUID().uuidString)")
        _ = InterruptCleanup.shared.remove(directory)  // the caller removes it when the benchmark ends
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: shards, sliceCount: slices,
                                                                                 budget: budget))
        try plan.save(to: Plan.url(inRun: directory))
        let layout = RunLayout(directory: directory)
        var entries: [ServedComposition.Entry] = []
        for shard in 0..<shards {
            try FileManager.default.createDirectory(at: layout.shardDirectory(shard), withIntermediateDirectories: true)
            var servedKeys: [StageKey] = []
            for (index, sequence) in plan.sequences(of: shard).enumerated() {
                for length in 1...slices {
                    let key = StageKey(prefixSliceHashes: sequence.prefix(length).map { plan.sliceHash(shard: shard, slice: $0) })
                    _ = FileManager.default.createFile(atPath: layout.stageURL(shard: shard, stage: length, key: key).path,
                                                       contents: Data(count: 4096))
                    if index == 0 { servedKeys.append(key) }
                }
            }
            entries.append(.init(shard: shard, sequence: 0, prefixLength: slices, stageKeys: servedKeys))
        }
        try ServedComposition(strategy: .s3t, shards: entries, ledgerHead: .empty).save(to: layout)
        return directory
    }

    /// (the largest shard's summed stage wall time, all shards' sum) from a trained run: the
    /// run's timings log (the last time of each stage file still on disk), or for stage files
    /// of format 2 their `wall_time_seconds`.
    private func recordedRetrainSeconds(_ run: URL) throws -> (Double, Double) {
        let layout = RunLayout(directory: run)
        var logged: [String: Double] = [:]
        if let text = try? String(contentsOf: layout.timingsURL, encoding: .utf8) {
            for line in text.split(separator: "\n") {
                guard let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any],
                      let shard = object["shard"] as? Int, let stage = object["stage"] as? Int,
                      let key = object["key"] as? String, let seconds = object["seconds"] as? Double else { continue }
                logged[layout.stageURL(shard: shard, stage: stage, key: StageKey(hex: key)).path] = seconds
            }
        }
        var perShard: [Double] = []
        let stages = layout.stagesDirectory
        for name in try FileManager.default.contentsOfDirectory(atPath: stages.path) where name.hasPrefix("shard-") {
            var sum = 0.0
            let directory = stages.appendingPathComponent(name)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".h5") && !file.hasPrefix(".") {
                let url = directory.appendingPathComponent(file)
                if let seconds = logged[url.path] { sum += seconds; continue }
                let handle = try HDF5File.openSealed(url)
                sum += (try? handle.doubleAttribute(named: "wall_time_seconds")) ?? 0
                try handle.close()
            }
            perShard.append(sum)
        }
        return (perShard.max() ?? 0, perShard.reduce(0, +))
    }

    private func seconds(_ duration: Duration) -> Double { duration.seconds }

    /// User + system CPU time of this process so far.
    private static func processCPUSeconds() -> Double {
        var time = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) * 1e-9
    }
}

/// The cost of the fsyncs a forget cannot avoid, on the disk holding the run and under the
/// machine's load at the time: appending 64 bytes to a file and fsyncing it, and fsyncing a
/// directory after a rename in it. `lethe bench forget --breakdown` samples it between forgets.
final class FsyncProbe {
    private let path: String
    private let descriptor: Int32
    private let folder: Int32
    private var round = 0
    private(set) var file: [Double] = []
    private(set) var directory: [Double] = []

    init(in run: URL) throws {
        path = run.appendingPathComponent(".fsync-probe").path
        descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        folder = open(run.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard descriptor >= 0, folder >= 0 else {
            throw ValidationError("cannot open \(path) for the fsync probe (\(String(cString: strerror(errno))), errno \(errno))")
        }
    }

    deinit { close(descriptor); close(folder); unlink(path); unlink(path + ".renamed") }

    /// One append + fsync and one rename + directory fsync.
    func sample() {
        let clock = ContinuousClock()
        let bytes = [UInt8](repeating: 0x2A, count: 64)
        _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        file.append(clock.measure { _ = fsync(descriptor) }.seconds)
        let (from, to) = round % 2 == 0 ? (path, path + ".renamed") : (path + ".renamed", path)
        round += 1
        _ = rename(from, to)
        directory.append(clock.measure { _ = fsync(folder) }.seconds)
    }
}

extension Array where Element: Hashable {
    /// The elements in order, each kept at its first occurrence.
    func uniqued() -> [Element] {
        var seen = Set<Element>()
        return filter { seen.insert($0).inserted }
    }
}
