import ArgumentParser
import Foundation

/// `--run RUN`: the run directory every run command works on (`lethe plan` creates it).
public struct RunOptions: ParsableArguments {
    public init() {}

    @Option(name: .customLong("run"), help: "Run directory (made by `lethe plan`: plan.h5, stages/, served.json, ledger.sqlite).")
    public var runDirectory: String

    /// The run directory as a file URL.
    public var url: URL { URL(fileURLWithPath: runDirectory) }
}
