import Foundation
import Testing
@testable import Training

/// `lethe train --jobs N` never leaves a child training for a parent that is gone: the kernel
/// kills each child when its parent dies (PR_SET_PDEATHSIG), and SIGINT/SIGTERM sent to the
/// parent are passed on. Processes are polled in /proc with generous timeouts.
@Suite(.serialized) struct ShardJobsTests {
    /// Whether `pid` is a live process: it exists and is not a zombie waiting to be reaped.
    static func isAlive(_ pid: Int32) -> Bool {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")"), stat.distance(from: close, to: stat.endIndex) > 2 else { return false }
        let state = stat[stat.index(close, offsetBy: 2)]
        return state != "Z" && state != "X"
    }

    /// The parent pid /proc records for `pid`, or nil when it is gone.
    static func parent(of pid: Int32) -> Int32? {
        guard let stat = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = stat.lastIndex(of: ")") else { return nil }
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        return fields.count > 1 ? Int32(fields[1]) : nil
    }

    /// The processes of `pids` still alive after polling for up to `seconds`.
    static func survivors(_ pids: [Int32], within seconds: Double) -> [Int32] {
        let deadline = Date().addingTimeInterval(seconds)
        var alive = pids.filter(isAlive)
        while !alive.isEmpty && Date() < deadline {
            usleep(50_000)
            alive = alive.filter(isAlive)
        }
        return alive
    }

    /// Reads `handle` until `count` lines match `pattern` (first capture group: a pid) or it
    /// closes or `seconds` pass; returns the pids.
    static func pids(in handle: FileHandle, matching pattern: String, count: Int, within seconds: Double) throws -> [Int32] {
        let regex = try NSRegularExpression(pattern: pattern)
        var text = "", found: [Int32] = []
        let deadline = Date().addingTimeInterval(seconds)
        while found.count < count && Date() < deadline {
            let chunk = handle.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
            found = regex.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap {
                Range($0.range(at: 1), in: text).flatMap { Int32(text[$0]) }
            }
        }
        return found
    }

    /// A `lethe` child whose parent is killed with SIGKILL dies with it: the parent is a shell
    /// that names itself in the child's environment, and the child writes to /dev/null, so
    /// nothing but the death signal can end it (it would simulate for hours).
    @Test func aChildDiesWhenItsParentIsKilled() throws {
        let lethe = try S3TEndToEndTests.letheBinary()
        let shell = Process()
        shell.executableURL = URL(fileURLWithPath: "/bin/sh")
        shell.arguments = ["-c", "LETHE_TRAIN_PARENT_PID=$$ \"$0\" simulate --shards 1000 --slices 8 --budget 8 "
                           + "--trials 10000000 > /dev/null 2>&1 & echo child $!; wait", lethe.path]
        let output = Pipe()
        shell.standardOutput = output
        try shell.run()
        let child = try #require(try Self.pids(in: output.fileHandleForReading, matching: #"child (\d+)"#, count: 1,
                                               within: 30).first)
        defer { if Self.isAlive(child) { kill(child, SIGKILL) } }
        // The child has started (it checks its parent first thing) and is the shell's.
        Thread.sleep(forTimeInterval: 1)
        #expect(Self.isAlive(child) && Self.parent(of: child) == shell.processIdentifier)
        kill(shell.processIdentifier, SIGKILL)
        shell.waitUntilExit()
        #expect(Self.survivors([child], within: 20).isEmpty, "the child outlived its SIGKILLed parent")
    }

    /// A child whose environment names a parent that is not its parent stops at once.
    @Test func aChildWhoseParentIsAlreadyGoneStopsAtOnce() throws {
        let process = Process()
        process.executableURL = try S3TEndToEndTests.letheBinary()
        process.arguments = ["simulate", "--shards", "1000", "--slices", "8", "--budget", "8", "--trials", "10000000"]
        var environment = ProcessInfo.processInfo.environment
        environment["LETHE_TRAIN_PARENT_PID"] = "1"
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let text = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 1 && text.contains("process 1 that started this shard is gone"), "\(text)")
    }

    /// `lethe train --jobs 2` killed (SIGKILL) or stopped (SIGTERM, SIGINT) while both shards
    /// train: its children are gone soon after.
    @Test(arguments: [SIGKILL, SIGTERM, SIGINT])
    func stoppingTrainJobsEndsItsChildren(signal: Int32) throws {
        let scratch = try S3TEndToEndTests.prepare()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let run = try S3TEndToEndTests.copyPlan(scratch, to: "j")
        let parent = Process()
        parent.executableURL = try S3TEndToEndTests.letheBinary()
        // 1000 epochs per stage: the children train for minutes unless stopped.
        parent.arguments = ["train", "--run", run.path, "--jobs", "2"]
            + CommandSafetyTests.trainArguments(replacing: ["--epochs", "1000"])
        let output = Pipe()
        parent.standardOutput = output
        parent.standardError = FileHandle.nullDevice
        try parent.run()
        let children = try Self.pids(in: output.fileHandleForReading, matching: #"training in process (\d+)"#, count: 2,
                                     within: 60)
        defer { for child in children where Self.isAlive(child) { kill(child, SIGKILL) } }
        #expect(children.count == 2)
        Thread.sleep(forTimeInterval: 1)
        for child in children {
            #expect(Self.isAlive(child) && Self.parent(of: child) == parent.processIdentifier, "child \(child) is not training")
        }
        kill(parent.processIdentifier, signal)
        let deadline = Date().addingTimeInterval(30)
        while parent.isRunning && Date() < deadline { usleep(50_000) }
        #expect(!parent.isRunning, "the parent ignored signal \(signal)")
        if parent.isRunning { kill(parent.processIdentifier, SIGKILL) }
        parent.waitUntilExit()
        #expect(parent.terminationReason == .uncaughtSignal && parent.terminationStatus == signal)
        #expect(Self.survivors(children, within: 20).isEmpty, "children outlived their parent (signal \(signal))")
    }
}
