/// Help text every `lethe bench` subcommand shares.
public enum BenchHelp {
    /// The exit codes of a benchmark: the codes every lethe command can return (a test checks
    /// that they read as `lethe bench --help` lists them).
    public static let exitCodes = """
        Exit codes:
          0   done
          1   failed or refused: the message names the file or option and says what to do
          64  usage: a missing, malformed or out-of-range option; nothing was done
        """
}
