import ArgumentParser
import CommandSupport

/// Where `lethe train` runs its shards: here (one process, or `--jobs` child processes), as
/// the tasks of one Slurm job array, or — written out, not run — as a Kubernetes Indexed Job.
enum SchedulerKind: String, ExpressibleByArgument, CaseIterable {
    case local, slurm, k8s
}

/// Where `lethe retrain` runs its shards: here or as a Slurm job array (a retrain follows
/// deletions as they arrive, which a manifest written for later could not).
enum RetrainSchedulerKind: String, ExpressibleByArgument, CaseIterable {
    case local, slurm
    var kind: SchedulerKind { self == .local ? .local : .slurm }
}

/// The options of the cluster schedulers (Slurm's, and those a Kubernetes manifest also
/// takes), and the hidden `--task` mode array tasks run in. The command declares `--scheduler`
/// itself, with the schedulers it offers, and calls `check(scheduler:kubernetes:)`.
struct SchedulerOptions: ParsableArguments {
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
        for value in [partition, time, mem, gres].compactMap({ $0 }) + sbatchArg
        where value.contains(where: { $0.isNewline }) {
            throw ValidationError("a Slurm option holds a line break: \(value.debugDescription).")
        }
    }

    /// Refuses an option the chosen scheduler would ignore (rather than dropping it silently);
    /// `kubernetes` is nil for a command that offers no k8s scheduler.
    func check(scheduler: SchedulerKind, kubernetes: KubernetesOptions?) throws {
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
                throw ValidationError("\(option) is an option of --scheduler slurm" + (kubernetes == nil ? "." : " or k8s."))
            }
        }
        if scheduler == .k8s, let option = slurmOnly.first(where: \.1)?.0 {
            throw ValidationError("\(option) is an option of --scheduler slurm; a Kubernetes Job written with "
                                  + "--emit-manifest does not use it.")
        }
        guard let kubernetes else { return }
        if scheduler != .k8s, let option = [("--emit-manifest", kubernetes.emitManifest),
                                             ("--image", kubernetes.givenImage != nil),
                                             ("--volume-claim", kubernetes.givenVolumeClaim != nil)]
            .first(where: \.1)?.0 {
            throw ValidationError("\(option) is an option of --scheduler k8s" + (option == "--emit-manifest" ? "." : " (with --emit-manifest)."))
        }
        if scheduler == .k8s && !kubernetes.emitManifest {
            throw ValidationError("--scheduler k8s only writes a manifest (no cluster is driven from here): add --emit-manifest.")
        }
    }
}

/// The options of `lethe train --scheduler k8s --emit-manifest`.
struct KubernetesOptions: ParsableArguments {
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

    func validate() throws {
        // Both are written into the manifest's YAML: a line break would add keys of its own.
        if let image = givenImage, image.isEmpty || image.contains(where: { $0.isWhitespace || $0.isNewline }) {
            throw ValidationError("--image \(image.debugDescription): give an image reference, without spaces or line breaks.")
        }
        // A PersistentVolumeClaim's name is a DNS subdomain: lower-case letters, digits, '-' and
        // '.', starting and ending with a letter or digit, at most 253 characters.
        if let claim = givenVolumeClaim {
            let allowed = claim.utf8.allSatisfy { (97...122).contains($0) || (48...57).contains($0) || $0 == 45 || $0 == 46 }
            let ends = claim.utf8.first.map { (97...122).contains($0) || (48...57).contains($0) } == true
                && claim.utf8.last.map { (97...122).contains($0) || (48...57).contains($0) } == true
            guard allowed, ends, claim.utf8.count <= 253 else {
                throw ValidationError("--volume-claim \(claim.debugDescription): a claim's name is lower-case letters, digits, "
                                      + "'-' and '.', starting and ending with a letter or digit (at most 253).")
            }
        }
    }
}
