import Forgetting
import Foundation
import Planning
import RunFixtures
import Support
import Testing
import Training

/// Commands that read a run see every accepted deletion, and refuse what they cannot do as
/// usage errors instead of looping or answering beside the question.
@Suite struct CommandContractTests {
    /// A forget killed right after its request is durable leaves the plan without the
    /// tombstone; `plan show` completes it before answering, as every reading command does.
    @Test func planShowCompletesAnInterruptedForgetFirst() async throws {
        let run = try OutputFailureTests.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let id = try #require(try Plan.load(from: Plan.url(inRun: run)).members(shard: 1, slice: 0).first)
        await #expect(processExitsWith: .signal(SIGKILL)) { [runPath = run.path as String, id = id as String] in
            _ = try Forgetter(run: URL(fileURLWithPath: runPath)).forget(
                [ForgetRequest(target: .example(id))], nowMilliseconds: 1_700_000_000_000,
                accepted: { _ in kill(getpid(), SIGKILL) })
        }
        #expect(try !Plan.load(from: Plan.url(inRun: run)).tombstones.contains(id))
        let shown = try LetheProcess.succeed(["plan", "show", "--run", run.path, "--id", id, "--json"])
        // The output holds recovery's note (stderr) and the JSON line.
        #expect(shown.contains("recovery: completed 1 deletion request"), "\(shown)")
        let line = try #require(shown.split(separator: "\n").last { $0.hasPrefix("{") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["deleted"] as? Bool == true, "\(shown)")
    }

    /// Temporary files of locked writers killed mid-write (a forget's tombstone log or plan,
    /// a publish) are removed by the next recovery; train.json's, written without the lock, stay.
    @Test func recoveryRemovesTheTemporaryFilesOfKilledWriters() throws {
        let run = try OutputFailureTests.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let leftovers = [".plan.tombstones.tmp-0a1b2c3d", ".plan.h5.tmp-4e5f6a7b", ".served.json.tmp-8c9d0e1f"]
        for name in leftovers + [".train.json.tmp-12345678"] {
            try Data("partial".utf8).write(to: run.appendingPathComponent(name))
        }
        try LetheProcess.succeed(["status", "--run", run.path])
        let names = try FileManager.default.contentsOfDirectory(atPath: run.path)
        #expect(leftovers.allSatisfy { !names.contains($0) }, "\(names)")
        #expect(names.contains(".train.json.tmp-12345678"))
    }

    /// A run planned and not trained yet can take deletions; `status` shows them beside the
    /// missing train.json.
    @Test func statusShowsTheDeletionsOfARunNotTrainedYet() throws {
        let run = try OutputFailureTests.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let plan = try Plan.load(from: RunLayout(directory: run).planURL)
        let id = try #require(plan.undeletedExampleIDs.first)
        _ = try LetheProcess.run(["forget", "--run", run.path, "--id", id])
        let shown = try LetheProcess.succeed(["status", "--run", run.path])
        #expect(shown.contains("train.json: it is missing") && shown.contains("deletions: 1 example(s) forgotten"), "\(shown)")
    }

    @Test func retrainRefusesAShardOutsideThePlan() throws {
        let run = try OutputFailureTests.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let (status, output) = try LetheProcess.run(["retrain", "--run", run.path, "--shard", "7"])
        #expect(status == 64 && output.contains("--shard 7") && output.contains("0…1"), "\(status): \(output)")
    }

    /// A prior that never requests the first slice of some sequence makes δ unbounded: the
    /// simulation is refused at once instead of never ending.
    @Test func simulateRefusesAPriorUnderWhichASequenceNeverDies() throws {
        let prior = FileManager.default.temporaryDirectory.appendingPathComponent("prior-\(UUID().uuidString).json")
        try Data("[1, 0, 0]".utf8).write(to: prior)
        defer { try? FileManager.default.removeItem(at: prior) }
        let (status, output) = try LetheProcess.run(["simulate", "--shards", "2", "--slices", "3", "--budget", "2",
                                                     "--prior", prior.path, "--trials", "10"])
        #expect(status == 64 && output.contains("unbounded") && output.contains("probability 0"), "\(status): \(output)")
        // A tiny probability is bounded but just as endless in practice: refused too, naming it.
        try Data("[1e-12, 1]".utf8).write(to: prior)
        let (tiny, message) = try LetheProcess.run(["simulate", "--shards", "2", "--slices", "2", "--budget", "2",
                                                    "--prior", prior.path, "--trials", "2"])
        #expect(tiny == 64 && message.contains("slice 0 has probability 1e-12"), "\(tiny): \(message)")
    }

    /// A path whose bytes are not UTF-8 is refused by every command before it runs: decoded, it
    /// would name another file (or make a directory of another name).
    @Test func anArgumentThatIsNotUTF8IsRefused() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("utf8-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let script = #"exec "$0" plan --data /dev/null --shards 2 --slices 2 --budget 1 --run "$1/run$(printf '\377')""#
        let (status, output) = try LetheProcess.runTool("/bin/sh", ["-c", script, try LetheProcess.binary().path, scratch.path])
        #expect(status == 64 && output.contains("the value of --run") && output.contains("not UTF-8"), "\(status): \(output)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path))
    }

    /// A planned run that took a deletion, whose ledger then went missing: the plan's tombstones
    /// show a ledger existed, so a forget refuses instead of starting a new, empty one.
    @Test func aForgetWithoutTheLedgerThePlansTombstonesNeedIsRefused() throws {
        let run = try OutputFailureTests.plannedRun()
        defer { try? FileManager.default.removeItem(at: run.deletingLastPathComponent()) }
        let ids = try Plan.load(from: RunLayout(directory: run).planURL).undeletedExampleIDs
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", ids[0]])
        let ledger = RunLayout(directory: run).ledgerURL
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: ledger.path + suffix) }
        let (status, output) = try LetheProcess.run(["forget", "--run", run.path, "--id", ids[1]])
        #expect(status == 1 && output.contains("the ledger is missing, but the plan holds 1 tombstone(s)"), "\(status): \(output)")
        #expect(!FileManager.default.fileExists(atPath: ledger.path))
    }

    /// A mistyped command is named as such, with the nearest names, rather than reported as an
    /// unknown option of the command above it (or run as its default subcommand).
    @Test func aMistypedCommandIsNamed() throws {
        let (status, output) = try LetheProcess.run(["statsu", "--run", "somewhere"])
        #expect(status == 64 && output.contains("`statsu` is not a command of `lethe` (did you mean `status`?)"),
                "\(status): \(output)")
        let (planStatus, planOutput) = try LetheProcess.run(["plan", "shw", "--run", "somewhere"])
        #expect(planStatus == 64 && planOutput.contains("`shw` is not a command of `lethe plan` (did you mean `show`?)"),
                "\(planStatus): \(planOutput)")
        // A command's own positional argument is not a command name.
        let (helpStatus, _) = try LetheProcess.run(["help", "status"])
        #expect(helpStatus == 0)
    }

    /// Data given as a named pipe that nothing writes to yet: the command says it is waiting for
    /// a writer (rather than hang silently), and goes on once one writes.
    @Test func aNamedPipeWithoutAWriterIsSaidAndThenRead() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("fifo-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl"), fifo = scratch.appendingPathComponent("data.fifo")
        try BBCSubset.write(perLabel: 6, to: data)
        #expect(mkfifo(fifo.path, 0o600) == 0)
        let process = Process()
        process.executableURL = try LetheProcess.binary()
        process.arguments = ["plan", "--data", fifo.path, "--shards", "2", "--slices", "2", "--budget", "1",
                             "--run", scratch.appendingPathComponent("run").path]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 2)
        let writer = try FileHandle(forWritingTo: fifo)   // opens once the command reads
        try writer.write(contentsOf: try Data(contentsOf: data))
        try writer.close()
        process.waitUntilExit()
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(process.terminationStatus == 0, "\(said)")
        #expect(said.contains("it is a named pipe, and nothing writes to it yet"), "\(said)")
    }

    /// A long simulation whose progress goes to a log, not a terminal, says after 10 s how far
    /// it got and about how long is left.
    @Test func aLongSimulationReportsItsProgressIntoALog() throws {
        let process = Process()
        process.executableURL = try LetheProcess.binary()
        process.arguments = ["simulate", "--shards", "4096", "--slices", "64", "--budget", "1024", "--trials", "10000000"]
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 12)
        process.terminate()
        process.waitUntilExit()
        let said = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(said.contains("simulating: trial ") && said.contains(" of 10000000 after ") && said.contains(" s left"), "\(said)")
    }

    /// A chart path that cannot be written is refused before the simulation runs.
    @Test func simulateRefusesAChartPathInAMissingDirectoryUpFront() throws {
        let missing = FileManager.default.temporaryDirectory.appendingPathComponent("no-such-\(UUID().uuidString)/d.svg").path
        let (status, output) = try LetheProcess.run(["simulate", "--shards", "2", "--slices", "2", "--budget", "2",
                                                     "--trials", "2", "--svg", missing])
        #expect(status == 64 && output.contains("there is no directory") && !output.contains("δ"), "\(status): \(output)")
        let (inTheWay, message) = try LetheProcess.run(["simulate", "--shards", "2", "--slices", "2", "--budget", "2",
                                                        "--trials", "2", "--svg", FileManager.default.temporaryDirectory.path])
        #expect(inTheWay == 64 && message.contains("a directory is in the way"), "\(inTheWay): \(message)")
        // The chart is written by a rename, which would replace a pipe or a link (or, as root,
        // /dev/null itself) with a regular file: refused, and left as it was.
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("svg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let fifo = scratch.appendingPathComponent("chart.fifo"), link = scratch.appendingPathComponent("chart.svg")
        #expect(mkfifo(fifo.path, 0o600) == 0)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "/nonexistent/chart.svg")
        for (path, what) in [(fifo.path, "a FIFO (named pipe)"), (link.path, "a symbolic link")] {
            let (status, output) = try LetheProcess.run(["simulate", "--shards", "2", "--slices", "2", "--budget", "2",
                                                         "--trials", "2", "--svg", path])
            #expect(status == 64 && output.contains("it is \(what), which the chart would replace"), "\(status): \(output)")
        }
        #expect(FileKind.irregular(atPath: fifo.path) == "a FIFO (named pipe)")
        #expect((try? FileManager.default.destinationOfSymbolicLink(atPath: link.path)) == "/nonexistent/chart.svg")
    }

    /// `--prior` takes the JSON inline as its help shows, or a file holding it: the same result.
    @Test func aPriorIsTakenInlineOrFromAFile() throws {
        let prior = FileManager.default.temporaryDirectory.appendingPathComponent("prior-\(UUID().uuidString).json")
        try Data("[0.4, 0.3, 0.2, 0.1]".utf8).write(to: prior)
        defer { try? FileManager.default.removeItem(at: prior) }
        let shape = ["simulate", "--shards", "5", "--slices", "4", "--budget", "4", "--selection", "bms", "--trials", "20",
                     "--seed", "1", "--json"]
        let inline = try LetheProcess.run(shape + ["--prior", "[0.4,0.3,0.2,0.1]"])
        let file = try LetheProcess.run(shape + ["--prior", prior.path])
        #expect(inline.status == 0 && inline.output == file.output, "\(inline.output)\n\(file.output)")
        // A prior that does not fit the slices is a usage error, found before any work, for
        // simulate and plan alike.
        let bad = try LetheProcess.run(shape + ["--prior", "[0.4, 0.3]"])
        #expect(bad.status == 64 && bad.output.contains("--prior") && bad.output.contains("has 2 entries for 4 slices"),
                "\(bad.output)")
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("prior-run-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let data = scratch.appendingPathComponent("tiny.jsonl")
        try BBCSubset.write(perLabel: 6, to: data)
        let run = scratch.appendingPathComponent("run")
        let planned = try LetheProcess.run(["plan", "--data", data.path, "--shards", "2", "--slices", "4", "--budget", "2",
                                            "--selection", "bms", "--prior", "[0.5, 0.5, 0.5, 0.5]", "--run", run.path])
        #expect(planned.status == 64 && planned.output.contains("sums to 2.0, not 1"), "\(planned.output)")
        #expect(!FileManager.default.fileExists(atPath: run.path))
    }
}

