import ArgumentParser
import CommandSupport
import CMalloc
import Foundation

/// `lethe train --jobs N`: trains the shards of a run in up to N child processes at once, one
/// `lethe train --run DIR --shard K --json --progress-events` per shard, launched as earlier ones
/// finish. Every child reads the run's saved settings (train.json, written by the parent first),
/// so each shard is trained exactly as by a sequential `lethe train`, with the run's thread count:
/// the files are bit-identical. Shards are independent, which is what makes this safe; the served
/// composition is published under the run's lock by each child.
///
/// The parent merges the children's JSON lines: a combined progress line on a terminal and one
/// line per stage, or with `--json` the children's stage lines followed by one `done` line.
final class ShardJobs: @unchecked Sendable {   // mutable state is guarded by `lock`
    let runDirectory: String
    let data: String?
    let json: Bool
    let terminal: Bool

    private let lock = NSLock()
    private var progress: [Int: String] = [:]
    /// Exit status of each child that ended and is not yet collected by `run`.
    private var exited: [Int: Int32] = [:]
    private var signalSources: [DispatchSourceSignal] = []
    private var childPIDs: [Int: Int32] = [:]
    private var trained = 0, skipped = 0, withheld = 0, examples = 0, trainingSeconds = 0.0
    private let started = Date()

    init(runDirectory: String, data: String?, json: Bool, terminal: Bool) {
        self.runDirectory = runDirectory; self.data = data; self.json = json; self.terminal = terminal
    }

    /// Trains `shards`, at most `jobs` at a time; throws after the running children end if any failed.
    func run(shards: [Int], jobs: Int) throws {
        let executable = Bundle.main.executableURL ?? URL(fileURLWithPath: "/proc/self/exe")
        var waiting = shards, running: [(shard: Int, process: Process, reader: Thread)] = [], failures: [String] = []
        // Each child's termination handler records its shard and signals; the loop collects
        // exactly the recorded ones, so it never depends on when `isRunning` turns false.
        let finished = DispatchSemaphore(value: 0)
        forwardTerminationSignals { [self] in lock.withLock { Array(childPIDs.values) } }
        while !waiting.isEmpty || !running.isEmpty {
            while failures.isEmpty, running.count < jobs, !waiting.isEmpty {
                let shard = waiting.removeFirst()
                let (process, reader) = try launch(shard: shard, executable: executable) { [self] status in
                    lock.withLock { exited[shard] = status }
                    finished.signal()
                }
                running.append((shard, process, reader))
                lock.withLock { childPIDs[shard] = process.processIdentifier }
                if !json { lock.withLock { clearLine(); say("shard \(shard): training in process \(process.processIdentifier)") } }
            }
            if running.isEmpty { break }
            finished.wait()
            let ended = lock.withLock { exited }
            for (index, job) in running.enumerated().reversed() {
                guard let status = ended[job.shard] else { continue }
                while !job.reader.isFinished { usleep(1000) }   // every line of the child is handled
                running.remove(at: index)
                lock.withLock { progress[job.shard] = nil; exited[job.shard] = nil; childPIDs[job.shard] = nil }
                if status < 0 {
                    failures.append("shard \(job.shard): `lethe train --shard \(job.shard)` was killed by signal \(-status) "
                                    + "(\(String(cString: strsignal(-status))))")
                } else if status != 0 {
                    failures.append("shard \(job.shard): `lethe train --shard \(job.shard)` exited with status "
                                    + "\(status) (its message is above)")
                }
            }
        }
        clearLine()
        guard failures.isEmpty else {
            throw ShardJobsFailed(message: failures.joined(separator: "\n") + "\nShards not started: "
                                  + (waiting.isEmpty ? "none" : waiting.map(String.init).joined(separator: ", "))
                                  + ". Run the same command again: complete stages are kept and training resumes.")
        }
        let wall = Date().timeIntervalSince(started)
        if json {
            emit(["event": "done", "stages_trained": trained, "stages_skipped": skipped, "stages_withheld": withheld,
                  "examples_seen": examples,
                  "training_seconds": trainingSeconds, "jobs": jobs, "wall_seconds": wall])
        } else {
            say(String(format: "done: %d stages trained, %d already complete, %d examples; %.1f s of training in %.1f s (%d jobs)",
                       trained, skipped, examples, trainingSeconds, wall, jobs))
        }
    }

