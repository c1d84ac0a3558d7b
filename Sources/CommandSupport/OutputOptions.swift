import ArgumentParser

/// `--json` for every command that prints a result: one JSON object (keys sorted) instead of
/// text, so scripts read one shape. Commands that stream progress (train, finetune, retrain,
/// unlearn) print JSON Lines instead and declare their own flag saying so.
public struct OutputOptions: ParsableArguments {
    @Flag(help: "Print one JSON object instead of text.")
    public var json = false

    public init() {}
}
