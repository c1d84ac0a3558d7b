import ArgumentParser
import CommandSupport
import Foundation
import Kernels

/// `lethe bench peak`: the float32 multiply-add rate of this CPU, the ceiling of every other
/// benchmark. A speed target against another implementation is reachable only if that
/// implementation leaves the room: `ratio ≤ its time ÷ (our FLOPs ÷ this peak)`.
public struct BenchPeakCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "peak",
        abstract: "Float32 FMA peak of this CPU (GFLOP/s) on 1 and N threads: the ceiling of every speed-up.",
        discussion: """
            Each thread runs twelve independent 8-lane fused multiply-add chains with no memory \
            traffic; the best of --repetitions runs of about --seconds each is printed, with \
            OpenBLAS sgemm on a 1536³ product beside it. On AMD Zen 4 (512-bit FMA as two \
            256-bit halves) and AVX2-only cores the loop is the peak; where sgemm beats it, the \
            CPU has full-width AVX-512 units and the ceiling is twice the loop. The ceiling is \
            what `lethe bench kernels`, `bench decoder` and the Tools/ comparisons divide by.
            """)

    @Option(help: "Highest thread count to measure (every count from 1 up to it), \(CommonBounds.threads.text).")
    var threads: Int = CommonBounds.defaultThreads

    @Option(help: "Seconds per run, \(Self.secondBounds.text).")
    var seconds: Double = 0.25

    @Option(help: "Runs per thread count (the best is kept), \(BenchBounds.repetitions.text).")
    var repetitions: Int = 3

    static let secondBounds = OptionBounds(0.001...10.0)

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    public func validate() throws {
        try CommonBounds.threads.check(threads, option: "--threads")
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
        let measurements = (1...threads).map {
            PeakThroughput.measure(threads: $0, seconds: seconds, repetitions: repetitions)
        }
        var load = [Double](repeating: 0, count: 3)
        if getloadavg(&load, 3) != 3 { load = [] }
        let report = Report(coreName: BLASRuntime.coreName, logicalCPUs: ProcessInfo.processInfo.activeProcessorCount,
                            loadAverage: load, measurements: measurements)
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("Float32 FMA peak (8-lane FMA chains in registers), OpenBLAS core \(report.coreName), "
              + "\(report.logicalCPUs) logical CPUs"
              + (load.count == 3 ? String(format: ", load %.2f %.2f %.2f", load[0], load[1], load[2]) : ""))
        for m in measurements {
            print(String(format: "  %d thread%@: FMA loop %7.1f GFLOP/s (slowest thread × %d: %.1f), sgemm %6.1f = %.0f%%, ceiling %7.1f%@",
                         m.threads, m.threads == 1 ? " " : "s", m.gflops, m.threads, m.gflopsSlowestThread,
                         m.sgemmGflops, 100 * m.sgemmGflops / m.ceilingGflops, m.ceilingGflops,
                         m.fullWidthAVX512 ? " (sgemm beats the 8-lane loop: full-width AVX-512, ceiling = 2 × loop)" : ""))
        }
    }
}
