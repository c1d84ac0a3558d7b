import Foundation
import RunFixtures
import Store
import Testing

/// The decoder commands on the real SmolLM2: an oracle file is checked before its numbers are
/// used, a rank the model cannot hold is a usage error, and generated text reaches the
/// terminal with its control characters escaped.
@Suite(.serialized) struct DecoderCommandTests {
    static let root = S3TEndToEndTests.root
    static let model = root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf").path

    static func scratch(_ name: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-\(name)-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// A forget set of two short texts, `f.jsonl` in `scratch`.
    static func twoTexts(in scratch: URL) throws -> URL {
        let url = scratch.appendingPathComponent("f.jsonl")
        try jsonLines(["The cat sat on the mat and looked at the door.", "Markets fell sharply on Monday morning."], to: url)
        return url
    }

    /// Writes `texts` as a JSON Lines file of {"text": …} records.
    static func jsonLines(_ texts: [String], to url: URL) throws {
        let lines = try texts.map { String(decoding: try JSONSerialization.data(withJSONObject: ["text": $0]), as: UTF8.self) }
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: url)
    }

    /// Under an address-space limit too small for the model, loading it is refused with what
    /// it needs and what the limit leaves, instead of a trap in an allocation, a failed oneDNN
    /// primitive or OpenBLAS retrying a mapping for ever.
    @Test func aModelTooLargeForTheMemoryLimitIsRefusedBeforeLoading() throws {
        let binary = try LetheProcess.binary().path
        let encoder = Self.root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2").path
        for (limit, command) in [(1_200_000, "generate --model '\(Self.model)' --new-tokens 2 Hello"),
                                 (520_000, "embed --model '\(encoder)' Hello")] {
            let (status, output) = try LetheProcess.runTool("/bin/sh", ["-c", "ulimit -v \(limit); exec '\(binary)' \(command)"])
            #expect(status == 1 && output.contains("needs about") && output.contains("ulimit -v"), "\(command): \(status) \(output)")
        }
    }

