import ArgumentParser
import Forgetting
import Foundation
import Kernels
import Planning
import Store

/// `lethe bench forget`: latency of single forgets and of a 100,000-request deletion log.
struct BenchForget: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Time one forget (median over --count) and a large deletion log, end to end in process.",
        discussion: """
            Plans --data into a temporary run (--shards × --slices, budget --budget, cyclic), \
            puts a stand-in file at every stage path and a full-length served.json (forgetting \
            only names, keeps and erases stage files, so their content does not matter for \
            timing), then forgets --count random examples one request at a time: each is a full \
            forget (ledger append, plan rewrite, publish, erase, receipt; four fsyncs). Then a \
            fresh run forgets a --log-size request log (ids drawn with repeats and 1% unknown) in \
            one operation. With --run, it also reports the retrain costs recorded in that run's \
            stage files (wall_time_seconds) as ratios.

            Example:
              lethe bench forget --data Datasets/bbc-news/train.jsonl
            """
    )

    @Option(help: "Dataset to plan.") var data = "Datasets/bbc-news/train.jsonl"
    @Option(help: "Shards m.") var shards = 4
    @Option(help: "Slices L.") var slices = 3
    @Option(help: "Budget B.") var budget = 3
    @Option(help: "Single forgets to time.") var count = 100
    @Option(help: "Requests in the deletion log.") var logSize = 100_000
    @Option(name: .customLong("run"), help: "A trained run whose recorded stage wall times give the retrain costs.")
    var trainedRun: String?
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        let dataset = try Dataset.read(from: URL(fileURLWithPath: data), source: data)
        let ids = dataset.examples.map(\.id)
        var generator = SeededGenerator(seed: 1)
        let clock = ContinuousClock()

        let single = try scratchRun(dataset)
        defer { try? FileManager.default.removeItem(at: single) }
        var latencies: [Double] = []
        let forgetter = Forgetter(run: single)
        for index in 0..<count {
            let id = ids[generator.next(below: ids.count)]
            let now = Int64(Date().timeIntervalSince1970 * 1000)
            let elapsed = try clock.measure {
                _ = try forgetter.forget([ForgetRequest(target: .example(id), requestID: "bench-\(index)")],
                                         nowMilliseconds: now)
            }
            latencies.append(seconds(elapsed))
        }
        latencies.sort()

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
        let logSeconds = try seconds(clock.measure {
            receipt = try Forgetter(run: batch).forget(requests, nowMilliseconds: Int64(Date().timeIntervalSince1970 * 1000))
        }) + parseSeconds

        let median = latencies[latencies.count / 2]
        var report: [String: Double] = [
            "single_forget_median_ms": median * 1e3,
            "single_forget_p90_ms": latencies[latencies.count * 9 / 10] * 1e3,
            "log_seconds": logSeconds, "log_parse_seconds": parseSeconds,
            "log_requests": Double(logSize), "log_forgotten_examples": Double(receipt?.forgottenExamples.count ?? 0),
        ]
        if let trainedRun {
            let (shard, total) = try recordedRetrainSeconds(URL(fileURLWithPath: trainedRun))
            report["sisa_shard_retrain_seconds"] = shard
            report["full_retrain_seconds"] = total
            report["ratio_shard_retrain_to_forget"] = shard / median
            report["ratio_full_retrain_to_forget"] = total / median
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("BLAS core: \(BLASRuntime.coreName) (unused: forgetting does no math)")
        print("Run: \(dataset.examples.count) examples, \(shards) shards × \(slices) slices, budget \(budget)")
        print(String(format: "One forget (median of %d, end to end in process): %.2f ms (p90 %.2f ms)",
                     count, median * 1e3, latencies[latencies.count * 9 / 10] * 1e3))
        print("  four fsyncs each: ledger requests, plan.h5, served.json, ledger receipt (+ directory fsyncs)")
        print(String(format: "Log of %d requests: %.2f s (parse %.2f s), %d examples forgotten",
                     logSize, logSeconds, parseSeconds, receipt?.forgottenExamples.count ?? 0))
        if let shard = report["sisa_shard_retrain_seconds"], let total = report["full_retrain_seconds"] {
            print(String(format: "Recorded retrain: one shard %.1f s (%.0f× a forget), full %.1f s (%.0f× a forget)",
                         shard, shard / median, total, total / median))
        } else {
            print("Retrain ratios: pass --run with a trained run (its stage files record wall_time_seconds).")
        }
    }

    /// A planned run with stand-in stage files and a full-length composition.
    private func scratchRun(_ dataset: Dataset) throws -> URL {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-forget-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(shardCount: shards, sliceCount: slices,
                                                                                 budget: budget))
        try plan.save(to: Plan.url(inRun: directory))
        var entries: [ServedCompositionFile.Entry] = []
        for shard in 0..<shards {
            try FileManager.default.createDirectory(at: StageFiles.shardDirectory(run: directory, shard: shard),
                                                    withIntermediateDirectories: true)
            var servedKeys: [String] = []
            for (index, sequence) in plan.sequences(of: shard).enumerated() {
                for length in 1...slices {
                    let key = StageFiles.key(prefixSliceHashes: sequence.prefix(length).map { plan.sliceHash(shard: shard, slice: $0) })
                    FileManager.default.createFile(atPath: StageFiles.url(run: directory, shard: shard, stage: length, key: key).path,
                                                   contents: Data(count: 4096))
                    if index == 0 { servedKeys.append(key) }
                }
            }
            entries.append(.init(shard: shard, sequence: 0, prefixLength: slices, stageKeys: servedKeys))
        }
        try ServedCompositionFile(strategy: "s3t", shards: entries, ledgerHead: nil).publish(inRun: directory)
        return directory
    }

    /// (the largest shard's summed stage wall time, all shards' sum) from a trained run.
    private func recordedRetrainSeconds(_ run: URL) throws -> (Double, Double) {
        var perShard: [Double] = []
        let stages = run.appendingPathComponent("stages")
        for name in try FileManager.default.contentsOfDirectory(atPath: stages.path) where name.hasPrefix("shard-") {
            var sum = 0.0
            let directory = stages.appendingPathComponent(name)
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".h5") && !file.hasPrefix(".") {
                let handle = try HDF5File.open(directory.appendingPathComponent(file))
                sum += (try? handle.doubleAttribute(named: "wall_time_seconds")) ?? 0
                try handle.close()
            }
            perShard.append(sum)
        }
        return (perShard.max() ?? 0, perShard.reduce(0, +))
    }

    private func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
