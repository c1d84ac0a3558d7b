import ArgumentParser
import CommandSupport
import Forgetting
import Foundation
import Planning
import Store
import Training

/// `lethe train --scheduler slurm`: one Slurm job array over exactly the shards that need
/// work. Each task runs `lethe train --run RUN --shard $SLURM_ARRAY_TASK_ID --task`, which
/// trains that shard's stages (atomic renames, the stage gate re-reading the deletions at each
/// commit) and writes its result record; tasks never touch the ledger or served.json. With
/// `--wait` this side follows the array and then publishes the composition under the run lock,
/// from the deletions current at that moment: a stage a task trained on an example deleted
/// meanwhile is never published.
struct SlurmSubmission {
    let layout: RunLayout
    let settings: TrainingSettings
    let shards: [Int]
    let options: SchedulerOptions
    let data: String?
    /// The shards `train` publishes once the array is done: those submitted and those the call
    /// named that needed no task (trained by an earlier array that nobody followed to its end).
    var publishing: [Int] = []
    /// What each task runs: `train` (stages of the plan) or `retrain` (stages of the rebuilt
    /// slices); `train` publishes after the array, `retrain`'s caller goes on to retrain locally,
    /// which finds the stages trained and publishes.
    var subcommand = "train"

    var directory: URL { layout.directory.appendingPathComponent("slurm") }
    var resultsDirectory: URL { directory.appendingPathComponent("results") }
    func resultURL(shard: Int) -> URL { resultsDirectory.appendingPathComponent("shard-\(shard).json") }

    /// The record an array task writes when its shard's stages are trained.
    struct TaskResult: Codable {
        var shard: Int
        var job: String?
        var trainedStages: Int
        var withheldStages: Int
        enum CodingKeys: String, CodingKey {
            case shard, job, trainedStages = "trained_stages", withheldStages = "withheld_stages"
        }
    }

    /// The batch script: one array task per shard in `shards`, at most --max-parallel at once.
    func script(lethe: String) -> String {
        let threads = options.cpusPerTask ?? settings.threadCount
        var lines = ["#!/bin/bash",
                     "# Written by `lethe train --scheduler slurm`; resubmit with: sbatch <this file>",
                     "#SBATCH --job-name=lethe-\(subcommand)",
                     "#SBATCH --array=\(Self.arrayRanges(shards))" + (options.maxParallel.map { "%\($0)" } ?? ""),
                     "#SBATCH --cpus-per-task=\(threads)",
                     // sbatch expands % patterns in the path: the directory's own % are doubled.
                     Self.directive("--output", directory.path.replacingOccurrences(of: "%", with: "%%") + "/logs/%A_%a.log"),
                     "#SBATCH --requeue", "#SBATCH --open-mode=append"]
        if let partition = options.partition { lines.append(Self.directive("--partition", partition)) }
        if let time = options.time { lines.append(Self.directive("--time", time)) }
        if let mem = options.mem { lines.append(Self.directive("--mem", mem)) }
        if let gres = options.gres { lines.append(Self.directive("--gres", gres)) }
        for argument in options.sbatchArg {
            // `--name=value`: the value is quoted like any other; anything else goes as written.
            if argument.hasPrefix("--"), let equals = argument.firstIndex(of: "=") {
                lines.append(Self.directive(String(argument[..<equals]), String(argument[argument.index(after: equals)...])))
            } else {
                lines.append("#SBATCH \(argument)")
            }
        }
        var command = [lethe, subcommand, "--run", layout.directory.path, "--shard", "\"$SLURM_ARRAY_TASK_ID\"",
                       "--threads", "\(threads)", "--task"].map { $0.hasPrefix("\"") ? $0 : Self.quoted($0) }
        if let data { command += ["--data", Self.quoted(URL(fileURLWithPath: data).standardizedFileURL.path)] }
        lines += ["set -euo pipefail", "exec " + command.joined(separator: " ")]
        return lines.joined(separator: "\n") + "\n"
    }

