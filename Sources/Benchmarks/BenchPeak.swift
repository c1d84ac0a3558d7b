import ArgumentParser
import CommandSupport
import Foundation
import Support
import Kernels

/// `lethe bench peak`: the float32 and bfloat16 multiply-add rates of this CPU, the ceilings of
/// every other benchmark. A speed target against another implementation is reachable only if that
/// implementation leaves the room: `ratio ≤ its time ÷ (our FLOPs ÷ this peak)`.
public struct BenchPeakCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "peak",
        abstract: "Float32 FMA and bfloat16 dot-product peaks of this CPU (GFLOP/s) on 1…N threads: the ceilings of every speed-up.",
        discussion: """
            Each thread runs sixteen independent multiply-add chains in registers with no memory \
            traffic: the widest float32 FMA the CPU runs (AVX-512, else AVX2) and, where the CPU \
            has AVX512_BF16, the bfloat16 dot product vdpbf16ps. Each is the median of \
            --repetitions runs of about --seconds each (every run is printed with --json); \
            OpenBLAS sgemm on a 1536³ product is shown beside it for information. The float32 \
            median is the ceiling `lethe bench kernels`, `bench train`, `bench serve`, `bench \
            decoder` and the Tools/ comparisons divide by; bf16 work is divided by the bf16 one.

            Examples:
              lethe bench peak
              lethe bench peak --threads 2 --repetitions 7 --json

            \(BenchHelp.exitCodes)
            """)

    @Option(help: "Highest thread count to measure (every count from 1 up to it), \(CommonBounds.threads.text).")
    var threads: Int = CommonBounds.defaultThreads

    @Option(help: "Seconds per run, \(Self.secondBounds.text).")
    var seconds: Double = 0.25

    @Option(help: "Runs per thread count (the median is kept), \(BenchBounds.repetitions.text).")
    var repetitions: Int = 5

    static let secondBounds = OptionBounds(0.001...10.0)

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    public func validate() throws {
        try CommonBounds.threads.check(threads, option: "--threads")
        // Loops on more threads than CPUs measure the scheduler's time slices, not a peak.
        let cpus = ProcessInfo.processInfo.activeProcessorCount
        guard threads <= cpus else {
            throw ValidationError("--threads \(threads): this machine has \(cpus) logical CPU(s); a peak needs a CPU per "
                                  + "thread. Give --threads 1…\(cpus).")
        }
        try Self.secondBounds.check(seconds, option: "--seconds")
        try BenchBounds.repetitions.check(repetitions, option: "--repetitions")
    }

    struct Report: Codable {
        var coreName: String
        var logicalCPUs: Int
        var loadAverage: [Double]
        var measurements: [PeakThroughput.Measurement]
    }

    public func run() throws {
        let load = MachineLoad()
        let measurements = (1...threads).map {
            PeakThroughput.measure(threads: $0, seconds: seconds, repetitions: repetitions)
        }
        let report = Report(coreName: BLASRuntime.coreName, logicalCPUs: load.logicalCPUs,
                            loadAverage: load.averages, measurements: measurements)
        load.printWarning(json: json)
        if json {
            print(String(decoding: try JSONEncoder.report().encode(report), as: UTF8.self))
            return
        }
        print("Multiply-add peaks (register-resident loops, median of \(repetitions) runs), OpenBLAS core "
              + "\(report.coreName), \(report.logicalCPUs) logical CPUs, \(load.text)")
        for m in measurements {
            let spread = "runs " + m.gflopsRuns.map { String(format: "%.0f", $0) }.joined(separator: " ")
            let bf16 = m.bf16Gflops.map { String(format: "bf16 dot %7.1f GFLOP/s (%.2f× float32)", $0, $0 / m.gflops) }
                ?? "bf16: no AVX512_BF16"
            print(String(format: "  %d thread%@: float32 FMA (%d lanes) %7.1f GFLOP/s (%@; slowest thread × %d: %.1f), %@, "
                         + "sgemm %6.1f = %.0f%% of float32", m.threads, m.threads == 1 ? " " : "s", m.vectorWidth,
                         m.gflops, spread, m.threads, m.gflopsSlowestThread, bf16, m.sgemmGflops,
                         100 * m.sgemmGflops / m.gflops))
        }
    }
}
