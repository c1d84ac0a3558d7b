import ArgumentParser
import CommandSupport
import Foundation
import Kernels
import Store
import Training

/// The `lethe` command: exact machine unlearning (S3T) and approximate unlearning.
@main
struct Lethe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lethe",
        abstract: "Train models that can forget any training example on request.",
        discussion: """
            Lethe partitions training data into shards and slices, trains LoRA adapter \
            blocks per slice sequence on a frozen pre-trained transformer (S3T), and \
            forgets an example by deactivating only the blocks that saw it.

            A first run:
              lethe plan --data Datasets/bbc-news/train.jsonl --shards 4 --slices 3 --budget 3 --run Checkpoints/runs/demo
              lethe train --run Checkpoints/runs/demo
              lethe evaluate --run Checkpoints/runs/demo --data Datasets/bbc-news/test.jsonl
              lethe forget --run Checkpoints/runs/demo --id business/001

            Every option with a numeric value states its range in `--help` and is checked before \
            any work; each command's help lists the exit codes it returns.

            \(ExitStatus.list(ExitStatus.allCases))
            """,
        version: letheVersion,
        subcommands: [
            PlanCommand.self,
            SimulateCommand.self,
            TrainCommand.self,
            FinetuneCommand.self,
            StatusCommand.self,
            EvaluateCommand.self,
            PredictCommand.self,
            ServeCommand.self,
            ForgetCommand.self,
            RetrainCommand.self,
            AuditCommand.self,
            VerifyCommand.self,
            EmbedCommand.self,
            GenerateCommand.self,
            PerplexityCommand.self,
            UnlearnCommand.self,
            EvalForgetCommand.self,
            BenchCommand.self,
        ]
    )

    /// Commands that score texts with a model and train nothing.
    static let scoringCommands: [ParsableCommand.Type] = [PerplexityCommand.self, EvalForgetCommand.self]

    /// Levenshtein distance between two words (characters inserted, removed or replaced).
    static func editDistance(_ a: String, _ b: String) -> Int {
        let b = Array(b)
        var row = Array(0...b.count)   // distances from a's first i characters to b's prefixes
        for (i, x) in a.enumerated() {
            var diagonal = row[0]
            row[0] = i + 1
            for (j, y) in b.enumerated() {
                let above = row[j + 1]
                row[j + 1] = min(above + 1, row[j] + 1, diagonal + (x == y ? 0 : 1))
                diagonal = above
            }
        }
        return row[b.count]
    }

    /// The message for the first command-line argument whose bytes are not UTF-8, or nil.
    static func nonUTF8Argument() -> String? {
        for index in 1 ..< Int(CommandLine.argc) {
            guard let raw = CommandLine.unsafeArgv[index] else { continue }
            let bytes = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt8.self), count: strlen(raw))
            guard String(validating: bytes, as: UTF8.self) == nil else { continue }
            let previous = index > 1 ? CommandLine.arguments[index - 1] : ""
            let option = previous.hasPrefix("-") ? "the value of \(previous)" : "argument \(index)"
            return "\(option), \(CommandLine.arguments[index]), holds bytes that are not UTF-8 (shown as \u{FFFD}): "
                + "Lethe names files and reads texts in UTF-8 only, and could not name this one exactly. "
                + "Give it in UTF-8 (a path: rename the file or directory to a UTF-8 name)."
        }
        return nil
    }

    static func main() {
        // First: a variable that forces other BLAS or oneDNN kernels would change every product's bits.
        KernelEnvironment.useTheCPUsOwnKernels()
        // Before any thread starts (threads inherit the mask): a launcher that blocks SIGINT and
        // SIGTERM would otherwise leave every command deaf to them.
        ShardJobs.unblockTerminationSignals()
        // Training steps free and reallocate their activations: that memory stays in the heap
        // rather than being faulted in again every step (Kernels/HeapPolicy.swift). Commands that
        // only score texts map their large blocks instead: in a heap, the small results kept
        // between one batch's blocks and the next split the freed space, and the process grew
        // with its input (docs/BENCHMARKS.md).
        let arguments = Array(CommandLine.arguments.dropFirst())
        let named = commandType(named: arguments)
        if Self.scoringCommands.contains(where: { ObjectIdentifier($0) == ObjectIdentifier(named) }) {
            HeapPolicy.mapLargeBlocks()
        } else {
            HeapPolicy.retainFreedMemory()
        }
        ShardJobs.dieWithParentIfChild()
        StandardOutput.ignoreBrokenPipes()
        FileLock.onLongWait.withLock {
            $0 = { url in
                if let shard = RunLayout.trainingLockShard(url) {
                    StandardError.write(Data(("waiting for \(url.path): another lethe process is training shard \(shard) "
                        + "of this run; this one goes on once it is done, and skips the stages it committed.\n").utf8))
                    return
                }
                StandardError.write(Data(("waiting for \(url.path): another lethe command holds this lock (a forget, a "
                    + "training's commit, a publish); this one goes on once it is released.\n").utf8))
            }
        }
        // `lethe help NAME …` for a name that is no command: ArgumentParser would print the
        // top-level help and exit 0, as if the command existed.
        if arguments.first == "help" {
            let walked = followSubcommands(arguments.dropFirst().filter { !$0.hasPrefix("-") })
            if let unknown = walked.stoppedAt { refuseUsage("help: " + notACommand(unknown, of: walked)) }
        } else {
            // A mistyped command name: ArgumentParser would report the options after it as
            // unknown ("Unknown option '--run'"), or run the default subcommand and miss them.
            let walked = followSubcommands(arguments.prefix { !$0.hasPrefix("-") })
            if let word = walked.stoppedAt, !walked.command.configuration.subcommands.isEmpty {
                refuseUsage(notACommand(word, of: walked))
            }
        }
        // An argument that is not UTF-8 (a path's raw bytes) reaches the commands with U+FFFD in
        // place of those bytes: it would name another file, or make a directory of another name.
        if let problem = nonUTF8Argument() { refuseUsage(problem) }
        // Before parsing: a command's own checks (a missing file, say) would otherwise hide it.
        if let repeated = repeatedOption(for: named, arguments: arguments) {
            let name = (commandPath(to: named) ?? ["lethe"]).joined(separator: " ")
            refuseUsage(repeated, then: "  See '\(name) --help' for more information.\n")
        }
        var command: ParsableCommand
        do { command = try parseAsRoot(nil) } catch {
            if let hint = negativeValueHint() ?? elsewhereHint(for: message(for: error)) {
                StandardError.write(Data((hint + "\n").utf8))
            }
            reportFailureAsJSON(error, message: message(for: error))
            exit(withError: error)
        }
        // Whether the command works on a run (its state is then worth a look after lost output).
        let onRun = CommandLine.arguments.contains { $0 == "--run" || $0.hasPrefix("--run=") }
        do {
            try command.run()
            if let failure = StandardOutput.failure() {
                // The work is done, but its output did not arrive: not a success.
                StandardError.write(Data(("Error: the output could not be written to standard output: "
                    + "\(failure). The command itself ran to its end"
                    + (onRun ? "; `lethe status` shows the run's state.\n" : ".\n")).utf8))
                Foundation.exit(ExitStatus.failed.rawValue)
            }
        } catch let error as ExitCode where error.rawValue != 0 {
            // A command that ends with its own status (forget's 5: unknown ids): its report went to
            // standard output, and losing it is said too.
            if let failure = StandardOutput.failure() {
                StandardError.write(Data(("Error: the output could not be written to standard output: \(failure); "
                    + "the command ended with status \(error.rawValue).\n").utf8))
            }
            exit(withError: error)
        } catch {
            let translated = UserFacingError.translate(error)
            if let usage = translated as? ValidationError {
                // A value that parsed but does not fit the run, the model or the machine: a usage
                // error (64) pointing at the command's help, not at the root command's usage line.
                let name = (commandPath(to: type(of: command)) ?? ["lethe"]).joined(separator: " ")
                StandardError.write(Data("Error: \(usage.message)\n  See '\(name) --help' for more information.\n".utf8))
                reportFailureAsJSON(usage, message: usage.message, code: ExitStatus.usage.rawValue)
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            reportFailureAsJSON(translated, message: message(for: translated))
            exit(withError: translated)
        }
    }

    /// ArgumentParser reads a negative number after an option as another option, so `--lr -1`
    /// fails as "Missing value for '--lr'"; this names the cause and the spelling that works.
    static func negativeValueHint() -> String? {
        let arguments = Array(CommandLine.arguments.dropFirst().prefix { $0 != "--" })
        for (option, value) in zip(arguments, arguments.dropFirst())
        where option.hasPrefix("--") && !option.contains("=") && value.hasPrefix("-") && Double(value) != nil {
            return "Note: \(value) after \(option) reads as an option, not a value; write \(option)=\(value)."
        }
        return nil
    }

    /// ArgumentParser keeps the last value of an option given twice (`--seed 1 … --seed 2`), so a
    /// script that appends an option silently overrides an earlier one. Such a command is refused,
    /// naming the option and both values; options that take several values may repeat.
    static func repeatedOption(for command: ParsableCommand.Type,
                               arguments: [String] = Array(CommandLine.arguments.dropFirst())) -> String? {
        // Every spelling of each single-valued option, mapped to its first long spelling.
        var spellings: [String: String] = [:]
        for names in optionSpellings(of: command, singleValued: true) {
            guard let canonical = names.first(where: { $0.hasPrefix("--") }) ?? names.first else { continue }
            for name in names { spellings[name] = canonical }
        }
        var seen: [String: String] = [:]
        var index = 0
        let words = Array(arguments.prefix { $0 != "--" })
        while index < words.count {
            let word = words[index]
            let parts = word.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let canonical = spellings[String(parts[0])] else { index += 1; continue }
            let value = parts.count == 2 ? String(parts[1]) : (index + 1 < words.count ? words[index + 1] : "")
            if let earlier = seen[canonical] {
                return "\(canonical) is given twice (\(earlier) and \(value)); it takes one value: give it once"
            }
            seen[canonical] = value
            index += parts.count == 2 ? 1 : 2
        }
        return nil
    }

    /// The spellings ("--run", "-h") of each option and flag of `command` (only options that
    /// take one value when `singleValued`), from ArgumentParser's description of it.
    static func optionSpellings(of command: ParsableCommand.Type, singleValued: Bool = false) -> [[String]] {
        guard let dump = try? JSONSerialization.jsonObject(with: Data(command._dumpHelp().utf8)) as? [String: Any],
              let definitions = (dump["command"] as? [String: Any])?["arguments"] as? [[String: Any]] else { return [] }
        return definitions.filter { definition in
            !singleValued || (definition["kind"] as? String == "option" && definition["isRepeating"] as? Bool != true)
        }.map { definition in
            (definition["names"] as? [[String: Any]] ?? []).compactMap { name -> String? in
                guard let text = name["name"] as? String else { return nil }
                return (name["kind"] as? String == "short" ? "-" : "--") + text
            }
        }
    }

    /// For "Unknown option '--x'": the commands that do take --x ("--emit-manifest is an option
    /// of `lethe train`"), so a user who gave it to the wrong command learns where it belongs.
    static func elsewhereHint(for message: String) -> String? {
        guard let start = message.range(of: "Unknown option '"),
              let end = message[start.upperBound...].firstIndex(of: "'") else { return nil }
        let option = String(message[start.upperBound..<end])
        guard option.hasPrefix("--") else { return nil }
        var owners: [String] = []
        func visit(_ type: ParsableCommand.Type, path: [String]) {
            for subcommand in type.configuration.subcommands {
                let name = path + [subcommand.configuration.commandName ?? ""]
                if optionSpellings(of: subcommand).contains(where: { $0.contains(option) }) {
                    owners.append("`" + name.joined(separator: " ") + "`")
                }
                visit(subcommand, path: name)
            }
        }
        visit(Lethe.self, path: ["lethe"])
        guard !owners.isEmpty else { return nil }
        return "Note: \(option) is an option of " + owners.prefix(4).joined(separator: ", ")
            + (owners.count > 4 ? " and \(owners.count - 4) more" : "") + "."
    }

    /// With `--json`, a command that fails also prints `{"error": message, "exit_code": code}` as
    /// its one line of standard output (the message goes to stderr as always), so a script that
    /// reads the JSON finds an object, not nothing. A command that printed its result and then
    /// exits with a status of its own (audit's 2, verify's 3, forget's 5) prints nothing more.
    static func reportFailureAsJSON(_ error: Error, message: String, code: Int32? = nil) {
        guard !(error is ExitCode), !(error is CleanExit),
              CommandLine.arguments.dropFirst().prefix(while: { $0 != "--" }).contains("--json") else { return }
        let object: [String: Any] = ["error": message, "exit_code": code ?? exitCode(for: error).rawValue]
        guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return }
        StandardOutput.write(String(decoding: data, as: UTF8.self) + "\n")
    }

    /// The (sub)command `arguments` name: subcommand names are followed from the root until a
    /// word is not one (then a default subcommand, such as `plan`'s `create`, applies).
    static func commandType(named arguments: [String]) -> ParsableCommand.Type {
        let found = followSubcommands(arguments.prefix(while: { $0 != "--" })).command
        return found.configuration.defaultSubcommand ?? found
    }

    /// Follows subcommand names from the root: the command reached, the names of its path, and
    /// the first word that is no subcommand of it (nil when every word was one).
    static func followSubcommands(_ words: some Sequence<String>)
        -> (command: ParsableCommand.Type, path: [String], stoppedAt: String?) {
        var current: ParsableCommand.Type = Lethe.self
        var path = ["lethe"]
        for word in words {
            guard let next = current.configuration.subcommands.first(where: { $0.configuration.commandName == word }) else {
                return (current, path, word)
            }
            current = next
            path.append(word)
        }
        return (current, path, nil)
    }

    /// "`statsu` is not a command of `lethe` (did you mean `status`?); `lethe --help` lists them.":
    /// `word`, where `walked` stopped, with the subcommand names within two edits of it.
    static func notACommand(_ word: String, of walked: (command: ParsableCommand.Type, path: [String], stoppedAt: String?))
        -> String {
        let near = walked.command.configuration.subcommands.compactMap { $0.configuration.commandName }
            .filter { editDistance($0, word) <= 2 }.map { "`\($0)`" }
        let parent = walked.path.joined(separator: " ")
        return "`\(word)` is not a command of `\(parent)`"
            + (near.isEmpty ? "" : " (did you mean \(near.joined(separator: " or "))?)") + "; `\(parent) --help` lists them."
    }

    /// Ends the process with a usage error (exit 64): "Error: message" and `then` on stderr, and
    /// the message as JSON on stdout under --json.
    static func refuseUsage(_ message: String, then more: String = "") -> Never {
        StandardError.write(Data("Error: \(message)\n\(more)".utf8))
        reportFailureAsJSON(ValidationError(message), message: message, code: ExitStatus.usage.rawValue)
        Foundation.exit(ExitStatus.usage.rawValue)
    }

    /// The command names from `lethe` down to `target` ("lethe plan create"), or nil.
    static func commandPath(to target: ParsableCommand.Type, from root: ParsableCommand.Type = Lethe.self) -> [String]? {
        let name = root.configuration.commandName ?? "lethe"
        if ObjectIdentifier(root) == ObjectIdentifier(target) { return [name] }
        for subcommand in root.configuration.subcommands {
            if let path = commandPath(to: target, from: subcommand) { return [name] + path }
        }
        return nil
    }
}
