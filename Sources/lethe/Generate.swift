import ArgumentParser
import CommandSupport
import Foundation
import Models

/// `lethe generate`: greedy continuation of a prompt with the decoder and its KV cache.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt greedily with a GGUF decoder (SmolLM2 by default).",
        discussion: """
            The KV cache holds --max-positions positions per layer; its size is checked against \
            the machine's memory before it is allocated. With --run, the served ensemble of a \
            decoder run continues the prompt: each token is the argmax of the mean of the live \
            shards' next-token probabilities (no KV cache; each token reruns the sequence).

            Examples:
              lethe generate "The capital of France is" --new-tokens 8
              lethe generate "The capital of France is" --new-tokens 8 --run D
            (D: a decoder run, made as the README shows: `lethe plan` on texts without labels, then \
            `lethe train`.)

            \(ExitStatus.help())
            """)

    @OptionGroup var options: DecoderOptions

    @Argument(help: "The prompt (no BOS token is added, as for SmolLM2).")
    var prompt: String

    @Option(help: "Tokens to generate, 1…--max-positions minus the prompt.")
    var newTokens = 16

    @Option(name: .customLong("run"), help: "A decoder run: continue with its served ensemble (on the base model it was trained on, in its precision unless --precision is given; instead of --model).")
    var runDirectory: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    func validate() throws {
        try options.checkModel(orRun: runDirectory)
        guard (1..<options.maxPositions).contains(newTokens) else {
            throw ValidationError("--new-tokens \(newTokens): give 1…\(options.maxPositions - 1) (prompt and generated "
                                  + "tokens together fit in --max-positions \(options.maxPositions)).")
        }
    }

    func run() throws {
        if let runDirectory {
            let (ensemble, tokenizer) = try RunAccess.decoderRun(runDirectory, precision: options.givenPrecision)
            let ids = tokenizer.encode(prompt)
            guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens; pass some text.") }
            let out = try ensemble.greedy(prompt: ids, maxTokens: newTokens, stop: tokenizer.eosID, threads: options.threads)
            try report(ids: ids, out: out, text: try tokenizer.decode(out))
            return
        }
        let (model, tokenizer) = try options.load()
        try DecoderOptions.ensureMemory(model.configuration.keyValueCacheBytes,
                                        for: "a KV cache of --max-positions \(options.maxPositions)",
                                        sizedBy: "--max-positions")
        let ids = tokenizer.encode(prompt)
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens; pass some text.") }
        guard ids.count + newTokens <= options.maxPositions else {
            throw ValidationError("the prompt has \(ids.count) tokens; with --new-tokens \(newTokens) that exceeds "
                                  + "--max-positions \(options.maxPositions). Shorten the prompt or raise --max-positions.")
        }
        let generator = LlamaGenerator(model: model, threads: options.threads)
        let out: [Int]
        do {
            out = try generator.greedy(prompt: ids, maxTokens: newTokens, stop: tokenizer.eosID)
        } catch let ModelsError.nonFiniteLogits(position, value) {
            throw NonFiniteResult(field: "the logits after position \(position)", value: "\(value)", files: [options.model])
        }
        try report(ids: ids, out: out, text: try tokenizer.decode(out))
    }

    func report(ids: [Int], out: [Int], text: String) throws {
        if json {
            let object: [String: Any] = ["prompt": prompt, "prompt_ids": ids, "generated_ids": out, "text": text]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
        } else {
            // Control characters of the prompt or the continuation are shown escaped, never sent
            // raw to a terminal; line breaks and tabs of the prose are kept.
            print(terminalSafe(prompt + text, keeping: ["\n", "\t"]))
        }
    }
}
