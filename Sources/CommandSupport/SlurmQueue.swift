import Foundation

/// The Slurm client tools as Lethe uses them: run a command, and read which tasks of an array
/// job are still in the queue.
public enum SlurmQueue {
    /// A Slurm client command that could not run or failed, with what it printed.
    public struct Failure: Error, CustomStringConvertible {
        public let description: String
    }

    /// Runs `name` (looked up on PATH — clusters install the tools in /opt/slurm/bin or load
    /// them as a module — then where Debian puts them) and returns its stdout.
    public static func run(_ name: String, _ arguments: [String]) throws -> String {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":").map(String.init)
            + ["/usr/bin", "/usr/local/bin"]
        guard let path = directories.map({ "\($0)/\(name)" }).first(where: FileManager.default.isExecutableFile) else {
            throw Failure(description: "\(name) is not on PATH: --scheduler slurm needs the Slurm client tools (Debian's "
                          + "slurm-client; `make setup` installs slurm-wlm).")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let message = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let text = String(decoding: message, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            // Without SLURM_CONF (and no /etc/slurm/slurm.conf) the client looks for the
            // controller in DNS and says only that the lookup failed.
            let hint = ProcessInfo.processInfo.environment["SLURM_CONF"] == nil
                && !FileManager.default.fileExists(atPath: "/etc/slurm/slurm.conf")
                ? " SLURM_CONF is not set and /etc/slurm/slurm.conf does not exist: point SLURM_CONF at the cluster's "
                    + "slurm.conf (Tools/slurm-local.sh start prints it for the local cluster)." : ""
            throw Failure(description: "\(name) \(arguments.joined(separator: " ")) failed: \(text)\(hint)")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The array tasks of `job` still queued, as task id → Slurm state code (R, PD, CG…); an
    /// empty dictionary once the array has left the queue, or once the controller has forgotten
    /// it (some minutes after it ended, squeue -j says "Invalid job id"). Throws when squeue
    /// cannot answer.
    public static func tasks(ofJob job: String) throws -> [Int: String] {
        var tasks: [Int: String] = [:]
        let listing: String
        do {
            listing = try run("squeue", ["-h", "-r", "-j", job, "-o", "%K %t"])
        } catch let failure as Failure where failure.description.contains("Invalid job id") {
            return [:]
        }
        for line in listing.split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let task = Int(parts[0]) { tasks[task] = String(parts[1]) }
        }
        return tasks
    }

    /// Whether a task in state `code` runs (R) or is finishing (CG); any other state waits.
    public static func isRunning(_ code: String) -> Bool { code == "R" || code == "CG" }

    /// The last array job submitted for the run (`RUN/slurm/job.json`): its id and shards.
    public static func lastJob(run: URL) -> (id: String, shards: [Int], script: String)? {
        let url = run.appendingPathComponent("slurm/job.json")
        guard let data = try? Data(contentsOf: url),
              let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let job = object["job_id"] as? String, let shards = object["shards"] as? [Int] else { return nil }
        return (job, shards, object["script"] as? String ?? "")
    }

    /// Throws when the run's last array job still has tasks queued or running: a second array,
    /// or a local `lethe train`, would train the same stages beside it. Says nothing when the
    /// run has no job or squeue cannot be asked (no Slurm here).
    public static func requireNoActiveJob(run: URL) throws {
        guard let job = lastJob(run: run) else { return }
        // Every task wrote its result: the array is over, whatever squeue says.
        let results = run.appendingPathComponent("slurm/results")
        if job.shards.allSatisfy({ FileManager.default.fileExists(atPath: results.appendingPathComponent("shard-\($0).json").path) }) {
            return
        }
        let tasks: [Int: String]
        do { tasks = try Self.tasks(ofJob: job.id) } catch {
            // Unknown is not "ended": its tasks may be training the stages this call would.
            throw Failure(description: "cannot tell whether Slurm job \(job.id) still trains this run (\(error)); run this "
                          + "again once squeue answers, or, if that cluster is gone for good, remove "
                          + "\(run.appendingPathComponent("slurm/job.json").path) first.")
        }
        guard !tasks.isEmpty else { return }
        throw Failure(description: "Slurm job \(job.id) is still training this run (shards "
                      + tasks.keys.sorted().map(String.init).joined(separator: ", ") + "): wait for it (`squeue -j \(job.id)`; "
                      + "then the same lethe train or retrain command publishes what it trained), or cancel it "
                      + "(`scancel \(job.id)`) first.")
    }
}
