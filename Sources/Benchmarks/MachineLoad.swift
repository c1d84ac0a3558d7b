import CommandSupport
import Foundation

/// The load average, and whether it makes a benchmark's numbers doubtful: on a shared machine
/// other processes take cores from the measured ones, so every benchmark prints this beside
/// its rates.
public struct MachineLoad: Codable, Sendable {
    /// 1-, 5- and 15-minute load averages (empty where the system gives none).
    public var averages: [Double]
    public var logicalCPUs: Int

    public init() {
        var load = [Double](repeating: 0, count: 3)
        averages = getloadavg(&load, 3) == 3 ? load : []
        logicalCPUs = ProcessInfo.processInfo.activeProcessorCount
    }

    /// A warning when the 1-minute load exceeds a quarter of the CPUs before the measurement
    /// (this process is not yet part of it), else nil.
    public var warning: String? {
        guard let now = averages.first, now > 0.25 * Double(logicalCPUs) else { return nil }
        return String(format: "warning: load average %.2f on %d CPUs before measuring; other processes share the "
                      + "cores and the numbers below may be low", now, logicalCPUs)
    }

    /// Prints `warning`, if any: on stdout beside a text report, on stderr beside JSON (whose
    /// `load_average` field carries the numbers).
    public func printWarning(json: Bool) {
        guard let warning else { return }
        if json { StandardError.write(Data((warning + "\n").utf8)) } else { print(warning) }
    }

    /// What to add after a share of the peak: nothing up to 100%; above it, that the peak loop
    /// itself ran while other work held cores (no real work beats a register-resident loop).
    public static func caveat(share: Double) -> String {
        share > 1 ? " (above 100%: the peak was measured while other processes held cores; rerun on an idle machine)" : ""
    }

    /// "load 0.12 0.30 0.25" for report headers.
    public var text: String {
        averages.count == 3 ? String(format: "load %.2f %.2f %.2f", averages[0], averages[1], averages[2]) : "load n/a"
    }
}