    /// An `#SBATCH --name=value` line; sbatch splits directives at white space unless the value
    /// is in double quotes (a run directory with a space in its path).
    static func directive(_ name: String, _ value: String) -> String {
        value.contains(where: { $0.isWhitespace }) ? "#SBATCH \(name)=\"\(value)\"" : "#SBATCH \(name)=\(value)"
    }

    /// The array's task ids as Slurm ranges ("0-5,7,9-12"): a plan of thousands of shards
    /// listed one by one exceeds what sbatch accepts in a directive.
    static func arrayRanges(_ shards: [Int]) -> String {
        var parts: [String] = []
        var index = 0
        let sorted = shards.sorted()
        while index < sorted.count {
            var end = index
            while end + 1 < sorted.count, sorted[end + 1] == sorted[end] + 1 { end += 1 }
            parts.append(end == index ? "\(sorted[index])" : "\(sorted[index])-\(sorted[end])")
            index = end + 1
        }
        return parts.joined(separator: ",")
    }

    static func quoted(_ text: String) -> String {
        text.allSatisfy({ $0.isLetter || $0.isNumber || "/._-=:".contains($0) }) ? text
            : "'" + text.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }

    /// Writes the task's result record (the coordinator counts a shard done by it).
    static func recordResult(layout: RunLayout, shard: Int, outcome: S3TRunner.Outcome) throws {
        let result = TaskResult(shard: shard, job: ProcessInfo.processInfo.environment["SLURM_ARRAY_JOB_ID"],
                                trainedStages: outcome.trained.count, withheldStages: outcome.withheld.count)
        let directory = layout.directory.appendingPathComponent("slurm/results")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try JSONEncoder().encode(result).write(to: directory.appendingPathComponent("shard-\(shard).json"), options: .atomic)
    }

    /// Writes the script, submits it, and with --wait follows the array and (for train)
    /// publishes. Returns whether the array is done.
    @discardableResult
    func run(json: Bool) throws -> Bool {
        // sbatch cannot quote these in a directive, and a backslash in --output turns off its
        // % patterns (the tasks' log paths).
        if let bad = layout.directory.path.first(where: { $0 == "\"" || $0 == "\\" || $0.isNewline }) {
            throw UserFacingError(description: "\(layout.directory.path): the run directory's path holds "
                                  + (bad == "\"" ? "a double quote" : bad == "\\" ? "a backslash" : "a line break")
                                  + ", which an #SBATCH line cannot carry; move the run to a path without one to train "
                                  + "it under Slurm.")
        }
        try FileManager.default.createDirectory(at: directory.appendingPathComponent("logs"), withIntermediateDirectories: true)
        // One submission at a time per run, and none while the last array still runs.
        let job = try FileLock.withExclusiveLock(directory.appendingPathComponent(".submit.lock")) {
            try SlurmQueue.requireNoActiveJob(run: layout.directory)
            return try submit(json: json)
        }
        guard options.wait else {
            say(json, ["event": "pending", "job": job],
                "not waiting: when the array is done, `lethe \(subcommand) --run \(layout.directory.path)` publishes the composition")
            return false
        }
        try follow(job: job, json: json)
        return try finish(job: job, json: json)
    }

    /// Writes the script and submits it; returns the job id (recorded in job.json).
    private func submit(json: Bool) throws -> String {
        try FileManager.default.createDirectory(at: resultsDirectory, withIntermediateDirectories: true)
        for shard in shards { try? FileManager.default.removeItem(at: resultURL(shard: shard)) }
        let stamp = Int(Date().timeIntervalSince1970 * 1000)
        let scriptURL = directory.appendingPathComponent("\(subcommand)-\(stamp).sh")
        let lethe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().path
        try script(lethe: lethe).write(to: scriptURL, atomically: true, encoding: .utf8)
        let output = try SlurmQueue.run("sbatch", ["--parsable", scriptURL.path])
        guard let job = output.split(separator: ";").first.map(String.init)?.trimmingCharacters(in: .whitespacesAndNewlines),
              !job.isEmpty, job.allSatisfy(\.isNumber) else {
            throw UserFacingError(description: "sbatch did not answer with a job id: \(output)")
        }
        let record: [String: Any] = ["job_id": job, "shards": shards, "script": scriptURL.path, "submitted_ms": stamp]
        try JSONSerialization.data(withJSONObject: record, options: [.sortedKeys])
            .write(to: directory.appendingPathComponent("job.json"), options: .atomic)
        say(json, ["event": "submitted", "job": job, "shards": shards, "script": scriptURL.path],
            "submitted Slurm job \(job): shards \(shards.map(String.init).joined(separator: " ")) (\(scriptURL.path))")
        return job
    }

