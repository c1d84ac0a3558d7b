import CommandSupport
import Foundation
import Planning
import RunFixtures
import Testing
import Training
import Yams

/// `lethe train --scheduler slurm` on a real one-node Slurm started by Tools/slurm-local.sh
/// (Debian's slurm-wlm and munge, installed by `make setup`): 60 BBC headlines, real MiniLM,
/// 2 shards × 2 slices × 2 sequences, 1 epoch, rank 4, 1 thread.
@Suite(.serialized) struct SlurmTests {
    static let root = LetheProcess.root

    /// A cluster of the test's own in a scratch directory; `stop` ends exactly its processes.
    final class Cluster: @unchecked Sendable {
        let directory: URL
        var environment: [String: String] { ["SLURM_CONF": directory.appendingPathComponent("slurm.conf").path] }

        init() throws {
            directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-slurm-\(UUID().uuidString)")
            let status = try Self.script("start", directory)
            guard status == 0 else { throw ClusterDidNotStart(status: status) }
        }

        func stop() {
            _ = try? Self.script("stop", directory)
            try? FileManager.default.removeItem(at: directory)
        }

        static func script(_ command: String, _ directory: URL) throws -> Int32 {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/bin/bash")
            process.arguments = [SlurmTests.root.appendingPathComponent("Tools/slurm-local.sh").path, command, directory.path]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            process.waitUntilExit()
            return process.terminationStatus
        }
    }

    struct ClusterDidNotStart: Error { let status: Int32 }


    static let train = ["--epochs", "1", "--layers-per-block", "1", "--rank", "4", "--threads", "1", "--seed", "5",
                        "--model", root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path]

