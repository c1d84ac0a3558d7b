import CommandSupport

/// Bounds that several `lethe bench` subcommands share; each subcommand's help prints them.
enum BenchBounds {
    /// Timed repetitions of one measurement.
    static let repetitions = OptionBounds(1...1_000)
    /// Items a benchmark generates or times (examples, lookups, requests, forgets).
    static let items = OptionBounds(1...100_000_000)
}
