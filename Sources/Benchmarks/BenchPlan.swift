import ArgumentParser
import CommandSupport
import Foundation
import Kernels
import Planning
import Support

/// `lethe bench plan`: plans a synthetic 1,000,000-example dataset and times lineage lookups.
public struct BenchPlanCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "plan",
        abstract: "Time `lethe plan` on a synthetic JSON Lines file and the lineage lookup (targets: plan ≤ 15 s, p99 ≤ 50 µs).",
        discussion: """
            Writes a synthetic dataset into a temporary directory (ids like "user-001234/000017", \
            a ~60-character text, one of 5 labels, a group per user), plans it as \
            `lethe plan` does (read + validate, partition, hash, select, save plan.h5), loads the \
            plan back (all invariants checked), then looks up random ids and reports the median \
            and p99 latency, and the peak resident memory (getrusage ru_maxrss).

            Example:
              lethe bench plan --examples 100000 --shards 20 --slices 10 --budget 5

            \(BenchHelp.exitCodes)
            """
    )

    @Option(help: "Number of synthetic examples, \(Self.exampleBounds.text).")
    var examples: Int = 1_000_000

    @Option(help: "Number of random lookups, \(BenchBounds.items.text).")
    var lookups: Int = 100_000

    @Option(help: "Shards m of the benchmark plan, \(rangeText(PlanParameters.shardLimit)).")
    var shards: Int = 10
    @Option(help: "Slices L of the benchmark plan, \(rangeText(PlanParameters.sliceLimit)).")
    var slices: Int = 8
    @Option(help: "Budget B of the benchmark plan, \(rangeText(PlanParameters.budgetLimit)) and at most L!.")
    var budget: Int = 8

    @Option(help: "Seed of the data generator, the plan and the lookups, \(CommonBounds.seedText).")
    var seed: UInt64 = 1
    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// `--examples`: the synthetic file takes about 100 bytes per example.
    static let exampleBounds = OptionBounds(1...50_000_000)

    public func validate() throws {
        try Self.exampleBounds.check(examples, option: "--examples")
        try BenchBounds.items.check(lookups, option: "--lookups")
        do { try PlanParameters(shardCount: shards, sliceCount: slices, budget: budget).validate() } catch {
            throw ValidationError("\(error)")
        }
    }

    public func run() throws {
        let report = ResultReport(json: json)
        let clock = ContinuousClock()
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-plan-\(UUID().uuidString)")
        let cleanup = InterruptCleanup.shared.remove(directory)
        defer { InterruptCleanup.shared.release(cleanup) }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        report.say("BLAS core: \(BLASRuntime.coreName) (unused here)")

        let dataURL = directory.appendingPathComponent("synthetic.jsonl")
        var start = clock.now
        let ids = try Self.writeSynthetic(count: examples, seed: seed, to: dataURL)
        let byteCount = (try? FileManager.default.attributesOfItem(atPath: dataURL.path)[.size] as? Int) ?? 0
        report.say(String(format: "generated %d examples (%.1f MB) in %.2f s", examples, Double(byteCount) / 1e6,
                     (clock.now - start).seconds))

        start = clock.now
        let cpuStart = Self.cpuSeconds()
        let datasetStart = clock.now
        let dataset = try Dataset.read(from: dataURL)
        let readSeconds = (clock.now - datasetStart).seconds
        let planStart = clock.now
        let plan = try Planner.makePlan(for: dataset, parameters: PlanParameters(
            shardCount: shards, sliceCount: slices, budget: budget, seed: seed))
        let planSeconds = (clock.now - planStart).seconds
        let saveStart = clock.now
        let planURL = Plan.url(inRun: directory)
        try plan.save(to: planURL)
        let saveSeconds = (clock.now - saveStart).seconds
        let totalSeconds = (clock.now - start).seconds
        let cpuSeconds = Self.cpuSeconds() - cpuStart
        report.say(String(format: "plan: %.2f s total (read+validate %.2f s, partition+hash+select+check %.2f s, save %.2f s) — target ≤ 15 s",
                     totalSeconds, readSeconds, planSeconds, saveSeconds))
        // On a shared machine wall time includes waiting for a core; CPU time does not.
        report.say(String(format: "plan: %.2f s of CPU time (user + system, one thread)", cpuSeconds))

        start = clock.now
        let loaded = try Plan.load(from: planURL)
        let loadSeconds = (clock.now - start).seconds
        report.say(String(format: "load plan.h5 with invariant checks: %.2f s", loadSeconds))

        var generator = SplitMix64(seed: seed ^ 0x5EED)
        var latencies: [Double] = []
        latencies.reserveCapacity(lookups)
        var found = 0
        for _ in 0..<lookups {
            let id = ids[generator.next(below: ids.count)]
            let lookupStart = clock.now
            let lineage = loaded.lineage(of: id)
            latencies.append((clock.now - lookupStart).seconds * 1e6)
            if lineage != nil { found += 1 }
        }
        latencies.sort()
        let p50 = latencies[latencies.count / 2]
        let p99 = latencies[min(latencies.count - 1, Int(Double(latencies.count) * 0.99))]
        report.say(String(format: "lookup (lineage: shard, slice, hash, %d stage positions) over %d random ids: p50 %.2f µs, p99 %.2f µs, max %.1f µs — target p99 ≤ 50 µs",
                     budget, lookups, p50, p99, latencies.last ?? 0))
        precondition(found == lookups, "every generated id must be found")
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        report.say(String(format: "peak resident memory: %.0f MB (ru_maxrss)", Double(usage.ru_maxrss) / 1024))
        for (key, value): (String, Any) in [
            ("examples", examples), ("shards", shards), ("slices", slices), ("budget", budget), ("bytes", byteCount),
            ("plan_seconds", totalSeconds), ("read_seconds", readSeconds), ("partition_seconds", planSeconds),
            ("save_seconds", saveSeconds), ("plan_cpu_seconds", cpuSeconds), ("load_seconds", loadSeconds),
            ("lookups", lookups), ("lookup_p50_us", p50), ("lookup_p99_us", p99), ("lookup_max_us", latencies.last ?? 0),
            ("peak_resident_mb", Double(usage.ru_maxrss) / 1024),
        ] { report.record(key, value) }
        try report.finish()
    }

    /// User + system CPU seconds of this process so far.
    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec)
            + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) * 1e-6
    }

    /// Writes `count` JSON Lines examples and returns their ids.
    static func writeSynthetic(count: Int, seed: UInt64, to url: URL) throws -> [String] {
        var generator = SplitMix64(seed: seed)
        let labels = ["business", "entertainment", "politics", "sport", "tech"]
        let words = ["market", "growth", "film", "vote", "match", "phone", "profit", "award", "minister", "goal",
                     "chip", "shares", "actor", "party", "team", "network"]
        var ids: [String] = []
        ids.reserveCapacity(count)
        var out = Data()
        out.reserveCapacity(count * 110)
        for index in 0..<count {
            let user = index / 20
            let id = String(format: "user-%06d/%06d", user, index)
            ids.append(id)
            let text = (0..<8).map { _ in words[generator.next(below: words.count)] }.joined(separator: " ")
            let label = labels[generator.next(below: labels.count)]
            out.append(contentsOf: Array("{\"id\": \"\(id)\", \"text\": \"\(text)\", \"label\": \"\(label)\", \"group\": \"user-\(user)\"}\n".utf8))
        }
        try out.write(to: url)
        return ids
    }
}