    /// After the array: every shard has its result, then (for train) publish.
    private func finish(job: String, json: Bool) throws -> Bool {
        let failed = shards.filter { !FileManager.default.fileExists(atPath: resultURL(shard: $0).path) }
        if !failed.isEmpty {
            let logs = failed.map { "shard \($0): \(directory.path)/logs/\(job)_\($0).log" }.joined(separator: "; ")
            throw UserFacingError(description: "Slurm job \(job) ended without training every shard (\(logs)); fix the cause and "
                                  + "run the same command again: shards already trained are not submitted.")
        }
        guard subcommand == "train" else { return true }
        let published = Array(Set(shards).union(publishing)).sorted()
        let composition = try RunAccess.guarded(layout.directory).publish(strategy: settings.strategy, shards: published)
        let served = composition.shards.filter { published.contains($0.shard) }
        say(json, ["event": "published", "job": job, "live_shards": served.filter { !$0.isDead }.map(\.shard)],
            "published: " + served.map { "shard \($0.shard) prefix \($0.prefixLength)" }.joined(separator: ", "))
        return true
    }

    /// How long `follow` keeps asking a `squeue` that fails (slurmctld restarting, a network
    /// blip) before it gives up, leaving the array to run.
    static let unreachableLimit: TimeInterval = 120

    /// Polls `squeue` until the array has left the queue, with one progress line. An empty
    /// queue means the array ended only when squeue itself answered; while it fails, the
    /// array's state is unknown.
    func follow(job: String, json: Bool) throws {
        var last = ""
        var failingSince: Date?
        while true {
            let tasks: [Int: String]
            do {
                tasks = try SlurmQueue.tasks(ofJob: job)
                failingSince = nil
            } catch {
                let since = failingSince ?? Date()
                failingSince = since
                guard Date().timeIntervalSince(since) < Self.unreachableLimit else {
                    throw UserFacingError(description: "cannot reach Slurm to follow job \(job) (\(error)) for "
                        + "\(Int(Self.unreachableLimit)) s; the array may still be running. Check it with `squeue -j \(job)`; "
                        + "once it has ended, `lethe \(subcommand) --run \(layout.directory.path)` publishes what it trained "
                        + "(do not submit again while it runs).")
                }
                Thread.sleep(forTimeInterval: 2)
                continue
            }
            let running = tasks.values.filter(SlurmQueue.isRunning).count, pending = tasks.count - running
            let done = shards.filter { FileManager.default.fileExists(atPath: resultURL(shard: $0).path) }.count
            let failed = max(0, shards.count - done - running - pending)
            let line = "job \(job): \(done) done, \(running) running, \(pending) pending, \(failed) failed"
            if !json, line != last {
                StandardError.write(Data((isatty(STDERR_FILENO) == 1 ? "\r" + line : line + "\n").utf8))
                last = line
            }
            if tasks.isEmpty { break }
            Thread.sleep(forTimeInterval: 0.5)
        }
        if !json, isatty(STDERR_FILENO) == 1 { StandardError.write(Data("\n".utf8)) }
    }

    func say(_ json: Bool, _ object: [String: Any], _ text: String) {
        if json { writeJSONLine(object) } else { writeLine(text) }
    }
}
