import ArgumentParser
import CommandSupport

/// Where `lethe train` runs its shards: here (one process, or `--jobs` child processes), as
/// the tasks of one Slurm job array, or — written out, not run — as a Kubernetes Indexed Job.
enum SchedulerKind: String, ExpressibleByArgument, CaseIterable {
    case local, slurm, k8s
}

/// The options of `--scheduler slurm`, and the hidden `--task` mode array tasks run in.
struct SchedulerOptions: ParsableArguments {
    @Option(help: "Where shards train: local (this machine), slurm (one job array task per shard) or k8s (train only; with --emit-manifest: write a Kubernetes Indexed Job).")
    var scheduler: SchedulerKind = .local
    @Option(help: "Slurm partition (default: the cluster's default).")
    var partition: String?
    @Option(help: "Slurm time limit per task, as sbatch takes it (e.g. 2:00:00).")
    var time: String?
    @Option(help: "CPUs per Slurm task, \(CommonBounds.threads.text); the task trains with that many threads. Default: the run's thread count, which it must equal once train.json exists.")
    var cpusPerTask: Int?
    @Option(help: "Memory per Slurm task, as sbatch takes it (e.g. 4G).")
    var mem: String?
    @Option(help: "Generic resources per Slurm task, as sbatch takes them (e.g. gpu:1).")
    var gres: String?
    @Option(help: "Most array tasks running at once (sbatch --array=…%K), \(Self.parallelBounds.text).")
    var maxParallel: Int?
    @Option(help: "An extra sbatch argument, passed through as written (repeatable).")
    var sbatchArg: [String] = []
    @Flag(help: "With --scheduler slurm: wait for the array, with one progress line, then publish the composition.")
    var wait = false

    @Flag(help: "With --scheduler k8s: write RUN/k8s/train-job.yaml, an Indexed Job with one completion per shard left to train.")
    var emitManifest = false
    @Option(name: .customLong("image"), help: "With --scheduler k8s: the container image holding lethe (default: lethe:latest).")
    var givenImage: String?
    @Option(name: .customLong("volume-claim"),
            help: "With --scheduler k8s: the PersistentVolumeClaim holding the run's parent directory, mounted at the same path (default: lethe-runs).")
    var givenVolumeClaim: String?
    /// The image and claim the manifest names.
    var image: String { givenImage ?? "lethe:latest" }
    var volumeClaim: String { givenVolumeClaim ?? "lethe-runs" }

    /// Set in the batch script: train this shard's stages only — no ledger, no served.json —
    /// and write the task's result record; the submitting side publishes.
    @Flag(help: .hidden) var task = false

    static let parallelBounds = OptionBounds(1...4096)

    func validate() throws {
        try CommonBounds.threads.check(cpusPerTask, option: "--cpus-per-task")
        try Self.parallelBounds.check(maxParallel, option: "--max-parallel")
        // Options only Slurm reads, and those both cluster schedulers read: an option the
        // chosen scheduler would ignore is refused, not silently dropped.
        let slurmOnly = [("--partition", partition != nil), ("--time", time != nil), ("--sbatch-arg", !sbatchArg.isEmpty),
                         ("--wait", wait)]
        let cluster = [("--cpus-per-task", cpusPerTask != nil), ("--mem", mem != nil), ("--gres", gres != nil),
                       ("--max-parallel", maxParallel != nil)]
        if scheduler == .local {
            if let option = slurmOnly.first(where: \.1)?.0 {
                throw ValidationError("\(option) is an option of --scheduler slurm.")
            }
            if let option = cluster.first(where: \.1)?.0 {
                throw ValidationError("\(option) is an option of --scheduler slurm or k8s.")
            }
            if emitManifest { throw ValidationError("--emit-manifest is an option of --scheduler k8s.") }
        }
        if scheduler == .k8s, let option = slurmOnly.first(where: \.1)?.0 {
            throw ValidationError("\(option) is an option of --scheduler slurm; a Kubernetes Job written with "
                                  + "--emit-manifest does not use it.")
        }
        if scheduler != .k8s, let option = [("--image", givenImage != nil), ("--volume-claim", givenVolumeClaim != nil)]
            .first(where: \.1)?.0 {
            throw ValidationError("\(option) is an option of --scheduler k8s (with --emit-manifest).")
        }
        if scheduler == .k8s && !emitManifest {
            throw ValidationError("--scheduler k8s only writes a manifest (no cluster is driven from here): add --emit-manifest.")
        }
        if emitManifest && scheduler != .k8s { throw ValidationError("--emit-manifest goes with --scheduler k8s.") }
        for value in [partition, time, mem, gres].compactMap({ $0 }) + sbatchArg
        where value.contains(where: { $0.isNewline }) {
            throw ValidationError("a Slurm option holds a line break: \(value.debugDescription).")
        }
    }
}