    /// Two planned runs of the same small dataset in a new scratch directory.
    static func plannedRuns(_ names: [String]) throws -> [URL] {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-slurm-runs-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 12, to: data)
        return try names.map { name in
            let run = scratch.appendingPathComponent(name)
            try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "2", "--slices", "2", "--budget", "2",
                                      "--seed", "3", "--run", run.path])
            return run
        }
    }

    static func slurm(_ arguments: [String], on cluster: Cluster, environment extra: [String: String] = [:]) throws -> String {
        let (status, output) = try LetheProcess.run(arguments, environment: cluster.environment.merging(extra) { $1 })
        guard status == 0 else { throw LetheProcess.Failed(arguments: arguments, status: status, output: output) }
        return output
    }

    /// Removes the scratch directory `plannedRuns` made for `run` (and its sibling runs).
    static func removeScratch(of run: URL) {
        try? FileManager.default.removeItem(at: run.deletingLastPathComponent())
    }

    /// Every stage's tensors, by file name.
    static func stageTensors(_ run: URL) throws -> [String: [NamedTensor]] {
        var result: [String: [NamedTensor]] = [:]
        for shard in try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("stages").path)
        where shard.hasPrefix("shard-") {
            let directory = run.appendingPathComponent("stages/\(shard)")
            for file in try FileManager.default.contentsOfDirectory(atPath: directory.path) where file.hasSuffix(".h5") {
                let checkpoint = try StageCheckpoint.load(from: directory.appendingPathComponent(file))
                result["\(shard)/\(file)"] = checkpoint.adapters + checkpoint.head
            }
        }
        return result
    }

    @Test func anArrayTrainsTheSameBitsAsALocalRun() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let runs = try Self.plannedRuns(["slurm", "local"])
        defer { SlurmTests.removeScratch(of: runs[0]) }
        let output = try Self.slurm(["train", "--run", runs[0].path, "--scheduler", "slurm", "--wait", "--json"] + Self.train, on: cluster)
        #expect(output.contains(#""event":"submitted""#) && output.contains(#""event":"published""#), "\(output)")
        try LetheProcess.succeed(["train", "--run", runs[1].path] + Self.train)
        // The same models; the ledger heads differ (their publish entries carry the time).
        #expect(try ServedComposition.load(from: runs[0].appendingPathComponent("served.json")).shards
                == ServedComposition.load(from: runs[1].appendingPathComponent("served.json")).shards)
        let slurm = try Self.stageTensors(runs[0]), local = try Self.stageTensors(runs[1])
        #expect(slurm.count == 8 && Set(slurm.keys) == Set(local.keys))
        for (file, tensors) in slurm { #expect(tensors == local[file], "\(file)") }
        // The script is kept to read and resubmit, and a second call submits nothing.
        let scripts = try FileManager.default.contentsOfDirectory(atPath: runs[0].appendingPathComponent("slurm").path)
        #expect(scripts.contains { $0.hasPrefix("train-") && $0.hasSuffix(".sh") })
        let again = try Self.slurm(["train", "--run", runs[0].path, "--scheduler", "slurm", "--wait"], on: cluster)
        #expect(again.contains("every stage") && !again.contains("submitted"), "\(again)")
    }

    /// A task that fails with 75 after committing its first stage (injected once per shard) is
    /// requeued by Slurm; the retry resumes from the committed stage and gives the same bits.
    @Test func aTransientFailureIsRequeuedAndGivesTheSameBits() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let runs = try Self.plannedRuns(["requeued", "local"])
        defer { SlurmTests.removeScratch(of: runs[0]) }
        let markers = runs[0].deletingLastPathComponent().appendingPathComponent("markers")
        try FileManager.default.createDirectory(at: markers, withIntermediateDirectories: true)
        _ = try Self.slurm(["train", "--run", runs[0].path, "--scheduler", "slurm", "--wait", "--shard", "1"] + Self.train,
                           on: cluster, environment: ["LETHE_TASK_FAIL_ONCE": markers.path])
        #expect(FileManager.default.fileExists(atPath: markers.appendingPathComponent("shard-1").path),
                "the first attempt failed")
        let logs = runs[0].appendingPathComponent("slurm/logs")
        let log = try FileManager.default.contentsOfDirectory(atPath: logs.path).map {
            try String(contentsOf: logs.appendingPathComponent($0), encoding: .utf8) }.joined()
        #expect(log.contains("injected transient failure") && log.contains("1 already complete"),
                "the retry resumed after the committed stage: \(log)")
        try LetheProcess.succeed(["train", "--run", runs[1].path, "--shard", "1"] + Self.train)
        let requeued = try Self.stageTensors(runs[0]), local = try Self.stageTensors(runs[1])
        #expect(!requeued.isEmpty && requeued.keys.sorted() == local.keys.sorted())
        for (file, tensors) in requeued { #expect(tensors == local[file], "\(file)") }
    }

    /// A forget while the array is queued or running is recorded and applied, and no stage a
    /// task trained on the deleted example is published.
    @Test func aForgetDuringTheArrayIsNeverPublishedAround() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let run = try Self.plannedRuns(["forget"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let id = try #require(plan.members(shard: 0, slice: 0).first)
        _ = try Self.slurm(["train", "--run", run.path, "--scheduler", "slurm"] + Self.train, on: cluster)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", id])
        let deadline = Date().addingTimeInterval(120)
        while Date() < deadline {
            let (_, queue) = try LetheProcess.runTool("/usr/bin/squeue", ["-h"], environment: cluster.environment)
            if queue.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        _ = try Self.slurm(["train", "--run", run.path, "--scheduler", "slurm", "--wait"], on: cluster)
        let audit = try LetheProcess.run(["audit", "--run", run.path, "--id", id])
        #expect(audit.status == 0, "no served stage saw \(id): \(audit.output)")
        try LetheProcess.succeed(["verify", "--run", run.path])
    }
}

extension SlurmTests {
    /// After deletions in shard 0 only, `retrain --scheduler slurm` submits shard 0 alone, and
    /// the result equals a local retrain of a twin run bit for bit.
    @Test func aRetrainSubmitsOnlyTheAffectedShards() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let runs = try Self.plannedRuns(["retrain-slurm", "retrain-local"])
        defer { SlurmTests.removeScratch(of: runs[0]) }
        let plan = try Plan.load(from: Plan.url(inRun: runs[0]))
        let ids = Array(plan.members(shard: 0, slice: 1).prefix(2))
        for run in runs {
            try LetheProcess.succeed(["train", "--run", run.path] + Self.train)
            try LetheProcess.succeed(["forget", "--run", run.path] + ids.flatMap { ["--id", $0] })
        }
        let output = try Self.slurm(["retrain", "--run", runs[0].path, "--scheduler", "slurm", "--wait"], on: cluster)
        let job = try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: runs[0].appendingPathComponent("slurm/job.json"))) as? [String: Any])
        #expect(job["shards"] as? [Int] == [0], "only the affected shard was submitted: \(output)")
        let script = try String(contentsOfFile: job["script"] as? String ?? "", encoding: .utf8)
        #expect(script.contains("#SBATCH --array=0\n") && script.contains(" retrain ") && script.contains("--task"))
        try LetheProcess.succeed(["retrain", "--run", runs[1].path])
        // The ledger heads differ (their entries carry the wall clock); what is served does not.
        let served = try runs.map { try ServedComposition.load(from: $0.appendingPathComponent("served.json")) }
        #expect(served[0].shards == served[1].shards
                && served[0].ledgerHead.sequenceNumber == served[1].ledgerHead.sequenceNumber)
        let slurm = try Self.stageTensors(runs[0]), local = try Self.stageTensors(runs[1])
        #expect(!slurm.isEmpty && Set(slurm.keys) == Set(local.keys))
        for (file, tensors) in slurm { #expect(tensors == local[file], "\(file)") }
        try LetheProcess.succeed(["verify", "--run", runs[0].path])
    }
}

