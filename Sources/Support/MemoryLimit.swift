import Foundation

/// How much memory this process may take before an allocation fails or the kernel kills it:
/// the machine's physical memory, or less under an address-space limit (`ulimit -v`, where
/// the pages already mapped count too) or a cgroup's `memory.max` (a Slurm task's `--mem`, a
/// container's limit, set on the process's cgroup or one above it).
public struct MemoryLimit: Sendable {
    /// Which limit is the tightest: the machine's memory, the address space (`ulimit -v`, which
    /// counts every mapping, used or not), or a cgroup's `memory.max`.
    public enum Kind: Sendable { case physical, addressSpace, cgroup }
    public var kind: Kind = .physical
    /// Bytes still available to a new allocation under the tightest limit.
    public let availableBytes: UInt64
    /// The tightest limit, for a message: "this machine has 25.3 GB", "its address-space limit
    /// (ulimit -v) leaves 1.2 GB".
    public let text: String

    /// "1.2 GB", as the messages about memory say it.
    public static func gigabytes<N: BinaryInteger>(_ bytes: N) -> String { String(format: "%.1f GB", Double(bytes) / 1e9) }

    public static func current() -> MemoryLimit {
        let physical = ProcessInfo.processInfo.physicalMemory
        var best = MemoryLimit(availableBytes: physical, text: "this machine has \(gigabytes(physical))")
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
            let mapped = statusBytes("VmSize") ?? 0
            let left = limit.rlim_cur > mapped ? UInt64(limit.rlim_cur) - mapped : 0
            if left < best.availableBytes {
                best = MemoryLimit(kind: .addressSpace, availableBytes: left,
                                   text: "its address-space limit (ulimit -v) leaves \(gigabytes(left))")
            }
        }
        if let cgroup = cgroupLimit(), cgroup < best.availableBytes {
            best = MemoryLimit(kind: .cgroup, availableBytes: cgroup, text: "its cgroup's memory.max (a job's or container's memory "
                               + "limit) is \(gigabytes(cgroup))")
        }
        return best
    }

    /// A line of /proc/self/status in bytes (its values are in kB).
    static func statusBytes(_ field: String) -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix(field + ":") {
            let kilobytes = line.dropFirst(field.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first.flatMap { UInt64($0) }
            return kilobytes.map { $0 * 1024 }
        }
        return nil
    }

    /// The smallest `memory.max` of this process's cgroup (v2) and the ones above it.
    static func cgroupLimit() -> UInt64? {
        guard let membership = try? String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8),
              let line = membership.split(separator: "\n").first(where: { $0.hasPrefix("0::") }) else { return nil }
        var path = String(line.dropFirst(3))
        var smallest: UInt64?
        while true {
            let file = "/sys/fs/cgroup" + (path == "/" ? "" : path) + "/memory.max"
            if let text = try? String(contentsOfFile: file, encoding: .utf8),
               let value = UInt64(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                smallest = min(smallest ?? value, value)
            }
            guard path != "/", !path.isEmpty else { break }
            path = (path as NSString).deletingLastPathComponent
        }
        return smallest
    }
}

/// Work refused up front because the memory it needs exceeds what the process may take: without
/// the check, an allocation deep in Swift's runtime traps, oneDNN fails a primitive, or
/// OpenBLAS retries a failed mapping for ever.
public struct MemoryShortfall: Error, CustomStringConvertible {
    public let work: String
    /// Bytes still to be taken.
    public let bytes: UInt64
    public let limit: MemoryLimit
    public var description: String {
        "\(work) needs about \(MemoryLimit.gigabytes(bytes)) more memory, and \(limit.text); "
            + "raise the limit (ulimit -v, the job's --mem) or run where more memory is available."
    }
}

extension MemoryLimit {
    /// What the process takes besides a model's arrays — the runtime, the threads' stacks and
    /// allocator arenas, the BLAS buffers and oneDNN's kernels — measured here at about 0.4 GB
    /// (under `ulimit -v`, `lethe predict` ran at 0.6 GB and failed at 0.5; `lethe generate` on
    /// SmolLM2-135M ran at 1.7 GB, failed at 1.5 and hung in OpenBLAS at 1.6).
    public static let runtimeBytes: UInt64 = 400_000_000

    /// Refuses loading a model whose arrays take `arrayBytes` when the tightest limit cannot
    /// hold them: under `ulimit -v`, the process's mappings grow to about `runtimeBytes` plus the
    /// arrays (counted from what is mapped already); under a memory limit, the arrays must fit
    /// beside what the process holds resident.
    public static func requireForModel(_ path: String, arrayBytes: UInt64) throws {
        let limit = current()
        let need: UInt64, room: UInt64
        switch limit.kind {
        case .addressSpace:
            let mapped = statusBytes("VmSize") ?? 0
            need = max(runtimeBytes + arrayBytes, mapped + arrayBytes) - mapped
            room = limit.availableBytes
        case .physical, .cgroup:
            let resident = statusBytes("VmRSS") ?? 0
            need = arrayBytes
            room = limit.availableBytes > resident ? limit.availableBytes - resident : 0
        }
        guard need > room else { return }
        throw MemoryShortfall(work: "loading \(path)", bytes: need, limit: limit)
    }
}

