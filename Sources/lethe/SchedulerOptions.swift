import ArgumentParser
import CommandSupport

/// Where `lethe train` runs its shards: here (one process, or `--jobs` child processes), or as
/// the tasks of one Slurm job array.
enum SchedulerKind: String, ExpressibleByArgument, CaseIterable {
    case local, slurm
}

/// The options of `--scheduler slurm`, and the hidden `--task` mode array tasks run in.
struct SchedulerOptions: ParsableArguments {
    @Option(help: "Where shards train: local (this machine; see --jobs) or slurm (one job array task per shard).")
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

    /// Set in the batch script: train this shard's stages only — no ledger, no served.json —
    /// and write the task's result record; the submitting side publishes.
    @Flag(help: .hidden) var task = false

    static let parallelBounds = OptionBounds(1...4096)

    func validate() throws {
        try CommonBounds.threads.check(cpusPerTask, option: "--cpus-per-task")
        try Self.parallelBounds.check(maxParallel, option: "--max-parallel")
        if scheduler == .local {
            let given = [("--partition", partition != nil), ("--time", time != nil), ("--cpus-per-task", cpusPerTask != nil),
                         ("--mem", mem != nil), ("--gres", gres != nil), ("--max-parallel", maxParallel != nil),
                         ("--sbatch-arg", !sbatchArg.isEmpty), ("--wait", wait)]
            if let option = given.first(where: \.1)?.0 {
                throw ValidationError("\(option) is an option of --scheduler slurm.")
            }
        }
        for value in [partition, time, mem, gres].compactMap({ $0 }) + sbatchArg
        where value.contains(where: { $0.isNewline }) {
            throw ValidationError("a Slurm option holds a line break: \(value.debugDescription).")
        }
    }
}