extension SlurmTests {
    /// A first call that sbatch refuses (no such partition) leaves no train.json, so the
    /// corrected call may change any setting; a run directory with a space and a % in its path
    /// is submitted (its log directive quoted, the % doubled) and trains.
    @Test func aRefusedSubmissionLeavesNothingAndSpacesInThePathAreQuoted() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let run = try Self.plannedRuns(["with space and %j"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let refused = try LetheProcess.run(["train", "--run", run.path, "--scheduler", "slurm", "--partition", "nowhere",
                                            "--wait"] + Self.train, environment: cluster.environment)
        #expect(refused.status == 1 && refused.output.contains("sbatch"), "\(refused.output)")
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("train.json").path))
        let cpus = try LetheProcess.run(["train", "--run", run.path, "--scheduler", "slurm", "--cpus-per-task", "2"]
                                        + Self.train, environment: cluster.environment)
        #expect(cpus.status == 64, "\(cpus.output)")
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("train.json").path))
        var twoEpochs = Self.train
        twoEpochs[1] = "2"  // "--epochs", "1" → 2: the refused calls fixed nothing
        _ = try Self.slurm(["train", "--run", run.path, "--scheduler", "slurm", "--partition", "ci", "--wait"] + twoEpochs,
                           on: cluster)
        let script = try String(contentsOfFile: try #require(try JSONSerialization.jsonObject(
            with: Data(contentsOf: run.appendingPathComponent("slurm/job.json"))) as? [String: Any])["script"] as? String ?? "",
                                encoding: .utf8)
        let directory = run.path.replacingOccurrences(of: "%", with: "%%")
        #expect(script.contains("#SBATCH --output=\"\(directory)/slurm/logs/%A_%a.log\"") && script.contains("--array=0-1"))
        try LetheProcess.succeed(["verify", "--run", run.path])
        #expect(try String(contentsOf: run.appendingPathComponent("train.json"), encoding: .utf8).contains("\"epochs\" : 2"))
    }
}

extension SlurmTests {
    /// While an array of the run is queued, a second submission and a local `lethe train` are
    /// refused (they would train the same stages beside it); `status` says the tasks are pending,
    /// and once the array is cancelled, that they ended without a result.
    @Test func aRunTrainsUnderOneArrayAtATime() throws {
        let cluster = try Cluster()
        defer { cluster.stop() }
        let run = try Self.plannedRuns(["one-array"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        let held = try Self.slurm(["train", "--run", run.path, "--scheduler", "slurm", "--sbatch-arg=--begin=now+600",
                                   "--json"] + Self.train, on: cluster)
        let job = try #require(SlurmQueue.lastJob(run: run)?.id, "\(held)")
        let second = try LetheProcess.run(["train", "--run", run.path, "--scheduler", "slurm"], environment: cluster.environment)
        #expect(second.status == 1 && second.output.contains("Slurm job \(job) is still training"), "\(second.output)")
        let local = try LetheProcess.run(["train", "--run", run.path], environment: cluster.environment)
        #expect(local.status == 1 && local.output.contains("scancel \(job)"), "\(local.output)")
        #expect(try Self.slurm(["status", "--run", run.path], on: cluster).contains("0 pending"))
        _ = try LetheProcess.runTool("/usr/bin/scancel", [job], environment: cluster.environment)
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            let (_, queue) = try LetheProcess.runTool("/usr/bin/squeue", ["-h", "-j", job], environment: cluster.environment)
            if queue.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { break }
            Thread.sleep(forTimeInterval: 0.3)
        }
        #expect(try Self.slurm(["status", "--run", run.path], on: cluster).contains("0 ended without a result"))
        _ = try Self.slurm(["train", "--run", run.path, "--scheduler", "slurm", "--wait"], on: cluster)
        try LetheProcess.succeed(["verify", "--run", run.path])
        // The same for retrain: a local retrain is refused while a retrain array is queued.
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 0, slice: 0).first)
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", id])
        _ = try Self.slurm(["retrain", "--run", run.path, "--scheduler", "slurm", "--sbatch-arg=--begin=now+600"], on: cluster)
        let retrainJob = try #require(SlurmQueue.lastJob(run: run)?.id)
        let localRetrain = try LetheProcess.run(["retrain", "--run", run.path], environment: cluster.environment)
        #expect(localRetrain.status == 1 && localRetrain.output.contains("scancel \(retrainJob)"), "\(localRetrain.output)")
        _ = try LetheProcess.runTool("/usr/bin/scancel", [retrainJob], environment: cluster.environment)
    }
}

