import ArgumentParser
import CommandSupport
import Forgetting
import Foundation
import Planning

/// `lethe forget`: deletes examples (or whole groups) from a trained run, durably and at once.
struct ForgetCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "forget",
        abstract: "Forget examples: record the requests, truncate the sequences that saw them, erase their stages.",
        discussion: """
            Order of effects: the requests are written to RUN/ledger.sqlite and fsynced first \
            (once "accepted" is printed, no crash loses them); then the examples are tombstoned \
            in the plan (appended to RUN/plan.tombstones); then every sequence of each hit shard is cut before its first hit \
            slice, each shard serves its longest surviving prefix and RUN/served.json is \
            replaced atomically; then the stage files that saw a deleted example are erased; \
            finally a receipt goes to the ledger and is printed. A forget interrupted at any \
            point is finished by the next one (or by --resume).

            A deletion log (--log) is JSON Lines, one {"id": …} or {"group": …} object per \
            line, optional "request_id" and "timestamp": all requests in one ledger transaction \
            and one publish. A malformed line stops the log before anything changes. Unknown \
            ids are reported in the receipt; repeated requests change nothing, and one whose \
            request_id and target are already in the ledger (the same log run again) is not \
            recorded again: the receipt lists it as already_recorded.

            Unknown ids and groups are recorded as unknown, listed on stderr and exit with 5. A \
            refused or failed forget (exit 1) accepted nothing unless "accepted" was printed; an \
            empty id or group, or no target at all, is a usage error (exit 64).

            Examples (the demo run of `make demo`; a Rotten Tomatoes run planned with --run \
            Checkpoints/runs/rt from Datasets/rotten-tomatoes/train.jsonl):
              lethe forget --run Checkpoints/runs/demo --id business/002
              lethe forget --run Checkpoints/runs/rt --group a_grin_without_a_cat
              printf '{"id": "business/003"}\\n{"id": "business/004", "request_id": "ticket-7"}\\n' > requests.jsonl
              lethe forget --run Checkpoints/runs/demo --log requests.jsonl --json

            \(ExitStatus.help(.unknownTargets))
            """
    )

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(name: .customLong("id"), help: "Example id to forget (repeatable).")
    var ids: [String] = []

    @Option(name: .customLong("group"), help: "Group (data subject) whose examples to forget (repeatable).")
    var groups: [String] = []

    @Option(help: "JSON Lines deletion log (- reads standard input).")
    var log: String?

    @Option(help: "Dataset that resolves groups to ids (default: the dataset the plan was made from).")
    var data: String?

    @Flag(help: "Finish requests an interrupted forget left pending, without new requests.")
    var resume = false

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func validate() throws {
        if ids.isEmpty && groups.isEmpty && log == nil && !resume {
            throw ValidationError("Name what to forget: --id, --group or --log (or --resume to finish pending requests).")
        }
        if resume && !(ids.isEmpty && groups.isEmpty && log == nil) {
            throw ValidationError("--resume finishes the requests already recorded and takes no new ones; give --id, "
                                  + "--group or --log without --resume (a forget finishes pending requests first anyway).")
        }
        // As the dataset reader: an empty id, and a group of nothing but spaces, name nothing; an
        // id of spaces or invisible characters is a valid id a plan may hold (one it lacks is
        // reported unknown).
        if let empty = (ids.map { ("--id", $0) } + groups.map { ("--group", $0) }).first(where: { name in
            name.1.isEmpty || (name.0 == "--group" && name.1.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty) }) {
            throw ValidationError("\(empty.0) \"\(empty.1)\": an empty name forgets nothing; give an example id or a group.")
        }
        for (option, value) in ids.map({ ("--id", $0) }) + groups.map({ ("--group", $0) }) {
            if let problem = ForgetRequest.problem(field: option == "--id" ? "id" : "group", value) {
                throw ValidationError("\(option): \(problem).")
            }
        }
        try InputFiles.check([("--log", logPath), ("--data", data)])
    }

    /// --log as a path: `-` is standard input.
    var logPath: String? { log == "-" ? "/dev/stdin" : log }

    func run() throws {
        let run = URL(fileURLWithPath: runDirectory)
        var requests = ids.map { ForgetRequest(target: .example($0)) } + groups.map { ForgetRequest(target: .group($0)) }
        if let log, let logPath {
            let logged = try RequestLog.read(from: URL(fileURLWithPath: logPath), source: log == "-" ? "standard input" : log)
            if logged.isEmpty && requests.isEmpty && !resume {
                throw ValidationError("--log \(log) holds no request (only blank lines); nothing to forget.")
            }
            requests += logged
        }
        let needsGroups = requests.contains { if case .group = $0.target { return true } else { return false } }
        let resolver = needsGroups ? try groupResolver(run: run) : nil
        let now = RunAccess.nowMilliseconds()
        var acceptedAt: Int64?
        let receipt: ForgetReceipt
        do {
            receipt = try Forgetter(run: run).forget(requests, groups: resolver, nowMilliseconds: now) { head in
                acceptedAt = head.sequenceNumber
                // Printed (and flushed) only once the requests are durable.
                if !json {
                    print("accepted \(requests.count) request(s) at ledger #\(head.sequenceNumber)")
                    fflush(nil)
                }
            }
        } catch {
            // Once recorded, a request is carried out by the next command even if this one fails:
            // a failure after acceptance says so, so a caller does not think nothing was accepted.
            guard let acceptedAt else { throw error }
            let message = UserFacingError.translate(error)
            throw UserFacingError(description: "\(message)\nThe \(requests.count) request(s) were accepted at ledger "
                + "#\(acceptedAt) and are not lost: the next lethe command on this run carries them out first "
                + "(`lethe forget --run \(runDirectory) --resume` does only that).")
        }
        print(json ? try receipt.json() : receipt.summary)
        // Quoted, so an id of spaces or one holding ", " reads as what it is.
        let unknown = receipt.unknownIDs.map { "id \($0.debugDescription)" } + receipt.unknownGroups.map { "group \($0.debugDescription)" }
        if !unknown.isEmpty {
            // A long log may name thousands: the first few here, all of them in the receipt.
            let shown = unknown.prefix(Self.unknownShown).joined(separator: ", ")
            let more = unknown.count > Self.unknownShown
                ? " and \(unknown.count - Self.unknownShown) more (the receipt lists them all: `lethe audit`)" : ""
            StandardError.write(Data(("unknown to the plan (recorded, nothing deleted): \(shown)\(more)\n").utf8))
            throw ExitStatus.unknownTargets.exitCode
        }
    }

    static let unknownShown = 20

    /// Group → ids from the dataset the plan names (or --data), refusing a dataset whose bytes
    /// differ from the planned one.
    private func groupResolver(run: URL) throws -> Forgetter.GroupResolver {
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let dataset = try RunData.dataset(for: plan, run: run, override: data)
        var members: [String: [String]] = [:]
        for example in dataset.examples {
            if let group = example.group { members[group, default: []].append(example.id) }
        }
        return { members[$0] ?? [] }
    }
}