extension CommandContractTests {
    /// An id stored decomposed ("cafe" + U+0301) and forgotten as typed precomposed (U+00E9):
    /// the plan's example is tombstoned, and the audit of either form finds the request.
    @Test func anIdInAnotherUnicodeNormalFormIsForgottenAndAuditedAsTheStoredOne() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-nfd-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let stored = "cafe\u{301}", typed = "caf\u{E9}"
        var lines = [#"{"id":"\#(stored)","text":"the cafe opens","label":"a"}"#]
        lines += (0..<11).map { #"{"id":"x\#($0)","text":"text \#($0)","label":"\#($0 % 2 == 0 ? "a" : "b")"}"# }
        let data = scratch.appendingPathComponent("nfd.jsonl")
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: data)
        let run = scratch.appendingPathComponent("run")
        try LetheProcess.succeed(["plan", "--data", data.path, "--shards", "1", "--slices", "2", "--budget", "1",
                                  "--run", run.path])
        try LetheProcess.succeed(["forget", "--run", run.path, "--id", typed])
        let plan = try Plan.load(from: Plan.url(inRun: run))
        #expect(plan.tombstones.contains { Array($0.utf8) == Array(stored.utf8) }, "\(plan.tombstones)")
        for form in [stored, typed] {
            let audit = try LetheProcess.succeed(["audit", "--run", run.path, "--id", form])
            #expect(audit.contains("Forgotten by request") && !audit.contains("no request"), "\(audit)")
        }
    }
}