    /// Starts the child for `shard` and a thread that reads its lines until it closes stdout.
    private func launch(shard: Int, executable: URL, onExit: @escaping @Sendable (Int32) -> Void) throws -> (Process, Thread) {
        let process = Process(), pipe = Pipe()
        process.executableURL = executable
        process.arguments = ["train", "--run", runDirectory, "--shard", String(shard), "--json", "--progress-events"]
            + (data.map { ["--data", $0] } ?? [])
        process.standardOutput = pipe
        var environment = ProcessInfo.processInfo.environment
        environment[Self.parentVariable] = String(getpid())
        process.environment = environment
        // A child killed by a signal reports the signal's number negated: it printed no message.
        process.terminationHandler = { onExit($0.terminationReason == .uncaughtSignal ? -$0.terminationStatus : $0.terminationStatus) }
        let reader = Thread { [self] in
            var buffer = Data()
            let reading = pipe.fileHandleForReading
            while true {
                let chunk = reading.availableData
                if chunk.isEmpty { break }
                buffer.append(chunk)
                while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                    handle(line: Data(buffer[buffer.startIndex ..< newline]), shard: shard)
                    buffer.removeSubrange(buffer.startIndex ... newline)
                }
            }
        }
        try process.run()
        try? pipe.fileHandleForWriting.close()
        reader.start()
        return (process, reader)
    }

    /// One JSON line of a child: tallied, relayed (`--json`) or turned into text.
    private func handle(line: Data, shard: Int) {
        guard let event = (try? JSONSerialization.jsonObject(with: line)) as? [String: Any],
              let kind = event["event"] as? String else {
            lock.withLock { say("shard \(shard): " + String(decoding: line, as: UTF8.self)) }
            return
        }
        lock.withLock {
            switch kind {
            case "progress":
                guard terminal else { return }
                progress[shard] = String(format: "shard %d stage %d epoch %d/%d %3.0f%% loss %.3f",
                                         shard, int(event["stage"]), int(event["epoch"]), int(event["epochs"]),
                                         100 * Double(int(event["step"])) / Double(max(1, int(event["steps"]))),
                                         event["loss"] as? Double ?? .nan)
                drawProgress()
            case "done":
                break   // the parent prints one done line for all shards
            default:
                if kind == "trained" {
                    trained += 1
                    examples += int(event["examples_seen"])
                    trainingSeconds += event["wall_time_seconds"] as? Double ?? 0
                }
                if kind == "skipped" { skipped += 1 }
                if kind == "withheld" { withheld += 1 }
                if json { say(String(decoding: line, as: UTF8.self)); return }
                clearLine()
                say(describe(kind, event))
                drawProgress()
            }
        }
    }

    private func describe(_ kind: String, _ e: [String: Any]) -> String {
        switch kind {
        case "trained":
            let seconds = e["wall_time_seconds"] as? Double ?? 0
            return String(format: "shard %d seq %@ stage %d: loss %.4f, %d examples, %.1f s, %.0f ex/s  [%d trained]",
                          int(e["shard"]), sequences(e), int(e["stage"]), e["training_loss"] as? Double ?? .nan, int(e["examples_seen"]), seconds,
                          Double(int(e["examples_seen"])) / max(seconds, 1e-9), trained)
        case "skipped":
            return "shard \(int(e["shard"])) seq \(sequences(e)) stage \(int(e["stage"])): already complete"
        case "withheld":
            return "shard \(int(e["shard"])) seq \(sequences(e)) stage \(int(e["stage"])): withheld, its slices hold a "
                + "deleted example"
        case "served":
            let sequence = int(e["sequence"])
            return "shard \(int(e["shard"])): serving sequence \(sequence < 0 ? "none" : String(sequence)), prefix \(int(e["prefix_length"]))"
        default:
            return "shard \(int(e["shard"])): \(kind)"
        }
    }

    private func sequences(_ e: [String: Any]) -> String {
        ((e["sequences"] as? [Int]) ?? []).map(String.init).joined(separator: ",")
    }

    private func int(_ value: Any?) -> Int { (value as? Int) ?? Int((value as? Double) ?? -1) }

    private func drawProgress() {
        guard terminal, !progress.isEmpty else { return }
        let line = progress.keys.sorted().compactMap { progress[$0] }.joined(separator: " | ")
        StandardOutput.write(String(format: "\r%@  %.0f s\u{1B}[K", line, Date().timeIntervalSince(started)))
    }

    private func clearLine() {
        if terminal { StandardOutput.write("\r\u{1B}[K") }
    }

    /// Names the parent's pid in a child's environment (`dieWithParentIfChild`).
    static let parentVariable = "LETHE_TRAIN_PARENT_PID"

    /// In a child of `lethe train --jobs` (its environment names the parent's pid): asks the
    /// kernel to kill this process when the parent dies (even by SIGKILL), so no shard keeps
    /// training for a parent that is gone; if the parent already died before the request took
    /// effect (this process was handed to another parent), exits at once.
    static func dieWithParentIfChild() {
        guard let value = ProcessInfo.processInfo.environment[parentVariable], let parent = Int32(value) else { return }
        _ = lethe_kill_when_parent_dies()
        unblockTerminationSignals()   // so the SIGINT/SIGTERM the parent passes on ends this process
        if getppid() != parent {
            StandardError.write(Data(("lethe: the `lethe train --jobs` process \(parent) that started this "
                + "shard is gone; stopping. Run `lethe train` again to resume.\n").utf8))
            exit(1)
        }
    }

    /// SIGINT and SIGTERM, unblocked on the calling (main) thread: a process inherits its
    /// launcher's blocked signals (a test runner's worker thread, for one), and a blocked
    /// SIGTERM would neither be forwarded nor end the process.
    static func unblockTerminationSignals() {
        var signals = sigset_t()
        sigemptyset(&signals)
        sigaddset(&signals, SIGINT)
        sigaddset(&signals, SIGTERM)
        pthread_sigmask(SIG_UNBLOCK, &signals, nil)
    }

    /// Forwards SIGINT and SIGTERM to the running children, then ends the parent the same way.
    private func forwardTerminationSignals(to children: @escaping () -> [Int32]) {
        Self.unblockTerminationSignals()
        for signal in [SIGINT, SIGTERM] {
            Foundation.signal(signal, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: signal, queue: .global())
            source.setEventHandler {
                for pid in children() { kill(pid, signal) }
                Foundation.signal(signal, SIG_DFL)
                kill(getpid(), signal)
            }
            source.resume()
            signalSources.append(source)
        }
    }

    private func emit(_ object: [String: Any]) { writeJSONLine(object) }
    private func say(_ line: String) { writeLine(line) }
}

/// Some children of `lethe train --jobs` failed; printed without the usage text of a ValidationError.
struct ShardJobsFailed: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}
