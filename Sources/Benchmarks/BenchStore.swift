import ArgumentParser
import CommandSupport
import Foundation
import Store

/// `lethe bench store`: HDF5 write and read throughput through the Store module.
public struct BenchStoreCommand: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Time HDF5 writes and reads of float32 tensors: plain, atomic (fsync), float16, gzip.",
        discussion: """
            Writes --megabytes of float32 values (as 1 MiB [512, 512] tensors) into a new HDF5 \
            file in a temporary directory (or --out) in several layouts, reads each back, \
            and prints MB/s. Each measurement is the median of --repetitions runs. Files are removed.

            Example:
              lethe bench store --megabytes 64 --repetitions 3

            \(BenchHelp.exitCodes)
            """
    )

    @Option(help: "Size of the float32 payload in MiB, \(Self.megabyteBounds.text).")
    var megabytes = 64

    @Option(help: "Runs per measurement (the median is printed), \(BenchBounds.repetitions.text).")
    var repetitions = 3

    static let megabyteBounds = OptionBounds(1...4_096)

    @Option(help: "Directory for the files (default: a new temporary directory).")
    var out: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    public func validate() throws {
        try Self.megabyteBounds.check(megabytes, option: "--megabytes")
        try BenchBounds.repetitions.check(repetitions, option: "--repetitions")
    }

    public func run() throws {
        let report = ResultReport(json: json)
        var rows: [[String: Any]] = []
        let base = out.map { URL(fileURLWithPath: $0) }
            ?? FileManager.default.temporaryDirectory.appendingPathComponent("lethe-bench-store-\(UUID().uuidString)")
        let cleanup = out == nil ? InterruptCleanup.shared.remove(base) : 0
        defer { InterruptCleanup.shared.release(cleanup) }
        try FileManager.default.createDirectory(at: base, withIntermediateDirectories: true)
        defer { if out == nil { try? FileManager.default.removeItem(at: base) } }

        // A weight-like tensor: deterministic, not trivially compressible.
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let tensor = (0..<(512 * 512)).map { _ -> Float in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state >> 11) % 2_000_001 - 1_000_000) * 1e-7
        }
        let tensorCount = megabytes
        let layouts: [(String, FloatStorage, DatasetOptions, Bool)] = [
            ("float32 contiguous", .float32, .contiguous, false),
            ("float32 contiguous, atomic commit (fsync)", .float32, .contiguous, true),
            ("float16 contiguous", .float16, .contiguous, false),
            ("float32 gzip level 4 (shuffle)", .float32, .gzip(level: 4), false),
        ]
        report.say("HDF5 store benchmark: \(tensorCount) tensors of [512, 512] float32 (\(megabytes) MiB), median of \(repetitions)")
        let clock = ContinuousClock()
        for (name, storage, options, atomic) in layouts {
            var writeSeconds: [Double] = []
            var readSeconds: [Double] = []
            var fileBytes = 0
            for run in 0..<repetitions {
                let url = base.appendingPathComponent("bench-\(run).h5")
                let fill: (HDF5File) throws -> Void = { file in
                    for index in 0..<tensorCount {
                        try file.write(tensor, shape: [512, 512], at: "block\(index / 16)/t\(index)",
                                       storage: storage, options: options)
                    }
                }
                writeSeconds.append(seconds(try clock.measure {
                    if atomic {
                        try HDF5File.writeAtomically(to: url, fill)
                    } else {
                        let file = try HDF5File.create(at: url, replacing: true)
                        try fill(file)
                        try file.close()
                    }
                }))
                fileBytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? 0
                readSeconds.append(seconds(try clock.measure {
                    let file = try HDF5File.open(url)
                    for index in 0..<tensorCount {
                        _ = try file.readFloats(at: "block\(index / 16)/t\(index)", expectedShape: [512, 512])
                    }
                }))
                try? FileManager.default.removeItem(at: url)
            }
            let payload = Double(megabytes)
            rows.append(["layout": name, "write_mb_per_s": payload / writeSeconds.median,
                         "read_mb_per_s": payload / readSeconds.median, "file_bytes": fileBytes])
            report.say("  " + name.padding(toLength: 42, withPad: " ", startingAt: 0) + String(
                format: " write %7.0f MB/s  read %7.0f MB/s  file %.1f MiB (%.0f%% of float32)",
                         payload / writeSeconds.median, payload / readSeconds.median,
                         Double(fileBytes) / 1_048_576, 100 * Double(fileBytes) / (payload * 1_048_576)))
        }
        report.say("  (MB/s of float32 payload, MiB; reads convert float16 to Float)")
        report.record("megabytes", megabytes)
        report.record("repetitions", repetitions)
        report.record("layouts", rows)
        try report.finish()
    }

    private func seconds(_ duration: Duration) -> Double {
        let parts = duration.components
        return Double(parts.seconds) + Double(parts.attoseconds) * 1e-18
    }
}