/// `lethe train --scheduler k8s --emit-manifest`: an Indexed Job over the shards left to train,
/// checked by structure (no cluster exists here), and one index's command run as a pod would.
@Suite struct KubernetesManifestTests {
    @Test func theManifestIsAnIndexedJobWhoseIndexTrainsItsShard() throws {
        // Quotes, a '#' and line breaks (YAML's NEL and line separator too) in the run's name
        // reach the pod's command unchanged.
        let run = try SlurmTests.plannedRuns(["k8s \"q' #x\ny\u{85}z\u{2028}w"])[0]
        defer { SlurmTests.removeScratch(of: run) }
        try LetheProcess.succeed(["train", "--run", run.path, "--scheduler", "k8s", "--emit-manifest", "--max-parallel", "1",
                                  "--mem", "2G", "--image", "registry.example/lethe:1"] + SlurmTests.train)
        let text = try String(contentsOf: run.appendingPathComponent("k8s/train-job.yaml"), encoding: .utf8)
        // The base model lies outside the mounted directory (the run's parent): the manifest says so.
        #expect(text.contains("# NOT under the mount, so a pod will not find it: ") && text.contains("all-MiniLM-L6-v2"))
        let job = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect(job["apiVersion"] as? String == "batch/v1" && job["kind"] as? String == "Job")
        let spec = try #require(job["spec"] as? [String: Any])
        #expect(spec["completionMode"] as? String == "Indexed" && spec["completions"] as? Int == 2
                && spec["parallelism"] as? Int == 1)
        let pod = try #require((spec["template"] as? [String: Any])?["spec"] as? [String: Any])
        #expect(pod["restartPolicy"] as? String == "Never")
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        #expect(container["image"] as? String == "registry.example/lethe:1")
        let command = try #require((container["args"] as? [String])?.first)
        // (The run's path is in it, shell-quoted: running it below finds the run.)
        #expect(command.contains("JOB_COMPLETION_INDEX") && command.contains("--task") && command.contains("#x\ny"))
        let env = try #require(container["env"] as? [[String: Any]])
        #expect(env.first { $0["name"] as? String == "LETHE_SHARDS" }?["value"] as? String == "0 1")
        let requests = (container["resources"] as? [String: Any])?["requests"] as? [String: Any]
        #expect(requests?["cpu"] as? String == "1" && requests?["memory"] as? String == "2G")
        let mount = try #require((container["volumeMounts"] as? [[String: Any]])?.first)
        #expect(mount["mountPath"] as? String == run.deletingLastPathComponent().standardizedFileURL.path)
        let volume = try #require((pod["volumes"] as? [[String: Any]])?.first)
        #expect((volume["persistentVolumeClaim"] as? [String: Any])?["claimName"] as? String == "lethe-runs")

        // Index 1 of the Job, run here as its pod would: it trains shard 1 only.
        let binary = try LetheProcess.binary().deletingLastPathComponent().path
        let (status, output) = try LetheProcess.runTool("/bin/sh", ["-c", command], environment: [
            "JOB_COMPLETION_INDEX": "1", "LETHE_SHARDS": "0 1",
            "PATH": binary + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")])
        #expect(status == 0, "\(output)")
        #expect(FileManager.default.fileExists(atPath: run.appendingPathComponent("slurm/results/shard-1.json").path))
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("slurm/results/shard-0.json").path))
        #expect(!FileManager.default.fileExists(atPath: run.appendingPathComponent("served.json").path),
                "a task never publishes")
    }
}
