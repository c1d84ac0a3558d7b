import CommandSupport
import Foundation
import Training

/// `lethe train --scheduler k8s --emit-manifest`: the shards left to train as a Kubernetes
/// Indexed Job (`completionMode: Indexed`): completion index i trains the i-th listed shard
/// through `JOB_COMPLETION_INDEX`, with the same `--task` mode as a Slurm array task. The run's
/// parent directory comes from a PersistentVolumeClaim mounted at the same path, so stage
/// files land where the coordinating host reads them; the ledger stays on that host, which
/// publishes (`lethe train --run RUN`) once the Job has completed. A task exiting 75 fails its
/// pod, and the Job retries it (backoffLimitPerIndex).
struct IndexedJobManifest {
    let layout: RunLayout
    let shards: [Int]
    let threads: Int
    let options: SchedulerOptions
    let kubernetes: KubernetesOptions
    let data: String?
    /// Files every pod reads (the dataset, the base model): those outside the mounted directory
    /// are named in the manifest and by `outsideMount`.
    var inputs: [URL] = []

    /// The mounted directory: the run's parent.
    var mount: String { layout.directory.standardizedFileURL.deletingLastPathComponent().path }

    /// The inputs a pod would not find under the mount.
    var outsideMount: [String] {
        inputs.map { $0.standardizedFileURL.path }.filter { !$0.hasPrefix(mount + "/") }
    }

    var url: URL { layout.directory.appendingPathComponent("k8s/train-job.yaml") }

    /// A DNS-1123 name from the run directory's name.
    var jobName: String {
        let base = layout.directory.lastPathComponent.lowercased().map { $0.isLetter || $0.isNumber ? $0 : "-" }
        let trimmed = String(base).trimmingCharacters(in: CharacterSet(charactersIn: "-"))
        return "lethe-train-" + String((trimmed.isEmpty ? "run" : trimmed).prefix(40))
    }

    func yaml() -> String {
        let run = layout.directory.standardizedFileURL.path
        var command = "set -- $LETHE_SHARDS; shift \"$JOB_COMPLETION_INDEX\"; exec lethe train --run \(SlurmSubmission.quoted(run)) --shard \"$1\" "
            + "--threads \(threads) --task"
        // Absolute: a pod does not start in the directory this command ran in.
        if let data { command += " --data \(SlurmSubmission.quoted(URL(fileURLWithPath: data).standardizedFileURL.path))" }
        // A YAML double-quoted scalar: backslash, quote and control characters escaped, so that a
        // line break in a path stays one (YAML folds a raw one into a space).
        func quoted(_ text: String) -> String {
            var out = "\""
            for scalar in text.unicodeScalars {
                switch scalar {
                case "\\": out += "\\\\"
                case "\"": out += "\\\""
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                // YAML's own line breaks, which it would fold like a raw newline.
                case "\u{85}": out += "\\N"
                case "\u{2028}": out += "\\L"
                case "\u{2029}": out += "\\P"
                case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                    out += String(format: "\\x%02X", scalar.value)
                default: out.unicodeScalars.append(scalar)
                }
            }
            return out + "\""
        }
        var lines = [
            "# Written by `lethe train --scheduler k8s --emit-manifest`. Needs the run's parent directory",
            "# on a ReadWriteMany volume (claim \(kubernetes.volumeClaim)) mounted at the same path on every pod.",
        ] + outsideMount.map { "# NOT under the mount, so a pod will not find it: \($0)" } + [
            "apiVersion: batch/v1",
            "kind: Job",
            "metadata:",
            "  name: \(jobName)",
            "  labels:",
            "    app.kubernetes.io/name: lethe",
            "spec:",
            "  completionMode: Indexed",
            "  completions: \(shards.count)",
            "  parallelism: \(options.maxParallel.map { min($0, shards.count) } ?? shards.count)",
            "  backoffLimitPerIndex: 3",
            "  template:",
            "    spec:",
            "      restartPolicy: Never",
            "      containers:",
            "        - name: train",
            "          image: \(quoted(kubernetes.image))",
            "          command: [\"/bin/sh\", \"-c\"]",
            "          args: [\(quoted(command))]",
            "          env:",
            "            - name: LETHE_SHARDS",
            "              value: \(quoted(shards.map(String.init).joined(separator: " ")))",
            "          resources:",
            "            requests:",
            "              cpu: \"\(threads)\"",
        ]
        if let mem = options.mem { lines.append("              memory: \(quoted(mem))") }
        if let gres = options.gres, gres.hasPrefix("gpu") {
            let count = gres.split(separator: ":").last.flatMap { Int($0) } ?? 1
            lines += ["            limits:", "              nvidia.com/gpu: \(count)"]
        }
        lines += [
            "          volumeMounts:",
            "            - name: runs",
            "              mountPath: \(quoted(mount))",
            "      volumes:",
            "        - name: runs",
            "          persistentVolumeClaim:",
            "            claimName: \(quoted(kubernetes.volumeClaim))",
        ]
        return lines.joined(separator: "\n") + "\n"
    }

    func write() throws -> URL {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try yaml().write(to: url, atomically: true, encoding: .utf8)
        return url
    }
}