    @Test func anOracleFileIsCheckedFieldByFieldAndAGapNeedsASharedAttack() throws {
        let scratch = try Self.scratch("oracle")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let forget = scratch.appendingPathComponent("forget.jsonl"), unseen = scratch.appendingPathComponent("unseen.jsonl")
        try Self.jsonLines(["The cat sat on the mat and looked at the door.", "Markets fell sharply on Monday morning.",
                            "She planted tomatoes in the spring garden."], to: forget)
        try Self.jsonLines(["A storm crossed the northern coast overnight.", "The committee approved the new budget.",
                            "He played the violin at the wedding."], to: unseen)
        let evaluate = ["eval-forget", "--model", Self.model, "--forget", forget.path, "--unseen", unseen.path,
                        "--chunk-tokens", "16"]
        let printed = try LetheProcess.succeed(evaluate + ["--json"])
        let valid = try #require(try JSONSerialization.jsonObject(with: Data(printed.utf8)) as? [String: Any])
        // Its keys are snake_case, as every report's.
        func keys(_ value: Any) -> [String] {
            if let object = value as? [String: Any] { return object.keys + object.values.flatMap(keys) }
            return (value as? [Any])?.flatMap(keys) ?? []
        }
        #expect(keys(valid).contains("token_count"))
        #expect(keys(valid).allSatisfy { $0 == $0.lowercased() }, "\(keys(valid))")

        /// The oracle file with `edit` applied to its JSON object.
        func oracle(_ name: String, _ edit: (inout [String: Any]) -> Void) throws -> String {
            var object = valid
            edit(&object)
            let url = scratch.appendingPathComponent(name + ".json")
            try JSONSerialization.data(withJSONObject: object).write(to: url)
            return url.path
        }
        func evaluation(_ object: inout [String: Any], _ edit: (inout [String: Any]) -> Void) {
            var e = object["evaluation"] as! [String: Any]
            edit(&e)
            object["evaluation"] = e
        }
        func attack(_ object: inout [String: Any], _ index: Int, auc: Double) {
            evaluation(&object) { e in
                var attacks = e["attacks"] as! [[String: Any]]
                var separation = attacks[index]["separation"] as! [String: Any]
                separation["roc_auc"] = auc
                attacks[index]["separation"] = separation
                e["attacks"] = attacks
            }
        }
        func quality(_ object: inout [String: Any], _ set: String, _ key: String, _ value: Any) {
            evaluation(&object) { e in
                var q = e[set] as! [String: Any]
                q[key] = value
                e[set] = q
            }
        }
        let cases: [(String, String)] = [
            (try oracle("auc-negative") { attack(&$0, 0, auc: -5) }, "field \"evaluation.attacks[0].separation.roc_auc\" is -5.0, outside 0…1"),
            (try oracle("auc-huge") { attack(&$0, 1, auc: 1e308) }, "field \"evaluation.attacks[1].separation.roc_auc\" is 1e+308, outside 0…1"),
            (try oracle("perplexity-zero") { quality(&$0, "unseen", "perplexity", 0) },
             "field \"evaluation.unseen.perplexity\" is 0.0, not a finite positive number"),
            (try oracle("perplexity-negative") { quality(&$0, "forget", "perplexity", -3) },
             "field \"evaluation.forget.perplexity\" is -3.0, not a finite positive number"),
            (try oracle("tokens-negative") { quality(&$0, "forget", "token_count", -1) }, "field \"evaluation.forget.token_count\" is negative"),
            (try oracle("no-attacks") { evaluation(&$0) { $0["attacks"] = [] } }, "field \"evaluation.attacks\" is empty"),
            (try oracle("duplicate-attack") { evaluation(&$0) { e in
                let attacks = e["attacks"] as! [[String: Any]]
                e["attacks"] = attacks + [attacks[0]]
            } }, "field \"evaluation.attacks[4].attack\" repeats 'loss'"),
            (try oracle("no-membership") { evaluation(&$0) { $0["membership"] = [] } },
             "field \"evaluation.membership\" has 0 rows for 5 percents"),
            (try oracle("no-percents") { $0["percents"] = [] }, "field \"percents\" is empty"),
        ]
        for (path, problem) in cases {
            let (status, output) = try LetheProcess.run(evaluate + ["--oracle", path])
            #expect(status == 1, "\(path): exit \(status): \(output)")
            #expect(output.contains("--oracle \(path): \(problem)"), "\(path): \(output)")
            #expect(!output.contains("largest |gap|"), "\(path): \(output)")
        }
        // An oracle whose only attack is one this evaluation did not run: the results are
        // printed, but no gap is claimed, and the exit says nothing was compared.
        let referenceOnly = try oracle("reference-only") { evaluation(&$0) { e in
            var attacks = e["attacks"] as! [[String: Any]]
            attacks = [attacks[0]]
            attacks[0]["attack"] = "reference"
            e["attacks"] = attacks
        } }
        let (status, output) = try LetheProcess.run(evaluate + ["--oracle", referenceOnly])
        #expect(status == 1, "exit \(status): \(output)")
        #expect(output.contains("no attack is in both this evaluation and the oracle's file: no gap was compared")
                && output.contains("--oracle \(referenceOnly): shares no attack with this evaluation")
                && !output.contains("within ±") && !output.contains("largest |gap|"), "\(output)")
        // The unedited file is compared.
        let same = try oracle("same") { _ in }
        let compared = try LetheProcess.succeed(evaluate + ["--oracle", same])
        #expect(compared.contains("largest |gap| to the oracle 0.000 (within ±0.05)"), "\(compared)")
        // An oracle evaluated on other sets (here another chunk size) is refused, naming the set.
        let otherChunks = try LetheProcess.run(["eval-forget", "--model", Self.model, "--forget", forget.path,
                                                "--unseen", unseen.path, "--chunk-tokens", "8", "--oracle", same])
        #expect(otherChunks.status == 1 && otherChunks.output.contains("was evaluated on another forget set")
                && !otherChunks.output.contains("largest |gap|"), "\(otherChunks.output)")
        // One that records no sets (written before they were recorded) is compared, with a warning.
        let unrecorded = try oracle("no-sets") { $0["sets"] = nil }
        let warned = try LetheProcess.run(evaluate + ["--oracle", unrecorded])
        #expect(warned.status == 0 && warned.output.contains("does not record the sets"), "\(warned.output)")
    }

    @Test func aRankWiderThanTheModelsNarrowestProjectionIsAUsageError() throws {
        let scratch = try Self.scratch("rank")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let texts = Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        let out = scratch.appendingPathComponent("u").path
        let (status, output) = try LetheProcess.run(["unlearn", "--model", Self.model, "--method", "ga", "--forget", texts,
                                                     "--rank", "193", "--out", out])
        #expect(status == 64, "exit \(status): \(output)")
        #expect(output.contains("--rank 193: give 1…192 (the model's narrowest adapted projection is 192 wide)."), "\(output)")
        #expect(!FileManager.default.fileExists(atPath: out))
        // The benchmarks that train decoder adapters say the same, before any work.
        for bench in [["bench", "decoder", "--steps", "1"],
                      ["bench", "unlearn", "--out", scratch.appendingPathComponent("b").path]] {
            let refused = try LetheProcess.run(bench + ["--model", Self.model, "--rank", "193"])
            #expect(refused.status == 64, "\(bench): exit \(refused.status): \(refused.output)")
            #expect(refused.output.contains("--rank 193: give 1…192 (the model's narrowest adapted projection is 192 wide)."),
                    "\(refused.output)")
        }
    }

    /// Under an address-space limit (`ulimit -v`) smaller than the work's memory floor, the
    /// command refuses with the limit named, before allocating: the allocation would otherwise
    /// fail and stop the process with a trap.
    @Test func anAddressSpaceLimitIsTakenIntoAccount() throws {
        let scratch = try Self.scratch("ulimit")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let texts = Self.root.appendingPathComponent("Datasets/bbc-news/train.jsonl").path
        let script = #"ulimit -v 3000000 && exec "$0" "$@""#
        let (status, output) = try LetheProcess.runTool("/bin/sh", ["-c", script, try LetheProcess.binary().path, "unlearn",
            "--model", Self.model, "--method", "ga", "--forget", texts, "--threads", "1", "--steps", "1",
            "--batch-size", "128", "--out", scratch.appendingPathComponent("u").path])
        #expect(status == 64 && output.contains("its address-space limit (ulimit -v) leaves"), "exit \(status): \(output)")
    }

    /// A learning rate that wrecks the model is said, not only written: npo-gd at --lr 1 drives the
    /// retain set's next-token loss above that of guessing every token alike.
    @Test func aCompanionLossAboveUniformGuessingIsWarned() throws {
        let scratch = try Self.scratch("collapse")
        defer { try? FileManager.default.removeItem(at: scratch) }
        func head(_ name: String, _ file: String) throws -> String {
            let lines = try String(contentsOf: Self.root.appendingPathComponent("Datasets/rotten-tomatoes/\(file)"), encoding: .utf8)
                .split(separator: "\n").prefix(4)
            let url = scratch.appendingPathComponent(name)
            try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
            return url.path
        }
        let (status, output) = try LetheProcess.run(["unlearn", "--model", Self.model, "--method", "npo-gd",
            "--forget", try head("f.jsonl", "test.jsonl"), "--retain", try head("r.jsonl", "train.jsonl"), "--threads", "1",
            "--steps", "8", "--batch-size", "2", "--lr", "1", "--out", scratch.appendingPathComponent("u").path])
        #expect(status == 0, "exit \(status): \(output)")
        #expect(output.contains("warning: the companion term (the next-token loss on --retain)"), "\(output)")
    }

    /// SimNPO's term at its default β starts near 0 (σ(β·…) ≈ 1 from the first step): that is no
    /// collapse, and no warning says it is.
    @Test func aPreferenceTermSaturatedFromTheStartIsNotWarned() throws {
        let scratch = try Self.scratch("simnpo")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let lines = try String(contentsOf: Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(4)
        let forget = scratch.appendingPathComponent("f.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: forget, atomically: true, encoding: .utf8)
        let (status, output) = try LetheProcess.run(["unlearn", "--model", Self.model, "--method", "simnpo", "--forget",
            forget.path, "--steps", "1", "--threads", "1", "--out", scratch.appendingPathComponent("u").path])
        #expect(status == 0 && !output.contains("warning:"), "exit \(status): \(output)")
    }

    /// eval-forget with the same texts as members and non-members is refused: every attack would
    /// read 0.5, which looks like perfect forgetting.
    @Test func evalForgetRefusesMembersThatAreAllNonMembers() throws {
        let texts = Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        let (status, output) = try LetheProcess.run(["eval-forget", "--model", Self.model, "--forget", texts, "--unseen", texts,
                                                     "--limit", "4", "--threads", "1"])
        #expect(status == 64 && output.contains("every chunk of one is also in the other"), "exit \(status): \(output)")
    }

    /// `perplexity --run` scores a bf16 run in bf16 unless told otherwise: a run never mixes
    /// precisions, and its own is the default.
    @Test func perplexityOfARunUsesTheRunsPrecision() throws {
        let scratch = try Self.scratch("run-precision")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let lines = try String(contentsOf: Self.root.appendingPathComponent("Datasets/bbc-news/train.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(12).enumerated().map { index, line -> String in
                let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
                let text = "\(object["text"] as? String ?? ""). \(object["lead"] as? String ?? "")"
                let json = try JSONSerialization.data(withJSONObject: ["id": "t\(index)", "text": text])
                return String(decoding: json, as: UTF8.self)
            }
        let texts = scratch.appendingPathComponent("texts.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: texts, atomically: true, encoding: .utf8)
        let run = scratch.appendingPathComponent("run").path
        try LetheProcess.succeed(["plan", "--data", texts.path, "--shards", "1", "--slices", "2", "--budget", "1", "--run", run])
        try LetheProcess.succeed(["train", "--run", run, "--epochs", "1", "--max-tokens", "32", "--threads", "1",
                                  "--precision", "bf16", "--model", Self.model])
        func perplexity(_ extra: [String]) throws -> String {
            try LetheProcess.succeed(["perplexity", "--run", run, "--data", texts.path, "--chunk-tokens", "32",
                                      "--threads", "1", "--json"] + extra)
        }
        let own = try perplexity([]), bf16 = try perplexity(["--precision", "bf16"]), fp32 = try perplexity(["--precision", "fp32"])
        #expect(own == bf16 && own != fp32, "own \(own)\nbf16 \(bf16)\nfp32 \(fp32)")
    }

    /// An --adapter that names nothing is a usage error, like a missing --data.
    @Test func aMissingAdapterIsAUsageError() throws {
        let texts = Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        for command in [["perplexity", "--data", texts], ["eval-forget", "--forget", texts, "--unseen", texts]] {
            let (status, output) = try LetheProcess.run(command + ["--model", Self.model, "--adapter", "/nonexistent/adapter"])
            #expect(status == 64 && output.contains("--adapter /nonexistent/adapter: no such file or directory"),
                    "\(command[0]): exit \(status): \(output)")
        }
    }

    /// An --out below a file is refused naming the reason (Foundation's own error would read
    /// "NSCocoaErrorDomain error 512").
    @Test func anOutputBelowAFileSaysItIsNotADirectory() throws {
        let scratch = try Self.scratch("below-file")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let file = scratch.appendingPathComponent("a-file")
        try Data().write(to: file)
        let texts = Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        let (status, output) = try LetheProcess.run(["unlearn", "--model", Self.model, "--method", "ga", "--forget", texts,
                                                     "--steps", "1", "--out", file.appendingPathComponent("sub").path])
        #expect(status == 64 && output.contains("cannot create the directory (not a directory)"), "exit \(status): \(output)")
    }

    /// A companion set the method does not read is refused rather than ignored.
    @Test func aCompanionSetTheMethodDoesNotReadIsAUsageError() throws {
        let texts = Self.root.appendingPathComponent("Datasets/rotten-tomatoes/test.jsonl").path
        for (method, option) in [("ga", "--retain"), ("npo-gd", "--general"), ("ga-gd-gen", "--retain")] {
            var arguments = ["unlearn", "--model", Self.model, "--method", method, "--forget", texts, option, texts,
                             "--out", "/tmp/never-made"]
            if method == "ga-gd-gen" { arguments += ["--general", texts] }
            if method == "npo-gd" { arguments += ["--retain", texts] }
            let (status, output) = try LetheProcess.run(arguments)
            #expect(status == 64 && output.contains("--method \(method) does not read \(option)"), "\(output)")
        }
    }

    /// A second unlearn into an --out another one is writing is refused; a forget set that
    /// shares texts with the retain set is warned about; each step's line reaches a pipe as it ends.
    @Test func unlearnsDoNotShareAnOutAndOverlappingSetsAreNamed() throws {
        let scratch = try Self.scratch("unlearn-out")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let forget = try Self.twoTexts(in: scratch)
        let out = scratch.appendingPathComponent("u")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let arguments = ["unlearn", "--model", Self.model, "--method", "ga-gd-in", "--forget", forget.path,
                         "--retain", forget.path, "--steps", "1", "--batch-size", "1", "--chunk-tokens", "16",
                         "--threads", "1", "--out", out.path]
        let held: (Int32, String)? = try FileLock.withLockIfFree(out.appendingPathComponent(".unlearn.lock")) {
            try LetheProcess.run(arguments)
        }
        let busy = try #require(held)
        #expect(busy.0 == 1 && busy.1.contains("another `lethe unlearn` is writing its adapter there"), "\(busy)")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("adapter.h5").path))
        let (status, output) = try LetheProcess.run(arguments)
        #expect(status == 0 && output.contains("warning: 2 chunk(s) of --forget are also in the companion set")
                && output.contains("step 1/1"), "\(output)")
    }

    /// An unlearning that drove the model to predict every token alike (loss ln V, no gradient)
    /// says so; an empty --out is a usage error, not the working directory.
    @Test func aCollapsedModelIsNamedAndAnEmptyOutRefused() throws {
        let scratch = try Self.scratch("collapse")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let forget = try Self.twoTexts(in: scratch)
        let base = ["unlearn", "--model", Self.model, "--method", "ga", "--forget", forget.path, "--threads", "1",
                    "--chunk-tokens", "16", "--batch-size", "2"]
        let collapsed = try LetheProcess.run(base + ["--lr", "1", "--alpha", "10000", "--rank", "1", "--steps", "10",
                                                     "--out", scratch.appendingPathComponent("c").path])
        #expect(collapsed.status == 0 && collapsed.output.contains("≈ ln 49152 with no gradient left"), "\(collapsed.output)")
        let gentle = try LetheProcess.run(base + ["--steps", "1", "--out", scratch.appendingPathComponent("g").path])
        #expect(gentle.status == 0 && !gentle.output.contains("no gradient left"), "\(gentle.output)")
        let empty = try LetheProcess.run(base + ["--out", ""])
        #expect(empty.status == 64 && empty.output.contains("--out is empty"), "\(empty.output)")
    }

    @Test func generatedTextShowsControlCharactersEscaped() throws {
        let output = try LetheProcess.succeed(["generate", "Red\u{1B}[31m alert\u{7}", "--model", Self.model, "--new-tokens", "2"])
        #expect(output.hasPrefix("Red\\u{1B}[31m alert\\u{07}"), "\(output)")
        #expect(!output.contains("\u{1B}") && !output.contains("\u{7}"), "\(output)")
    }
}
