import ArgumentParser
import CommandSupport
import Forgetting
import Foundation
import Kernels
import Models
import Planning
import Store
import Support
import Training

extension TrainingStrategy: ExpressibleByArgument {}

/// `lethe train`: trains the stages of a planned run (S3T, or the SISA / full baselines).
struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train the adapter blocks of a planned run (S3T stages, or the SISA/full baselines).",
        discussion: """
            For each shard and each of its sequences π, stage i trains LoRA block i counted from \
            the top (--layers-per-block layers) on slices π1..πi together with the head; the base \
            model and the other blocks are frozen. Stages shared by several sequences (equal \
            prefixes) are trained once. Each stage is committed atomically to \
            RUN/stages/shard-K/stage-I-<key>.h5; an interrupted run resumes where it stopped and \
            gives the same files, byte for byte (each stage's training time goes to \
            RUN/stages/timings.jsonl, not into its file). Settings \
            are saved in RUN/train.json on the first call and \
            reused after; options that contradict them are refused.

            Deletions bind training: a stage whose slices hold an example deleted with `lethe \
            forget` (before or during this command) is withheld, never trained or published, \
            and each shard serves its longest clean prefix; `lethe retrain` rebuilds those slices \
            without the deleted examples. Each stage is committed, and each shard's composition \
            published, under the run lock after the deletions are read again.

            --strategy sisa needs a plan with budget 1 (every adapter trainable at each stage); \
            --strategy full trains one model on all the data of the plan.

            Examples:
              lethe train --run Checkpoints/runs/demo --epochs 3 --rank 16
              lethe train --run Checkpoints/runs/demo --shard 0 --shard 1   # another process: --shard 2 --shard 3
              lethe train --run Checkpoints/runs/demo --threads 1 --jobs 2     # two shards at a time, one thread each

            --jobs N trains up to N shards at once in child processes, each with the run's thread \
            count (give jobs × threads ≤ cores); the files equal a sequential run's byte for byte. \
            With N threads each batch is trained as N groups of sequences, one per thread, whose \
            adapter gradients are added in group order: the same thread count gives the same bits, \
            another count sums the rows in another order. On headline-sized batches `--threads 1 \
            --jobs <cores>` is the fastest way to train a run (`make demo` uses it). The \
            children end with the parent: killing it (even with SIGKILL) ends them, and SIGINT or \
            SIGTERM sent to it is passed on to them.

            --scheduler slurm submits one Slurm job array over the shards with stages left to train \
            (the batch script is kept in RUN/slurm/ to read or resubmit; logs in RUN/slurm/logs/). Each \
            task trains its shard's stages with --cpus-per-task threads and writes only stage files \
            and its result record; a task that exits 75 is requeued. With --wait the command follows \
            the array (one line: done, running, pending, failed) and then publishes the composition \
            under the run lock from the deletions current then; without it, `lethe train --run RUN` \
            publishes once the array is done. The run directory must be on storage every node \
            shares, and the ledger stays with the host that runs forget and publishes.
              lethe train --run RUN --scheduler slurm --partition gpu --time 1:00:00 --max-parallel 8 --wait

            Every option is checked before anything is written: a value outside its range is a \
            usage error, and a refused first call leaves no RUN/train.json behind. A NaN or \
            infinite training loss stops the stage (exit 1) with nothing saved; lower --lr.

            \(ExitStatus.help(.transientFailure))
            """)

    @OptionGroup var runOptions: RunOptions
    var runDirectory: String { runOptions.runDirectory }

    @Option(name: .customLong("shard"), help: "Train only this shard (repeatable), 0…shards−1 of the plan; default: every shard.")
    var shards: [Int] = []

    @Option(help: "Training strategy: s3t, sisa or full. Default s3t.")
    var strategy: TrainingStrategy?
    @Option(help: """
        Encoder layers per adapter block, \(rangeText(TrainingSettings.Limits.layersPerBlock)), with slices × layers ≤ \
        the model's layers. Default 2.
        """)
    var layersPerBlock: Int?
    @OptionGroup var options: TrainingOptions
    @Option(help: "Dataset the plan was made from (default: the path recorded in the plan).")
    var data: String?

    @Option(help: "Shards trained at once, \(Self.jobBounds.text), each in its own process with the run's thread count.")
    var jobs = 1

    @Option(help: "Where shards train: local (this machine), slurm (one job array task per shard) or k8s (with --emit-manifest: write a Kubernetes Indexed Job).")
    var scheduler: SchedulerKind = .local
    @OptionGroup var scheduling: SchedulerOptions
    @OptionGroup var kubernetes: KubernetesOptions

    @Flag(help: "One JSON line per stage instead of text.")
    var json = false

    @Flag(help: .hidden) var progressEvents = false

    /// `--jobs`: one process per shard, up to the plan's largest shard count.
    static let jobBounds = OptionBounds(1...PlanParameters.shardLimit.upperBound)

    func validate() throws {
        try Self.jobBounds.check(jobs, option: "--jobs")
        try OptionBounds(TrainingSettings.Limits.layersPerBlock).check(layersPerBlock, option: "--layers-per-block")
        if let shard = shards.first(where: { $0 < 0 }) {
            throw ValidationError("--shard \(shard): give a shard of the plan, 0…shards−1.")
        }
        try InputFiles.check([("--data", data)])
        try scheduling.check(scheduler: scheduler, kubernetes: kubernetes)
        if jobs > 1 && scheduler != .local {
            throw ValidationError("--jobs runs shards as processes here; with --scheduler \(scheduler.rawValue) each shard "
                                  + "is a task of its own already (--max-parallel bounds how many run at once).")
        }
        if let data, InputFile.isPipe(data), jobs > 1 || scheduler != .local {
            // Each shard's process opens --data itself; a pipe's data is read once, here.
            throw ValidationError("--data \(data) is a pipe, which the " + (jobs > 1 ? "--jobs processes" : "cluster's tasks")
                                  + " cannot read again; write the data to a file and pass that.")
        }
    }

    func run() throws {
        let layout = RunLayout(directory: URL(fileURLWithPath: runDirectory))
        var plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        for shard in shards where !(0..<plan.shardCount).contains(shard) {
            throw ValidationError("--shard \(shard): give 0…\(plan.shardCount - 1) (the plan has \(plan.shardCount) shards).")
        }
        // Everything a first call can refuse is checked before train.json is saved — the
        // data file too, which each child of --jobs reads again — so a refused call leaves
        // nothing behind and the corrected one starts clean.
        if scheduling.task, !FileManager.default.fileExists(atPath: layout.settingsURL.path) {
            // The submitting call saved the array's settings; training with defaults instead
            // would publish a model nobody asked for.
            throw UserFacingError(description: "\(layout.settingsURL.path) is missing, so this array task does not know "
                                  + "the run's training settings and trains nothing; submit again with `lethe train --run "
                                  + "\(runDirectory) --scheduler slurm` and the training options.")
        }
        var dataChecked = false, createdSettings = false
        let settings = try options.resolveSettings(layout: layout, strategy: strategy, layersPerBlock: layersPerBlock,
                                                   textData: plan.labels.count == 0, check: {
            try Self.checkFits($0, plan: plan, run: layout.directory)
            if $0.modelKind == .encoder && plan.labels.count < 2 {
                throw TrainingError.tooFewLabels(names: plan.labels.names)
            }
            if scheduler != .local, !scheduling.task { try checkClusterFits($0, layout: layout) }
            _ = try RunData.dataset(for: plan, run: layout.directory, override: data)
            dataChecked = true
        }, created: { createdSettings = true })
        if scheduler != .local, !scheduling.task {
            // The submitting host owns the ledger: an interrupted forget is completed here (after
            // every check a usage error could stop at), and the plan read again, or every task
            // would refuse to train beside it.
            try checkClusterFits(settings, layout: layout)
            _ = try RunAccess.recover(layout.directory)
            plan = try Plan.load(from: Plan.url(inRun: layout.directory))
        }
        let selected = shards.isEmpty ? Array(0..<plan.shardCount) : shards
        if scheduling.task {
            guard shards.count == 1, let shard = shards.first, settings.strategy != .full else {
                throw ValidationError("--task trains exactly one --shard of an s3t or sisa run.")
            }
            try Self.exitTransientlyOnNetworkErrors {
                try Self.trainTask(layout: layout, settings: settings, plan: plan, shard: shard, data: data, json: json)
            }
            return
        }
        if scheduler == .slurm || scheduler == .k8s {
            let jobBefore = SlurmQueue.lastJob(run: layout.directory)?.id
            do {
                try submitToCluster(layout: layout, settings: settings, plan: plan, selected: selected)
            } catch {
                // A first call whose submission failed (sbatch refused a partition, a time…)
                // trained nothing: it leaves no train.json, so the corrected call starts clean.
                // Once sbatch has taken the array (a later error: Slurm unreachable while it is
                // followed), its tasks read these settings: they stay.
                let submitted = SlurmQueue.lastJob(run: layout.directory)?.id != jobBefore
                if createdSettings, !submitted, layout.anyStageFile() == nil {
                    try? FileManager.default.removeItem(at: layout.settingsURL)
                }
                throw error
            }
            return
        }
        // A Slurm array still training this run would train the same stages beside this call.
        try SlurmQueue.requireNoActiveJob(run: layout.directory)
        if jobs > 1, settings.strategy != .full, selected.count > 1 {
            // A wrong data file fails here, not in every child.
            if !dataChecked { _ = try RunData.dataset(for: plan, run: layout.directory, override: data) }
            try ShardJobs(runDirectory: runDirectory, data: data, json: json,
                          terminal: isatty(STDOUT_FILENO) == 1 && !json).run(shards: selected, jobs: jobs)
            return
        }
        try Self.train(layout: layout, settings: settings, shards: shards, data: data, json: json,
                       progressEvents: progressEvents)
    }

    /// What a cluster submission refuses in the settings (checked before a first call saves
    /// them, and again for later calls).
    func checkClusterFits(_ settings: TrainingSettings, layout: RunLayout) throws {
        guard settings.strategy != .full else {
            throw ValidationError("--scheduler \(scheduler.rawValue) trains shards; --strategy full trains one "
                                  + "model: use --scheduler local.")
        }
        if let cpus = scheduling.cpusPerTask, cpus != settings.threadCount {
            throw ValidationError("--cpus-per-task \(cpus): the run trains with \(settings.threadCount) thread(s); give "
                                  + "--cpus-per-task \(settings.threadCount), or --threads \(cpus) on the run's first call.")
        }
    }

    /// `--scheduler slurm`: submits the shards with stages left to train as one job array, or,
    /// when every stage is trained, publishes at once. `--scheduler k8s --emit-manifest` writes
    /// the same work as an Indexed Job manifest.
    /// (`run` has checked `checkClusterFits` before recovering.)
    func submitToCluster(layout: RunLayout, settings: TrainingSettings, plan: Plan, selected: [Int]) throws {
        let layerCount = try settings.baseLayerCount(run: layout.directory)
        let pending = try selected.filter { shard in
            try StageSchedule(shard: shard, sequences: plan.sequences(of: shard),
                              sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                              layerCount: layerCount, layersPerBlock: settings.layersPerBlock, strategy: settings.strategy)
                .stages.contains { !layout.isComplete($0) }
        }
        if scheduler == .k8s {
            let dataset = data.map { URL(fileURLWithPath: $0) } ?? plan.datasetURL(run: layout.directory)
            let manifest = IndexedJobManifest(layout: layout, shards: pending.isEmpty ? selected : pending,
                                              threads: settings.threadCount, options: scheduling, kubernetes: kubernetes, data: data,
                                              inputs: [dataset, settings.baseModelDirectory(run: layout.directory)])
            let url = try manifest.write()
            for path in manifest.outsideMount {
                StandardError.write(Data(("warning: \(path) is not under \(manifest.mount), the directory the "
                    + "manifest mounts: a pod will not find it. Put it on the volume (and pass --data, or train with --model, "
                    + "naming it there).\n").utf8))
            }
            writeLine(json ? #"{"event":"manifest","path":"\#(url.path)"}"# : "wrote \(url.path): apply it with kubectl apply -f; "
                      + "when the Job completes, `lethe train --run \(layout.directory.path)` publishes the composition")
            return
        }
        guard !pending.isEmpty else {
            let composition = try RunAccess.guarded(layout.directory).publish(strategy: settings.strategy, shards: selected)
            writeLine(json ? #"{"event":"published","submitted":false}"#
                      : "every stage of shards \(selected.map(String.init).joined(separator: " ")) is trained; published "
                        + "\(composition.liveShards.count) live shard(s)")
            return
        }
        var submission = SlurmSubmission(layout: layout, settings: settings, shards: pending, options: scheduling, data: data)
        submission.publishing = selected
        try submission.run(json: json)
    }

    /// `--task`, inside a Slurm array task: trains one shard's stages and writes the task's
    /// result record. It reads the plan without recovery and commits each stage through a gate
    /// that re-reads the tombstones under the run lock without recovering either: a task never
    /// writes the ledger or served.json. A transient failure exits 75, which Slurm requeues.
    static func trainTask(layout: RunLayout, settings: TrainingSettings, plan: Plan, shard: Int, data: String?,
                          json: Bool) throws {
        let (runner, layerCount) = try makeRunner(layout: layout, settings: settings, plan: plan, data: data)
        let reporter = TrainReporter(json: json, terminal: false, epochs: settings.epochs, progressEvents: false,
                                     clock: runner.clock)
        let gate = try StageGate.withoutLedger(layout, plan: plan)
        let schedule = try StageSchedule(
            shard: shard, sequences: plan.sequences(of: shard),
            sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
            layerCount: layerCount, layersPerBlock: settings.layersPerBlock, strategy: settings.strategy)
        let outcome = try runner.trainStages(schedule, members: { plan.currentMembers(shard: shard, slice: $0) }, gate: gate,
                                             events: { event in
            reporter.handle(event)
            if case .stageFinished = event { injectTransientFailure(shard: shard) }
        })
        reporter.finish()
        try SlurmSubmission.recordResult(layout: layout, shard: shard, outcome: outcome)
    }

    /// Errors of shared storage that pass (a stale NFS handle, a timeout, a lock server that is
    /// busy): an array task that meets one exits 75 so that Slurm requeues it, and the retry
    /// resumes from the stages already committed. Others fail the task (exit 1), named in its log.
    static let transientErrnos: Set<Int32> = [ESTALE, ETIMEDOUT, EAGAIN, ENOLCK, EBUSY, EINTR]

    static func exitTransientlyOnNetworkErrors(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch let StoreError.io(file, operation, code) where transientErrnos.contains(code) {
            StandardError.write(Data(("transient failure: \(operation) \(file): \(String(cString: strerror(code))) "
                + "(errno \(code)); exit 75, so Slurm requeues the task\n").utf8))
            Foundation.exit(ExitStatus.transientFailure.rawValue)
        }
    }

    /// Failure injection for the requeue test (LETHE_TASK_FAIL_ONCE=DIR): the first attempt of
    /// each shard's task exits 75 right after committing its first stage, as a transient failure
    /// in mid-training would; the requeued attempt resumes from the committed stages.
    static func injectTransientFailure(shard: Int) {
        guard let marker = ProcessInfo.processInfo.environment["LETHE_TASK_FAIL_ONCE"] else { return }
        let flag = URL(fileURLWithPath: marker).appendingPathComponent("shard-\(shard)")
        if !FileManager.default.fileExists(atPath: flag.path) {
            _ = FileManager.default.createFile(atPath: flag.path, contents: Data())
            StandardError.write(Data("injected transient failure after a committed stage (exit 75)\n".utf8))
            Foundation.exit(ExitStatus.transientFailure.rawValue)
        }
    }

    /// The stage runner of a run (the dataset, the base model, the trainer of its model kind,
    /// a clock from now) and the base model's layer count.
    static func makeRunner(layout: RunLayout, settings: TrainingSettings, plan: Plan,
                           data: String?) throws -> (S3TRunner, Int) {
        let dataset = try RunData.dataset(for: plan, run: layout.directory, override: data)
        if settings.textField == TextField.textAndLead.rawValue,
           !dataset.examples.contains(where: { !($0.field("lead") ?? "").isEmpty }) {
            StandardError.write(Data(("warning: the run trains on text+lead, but no example of \(dataset.source) has a "
                + "non-empty \"lead\": every stage trains on the text alone.\n").utf8))
        }
        let (trainer, layerCount) = try stageTrainer(run: layout.directory, settings: settings, plan: plan, dataset: dataset)
        let clock = ContinuousClock(), origin = clock.now
        let runner = S3TRunner(layout: layout, settings: settings, trainer: trainer, labels: plan.labels.names,
                               clock: { (clock.now - origin).seconds })
        return (runner, layerCount)
    }

    /// The stage trainer of a run's model kind on its base model, and that model's layer count.
    static func stageTrainer(run: URL, settings: TrainingSettings, plan: Plan,
                             dataset: Dataset) throws -> (StageTrainer, Int) {
        switch settings.modelKind {
        case .encoder:
            let encoder = try settings.loadBaseEncoder(run: run)
            // Stage i trains the i-th block from the top; a sequence has at most one stage per slice.
            let layerCount = encoder.configuration.layerCount
            let lowest = max(0, layerCount - settings.layersPerBlock * plan.sliceCount)
            return (try EncoderStageTrainer(encoder: encoder, settings: settings, labels: plan.labels, dataset: dataset,
                                            lowestBlockLayer: lowest),
                    layerCount)
        case .decoder:
            let (model, tokenizer) = try settings.loadBaseDecoder(run: run)
            let trainer = try DecoderStageTrainer(model: model, settings: settings, dataset: dataset, padID: tokenizer.eosID,
                                                  tokenize: { tokenizer.encode($0, allowSpecial: false) })
            return (trainer, model.configuration.layerCount)
        }
    }

    /// Refuses settings that the plan and the base model cannot train: blocks that do not fit
    /// the encoder's layers, SISA without budget 1, a rank above the hidden width.
    static func checkFits(_ settings: TrainingSettings, plan: Plan, run: URL) throws {
        let width: Int, layerCount: Int
        switch settings.modelKind {
        case .encoder:
            let configuration = try BertConfiguration(
                contentsOf: settings.baseModelDirectory(run: run).appendingPathComponent("config.json").path)
            (width, layerCount) = (configuration.hiddenSize, configuration.layerCount)
        case .decoder:
            let configuration = try LlamaConfiguration(gguf: try GGUFFile(contentsOf: settings.baseModelDirectory(run: run).path))
            (width, layerCount) = (min(configuration.hiddenSize, configuration.kvSize, configuration.intermediateSize),
                                   configuration.layerCount)
        }
        if settings.rank > width {
            throw ValidationError("--rank \(settings.rank): the base model's narrowest adapted projection is \(width) wide; "
                                  + "give 1 … \(min(width, TrainingSettings.Limits.rank.upperBound)).")
        }
        guard settings.strategy != .full else { return }
        if plan.sliceCount * settings.layersPerBlock > layerCount {
            throw ValidationError("--layers-per-block \(settings.layersPerBlock): \(plan.sliceCount) slices × "
                                  + "\(settings.layersPerBlock) layers do not fit the model's \(layerCount) "
                                  + "layers; give at most \(layerCount / plan.sliceCount).")
        }
        if settings.strategy == .sisa && plan.budget != 1 {
            throw ValidationError("--strategy sisa needs a plan with budget 1 (this one has \(plan.budget)); plan a "
                                  + "new run with --budget 1.")
        }
    }

    /// Trains every stage of `shards` (all when empty) that has no complete file and holds no
    /// deleted example, then publishes each shard's composition, reporting progress; shared
    /// with `lethe finetune`. The plan and its tombstones are read under the run lock after
    /// recovery; every stage commit and every publish re-reads them there (`RunGuard`).
    static func train(layout: RunLayout, settings: TrainingSettings, shards: [Int],
                      data: String?, json: Bool, progressEvents: Bool = false) throws {
        let guarded = RunAccess.guarded(layout.directory)
        let plan = try guarded.withRecoveredRun { recovery in
            RunAccess.report(recovery)
            return try Plan.load(from: layout.planURL)
        }
        let (runner, layerCount) = try makeRunner(layout: layout, settings: settings, plan: plan, data: data)
        let reporter = TrainReporter(json: json, terminal: isatty(STDOUT_FILENO) == 1 && !json,
                                     epochs: settings.epochs, progressEvents: progressEvents, clock: runner.clock)
        let gate = guarded.stageGate(for: plan)
        var withheld = 0
        if settings.strategy == .full {
            let ids = plan.undeletedExampleIDs
            let adapterLayers = Array(max(0, layerCount - plan.sliceCount * settings.layersPerBlock)..<layerCount)
            let schedule = StageSchedule.full(dataHash: SliceHash.of(ids: ids), adapterLayers: adapterLayers)
            withheld += try guarded.trainAndPublish(schedule, runner: runner, members: { _ in ids }, gate: gate,
                                                    events: reporter.handle).outcome.withheld.count
        } else {
            let selected = shards.isEmpty ? Array(0..<plan.shardCount) : shards
            for shard in selected {   // `run` checked that every --shard is in the plan
                let schedule = try StageSchedule(
                    shard: shard, sequences: plan.sequences(of: shard),
                    sliceHashes: (0..<plan.sliceCount).map { plan.sliceHash(shard: shard, slice: $0) },
                    layerCount: layerCount, layersPerBlock: settings.layersPerBlock, strategy: settings.strategy)
                withheld += try guarded.trainAndPublish(schedule, runner: runner,
                                                        members: { plan.currentMembers(shard: shard, slice: $0) },
                                                        gate: gate, events: reporter.handle).outcome.withheld.count
            }
        }
        reporter.finish()
        if withheld > 0 {
            StandardError.write(Data(("\(withheld) stage(s) were not trained: their slices hold deleted "
                + "examples, so each shard serves its longest clean prefix. Run `lethe retrain --run "
                + "\(layout.directory.path)` to rebuild those slices without them.\n").utf8))
        }
    }
}
