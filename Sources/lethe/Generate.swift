import ArgumentParser
import Foundation
import Models

/// `lethe generate`: greedy continuation of a prompt with the decoder and its KV cache.
struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Continue a prompt greedily with a GGUF decoder (SmolLM2 by default).",
        discussion: "Example: lethe generate \"The capital of France is\" --max-tokens 8")

    @OptionGroup var options: DecoderOptions

    @Argument(help: "The prompt (no BOS token is added, as for SmolLM2).")
    var prompt: String

    @Option(help: "Tokens to generate.")
    var maxTokens = 16

    @Flag(help: "Print one JSON object (prompt ids, generated ids, text) instead of text.")
    var json = false

    func validate() throws {
        guard maxTokens >= 1 else { throw ValidationError("--max-tokens must be at least 1, got \(maxTokens).") }
    }

    func run() throws {
        let (model, tokenizer) = try options.load()
        let ids = tokenizer.encode(prompt)
        guard !ids.isEmpty else { throw ValidationError("the prompt encodes to no tokens; pass some text.") }
        let generator = LlamaGenerator(model: model, threads: options.threads)
        let out = try generator.greedy(prompt: ids, maxTokens: maxTokens, stop: tokenizer.eosID)
        let text = try tokenizer.decode(out)
        if json {
            let object: [String: Any] = ["prompt": prompt, "prompt_ids": ids, "generated_ids": out, "text": text]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print(prompt + text)
        }
    }
}
