import ArgumentParser
import CommandSupport
import Audit
import Foundation
import Planning

/// `lethe audit`: who saw an example, is any of it served, and was it forgotten.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "Show an example's shard and slice, every stage checkpoint that trained on it, and its deletion record.",
        discussion: """
            Lists every stage checkpoint whose prefix contained the example (on disk, erased by \
            a forget, or never written: not trained yet, or withheld), whether any of them is \
            served now, and, if the example was forgotten, when, by which request, and the \
            receipt. For a run trained with --strategy full it lists the one full model, which \
            holds every example not deleted before it was trained. With --group, audits every \
            example of the group.

            A deleted example that some stage still serves (tampering, or a forget interrupted \
            before it published) exits with 2 after the report.

            Read access is enough: a user who may not write the run (or a read-only mount) gets the run as it is on disk, and an interrupted forget is named on stderr instead of being completed. The same holds for verify, status and plan show.

            Example:
              lethe audit --run Checkpoints/runs/demo --id business/001 --json

            \(ExitStatus.help(.servedAfterForgetting))
            """
    )

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(help: "Example id.")
    var id: String?

    @Option(help: "Group (data subject): audits each of its examples.")
    var group: String?

    @Option(help: "Dataset that resolves --group (default: the dataset the plan was made from).")
    var data: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func validate() throws {
        if (id == nil) == (group == nil) { throw ValidationError("Give exactly one of --id or --group.") }
        try InputFiles.check([("--data", data)])
    }

    func run() throws {
        let run = URL(fileURLWithPath: runDirectory)
        let audits = try RunAccess.inspect(run) {
            var ids: [String] = []
            if let id { ids = [id] }
            if let group {
                let plan = try Plan.load(from: Plan.url(inRun: run))
                let dataset = try RunData.dataset(for: plan, run: run, override: data)
                ids = dataset.examples.filter { $0.group == group }.map(\.id)
                if ids.isEmpty {
                    throw AuditError.unknownGroup(group: group, requests: try ExampleAudit.requests(matching: .group(group),
                                                                                                    run: run))
                }
            }
            return try ids.map { try ExampleAudit.audit(run: run, id: $0) }
        }
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            let data = id != nil ? try encoder.encode(audits[0]) : try encoder.encode(audits)
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(audits.map(\.summary).joined(separator: "\n\n"))
        }
        if audits.contains(where: { $0.servedNow && !$0.deletions.isEmpty }) { throw ExitStatus.servedAfterForgetting.exitCode }
    }
}
