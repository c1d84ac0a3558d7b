import ArgumentParser
import CommandSupport
import Approximate
import Foundation
import Models

/// `lethe perplexity`: perplexity and next-token accuracy of a decoder on a JSON Lines file.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity and next-token accuracy of a GGUF decoder on JSON Lines text.",
        discussion: """
            Each record's text field is tokenized (no BOS) and cut into chunks of --chunk-tokens; \
            perplexity is exp of the mean NLL over every predicted token. Optionally with an \
            adapter written by `lethe unlearn`.
            Example: lethe perplexity --data Datasets/bbc-news/test.jsonl --limit 20
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "JSON Lines file.")
    var data: String

    @Option(help: "Record field holding the text.")
    var field = "text"

    @Option(help: "Tokens per chunk, 2…--max-positions.")
    var chunkTokens = 256

    @Option(help: "Read only the first N records.")
    var limit: Int?

    @Option(help: "Adapter file (HDF5) from `lethe unlearn` to apply.")
    var adapter: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    func validate() throws {
        guard (2...options.maxPositions).contains(chunkTokens) else {
            throw ValidationError("--chunk-tokens \(chunkTokens): give 2…\(options.maxPositions) (--max-positions).")
        }
        if let limit, limit < 1 { throw ValidationError("--limit \(limit): give at least 1 record.") }
    }

    func run() throws {
        let (model, tokenizer) = try options.load()
        let corpus = try TextCorpus(path: data, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens, limit: limit)
        let loaded = try adapter.map { try AdapterFile.read(try AdapterFile.locate($0), weights: model.weights).adapter }
        let quality = LanguageModelQuality(try model.scores(of: corpus.chunks, adapter: loaded, batchSize: 8,
                                                            padID: tokenizer.eosID, threads: options.threads))
        if json {
            let object: [String: Any] = ["data": data, "chunks": corpus.chunks.count, "tokens": quality.tokenCount,
                                         "perplexity": quality.perplexity, "accuracy": quality.accuracy]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
        } else {
            print(String(format: "perplexity %.3f  next-token accuracy %.2f%%  (%d predicted tokens in %d chunks)",
                         quality.perplexity, 100 * quality.accuracy, quality.tokenCount, corpus.chunks.count))
        }
    }
}
