import ArgumentParser
import CommandSupport
import Forgetting
import Training
import Foundation
import Planning

/// `lethe retrain`: rebuilds slices without deleted examples and restores full sequences.
struct RetrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "retrain",
        abstract: "Rebuild the slices that held deleted examples and retrain the affected stages.",
        discussion: """
            For each shard with a slice still holding a forgotten example: the slice gets new \
            members (the deleted ids removed) and a new content hash in RUN/plan.h5; each \
            sequence is retrained from its first stage that contains such a slice (earlier \
            stages keep their keys and files), with the same deterministic trainer and \
            settings as lethe train, so the result is bit-identical to training the new plan \
            from scratch. Shards without deletions are not touched.

            lethe predict and lethe forget may run meanwhile: the shard keeps serving its \
            truncated prefix until its new stages are all trained; then, under the lock lethe \
            forget uses, the new plan and composition are published atomically. A forget that \
            arrived during training truncates the new sequences at its slice (nothing trained on \
            a deleted example is served) and the shard is rebuilt again, up to --passes times. \
            Stage files no surviving prefix uses are erased, and a `retrain` entry is added to \
            the ledger. A killed retrain leaves the run valid; running it again completes it.

            Time: one stage of training per affected stage, a few seconds each for BBC News \
            headlines at the demo's settings on 2 cores (a stage trains its block on its slices).

            --scheduler slurm (with the options of `lethe train --scheduler slurm`) trains the \
            affected shards' stages as one Slurm job array — only the shards that need a retrain are \
            submitted — and then, with --wait, publishes each shard here as above.

            Examples:
              lethe retrain --run Checkpoints/runs/demo
              lethe retrain --run Checkpoints/runs/demo --scheduler slurm --max-parallel 4 --wait
              lethe retrain --run Checkpoints/runs/demo --shard 2 --json

            \(ExitStatus.help(.retrainTruncated))
            """)

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(name: .customLong("shard"), help: "Retrain only this shard (repeatable), 0…shards−1 of the plan; default: every shard that needs it.")
    var shards: [Int] = []

    @Option(help: """
        Threads, \(CommonBounds.threads.text); must equal the run's (the default), as stages are bit-identical \
        only for equal counts.
        """)
    var threads: Int?

    @Option(help: "Passes per shard when forgets arrive during retraining, \(Self.passBounds.text).")
    var passes: Int = 3

    @Option(help: "Dataset the plan was made from (default: the path recorded in the plan).")
    var data: String?

    @Flag(help: "One JSON line per stage and per published shard.")
    var json = false

    @Option(help: "Where shards retrain: local (this machine) or slurm (one job array task per shard).")
    var scheduler: RetrainSchedulerKind = .local
    @OptionGroup var scheduling: SchedulerOptions

    static let passBounds = OptionBounds(1...100)

    func validate() throws {
        try Self.passBounds.check(passes, option: "--passes")
        try CommonBounds.threads.check(threads, option: "--threads")
        if let shard = shards.first(where: { $0 < 0 }) {
            throw ValidationError("--shard \(shard): give a shard of the plan, 0…shards−1.")
        }
        try InputFiles.check([("--data", data)])
        try scheduling.check(scheduler: scheduler.kind, kubernetes: nil)
    }

    func run() throws {
        let run = URL(fileURLWithPath: runDirectory)
        let clock = ContinuousClock(), origin = clock.now
        let seconds = { (clock.now - origin).seconds }
        let shardCount = try Plan.load(from: Plan.url(inRun: run)).shardCount
        if let shard = shards.first(where: { $0 >= shardCount }) {
            throw ValidationError("--shard \(shard): the plan has \(shardCount) shard(s); give 0…\(shardCount - 1).")
        }
        if scheduling.task {
            // A cluster task: no recovery (which may write the ledger), no publish.
            guard shards.count == 1, let shard = shards.first else {
                throw ValidationError("--task retrains exactly one --shard.")
            }
            try TrainCommand.exitTransientlyOnNetworkErrors {
                try retrainTask(run: run, shard: shard, seconds: seconds)
            }
            return
        }
        try RunAccess.recover(run)
        let needed = try Retrainer.shardsNeedingRetrain(run: run)
        let wanted = shards.isEmpty ? needed : needed.filter(shards.contains)
        if wanted.isEmpty {
            print(json ? #"{"event":"done","shards":[]}"#
                  : "Nothing to retrain: " + (shards.isEmpty ? "every shard serves" : "shard(s) "
                      + shards.map(String.init).joined(separator: ", ") + " serve") + " full sequences without deleted data.")
            return
        }
        let trainer = try RunTrainer(run: run, data: data, threads: threads, clock: seconds)
        let layout = RunLayout(directory: run)
        if scheduler == .slurm {
            // The affected shards' stages train as array tasks; the retrain below then finds
            // them trained and publishes each shard under the run lock. A shard with an emptied
            // slice cannot be rebuilt: no task for it (the retrain below reports it).
            let emptied = Set(try Plan.load(from: layout.planURL).emptiedSlices.map(\.shard))
            let buildable = wanted.filter { !emptied.contains($0) }
            if !buildable.isEmpty {
                let submission = SlurmSubmission(layout: layout, settings: trainer.runner.settings, shards: buildable,
                                                 options: scheduling, data: data, subcommand: "retrain")
                guard try submission.run(json: json) else { return }
            }
        } else {
            // A Slurm array still retraining this run would train the same stages beside this call.
            try SlurmQueue.requireNoActiveJob(run: run)
        }
        let reporter = TrainReporter(json: json, terminal: isatty(STDOUT_FILENO) == 1 && !json,
                                     epochs: trainer.runner.settings.epochs, clock: seconds)
        let retrainer = Retrainer(run: run, runner: trainer.runner, layerCount: trainer.layerCount)
        let records = try retrainer.retrain(shards: shards.isEmpty ? nil : shards, maxPasses: passes,
                                            nowMilliseconds: RunAccess.nowMilliseconds) { event in
            switch event {
            case .training(let event): reporter.handle(event)
            case .published(let record):
                // Every --json line names its event; the record follows as the ledger stores it.
                print(json ? ((try? record.json()).map { "{\"event\":\"published\"," + $0.dropFirst() } ?? "")
                           : record.summary)
                fflush(nil)
            }
        }
        reporter.finish()
        let truncated = Dictionary(grouping: records, by: \.shard).values.compactMap(\.last).filter { !$0.fullLength }
            .sorted { $0.shard < $1.shard }
        if !truncated.isEmpty {
            StandardError.write(Data(("shards \(truncated.map { String($0.shard) }.joined(separator: ", ")) "
                + "still serve truncated prefixes: forgets arrived during every pass; run lethe retrain again.\n").utf8))
            throw ExitStatus.retrainTruncated.exitCode
        }
    }

    /// `--task`, inside a Slurm array task: trains the shard's rebuilt stages and writes the
    /// task's result record; no recovery (which may write the ledger), no publish.
    func retrainTask(run: URL, shard: Int, seconds: @escaping () -> Double) throws {
        let trainer = try RunTrainer(run: run, data: data, threads: threads, clock: seconds)
        // The task's log (RUN/slurm/logs/…) shows each stage as `train --task` does.
        let reporter = TrainReporter(json: json, terminal: false, epochs: trainer.runner.settings.epochs,
                                     progressEvents: false, clock: trainer.runner.clock)
        let outcome = try Retrainer(run: run, runner: trainer.runner, layerCount: trainer.layerCount)
            .trainRebuiltStages(shard: shard) { event in
                reporter.handle(event)
                if case .stageFinished = event { TrainCommand.injectTransientFailure(shard: shard) }
            }
        reporter.finish()
        try SlurmSubmission.recordResult(layout: RunLayout(directory: run), shard: shard, outcome: outcome)
    }
}
