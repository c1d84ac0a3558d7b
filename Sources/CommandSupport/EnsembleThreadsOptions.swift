import ArgumentParser

/// `--threads` for the commands that answer with a run's ensemble pass (predict, evaluate):
/// every kernel gives the same bits on any thread count, so it changes only the speed.
public struct EnsembleThreadsOptions: ParsableArguments {
    public init() {}

    @Option(help: "Threads of the ensemble pass, \(CommonBounds.threads.text); the answers do not depend on it.")
    public var threads = CommonBounds.defaultThreads

    public func validate() throws {
        try CommonBounds.threads.check(threads, option: "--threads")
    }
}
