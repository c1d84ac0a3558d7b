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
            adapter written by `lethe unlearn` (its --out directory, or the adapter.h5 in it), or with \
            the served ensemble of a decoder run (--run: the mean of its live shards' next-token \
            probabilities, on the run's own base model).

            Examples:
              lethe perplexity --data Datasets/bbc-news/test.jsonl --limit 20
              lethe perplexity --data Datasets/rotten-tomatoes/test.jsonl --adapter Checkpoints/unlearn/rt-gd --limit 50
              lethe perplexity --data Datasets/rotten-tomatoes/test.jsonl --run D --limit 50
            (D: a decoder run, made as the README shows: `lethe plan` on texts without labels, then \
            `lethe train`.)

            \(ExitStatus.help())
            """)

    @OptionGroup var options: DecoderOptions

    @Option(help: "JSON Lines file.")
    var data: String

    @Option(help: "Record field holding the text.")
    var field = "text"

    @Option(help: "Tokens per chunk, 2…--max-positions.")
    var chunkTokens = 256

    @Option(help: "Read only the first N records, \(Self.limitBounds.text). Default: every record.")
    var limit: Int?

    @Option(help: "Adapter to apply: the directory `lethe unlearn --out` wrote, or the \(AdapterFile.fileName) in it.")
    var adapter: String?

    @Option(name: .customLong("run"), help: "A decoder run: score with its served ensemble (on the base model it was trained on, in its precision unless --precision is given; instead of --model).")
    var runDirectory: String?

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    /// Chunks scored per batch.
    static let batchSize = 8
    static let limitBounds = OptionBounds(1...100_000_000)

    func validate() throws {
        try options.checkModel(orRun: runDirectory)
        try options.checkChunkLength(chunkTokens, option: "--chunk-tokens")
        try Self.limitBounds.check(limit, option: "--limit")
        try InputFiles.check([("--data", data)])
        try DecoderOptions.checkAdapterPath(adapter)
        if runDirectory != nil && adapter != nil {
            throw ValidationError("--run and --adapter: give one (a run's shards carry their own adapters).")
        }
    }

    func run() throws {
        let quality: LanguageModelQuality, chunkCount: Int
        if let runDirectory {
            let (ensemble, tokenizer) = try RunAccess.decoderRun(runDirectory, precision: options.givenPrecision)
            let corpus = try TextCorpus(path: data, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens, limit: limit)
            try options.ensureScoringMemory(ensemble.model.configuration, chunks: corpus.chunks, batchSize: Self.batchSize,
                                            mixture: true)
            quality = LanguageModelQuality(try ensemble.scores(of: corpus.chunks, batchSize: Self.batchSize,
                                                               padID: tokenizer.eosID, threads: options.threads))
            chunkCount = corpus.chunks.count
        } else {
            let (model, tokenizer) = try options.load()
            let corpus = try TextCorpus(path: data, field: field, tokenizer: tokenizer, chunkTokens: chunkTokens, limit: limit)
            try options.ensureScoringMemory(model.configuration, chunks: corpus.chunks, batchSize: Self.batchSize)
            let loaded = try adapter.map { try options.loadAdapter($0, for: model) }
            quality = LanguageModelQuality(try model.scores(of: corpus.chunks, adapter: loaded, batchSize: Self.batchSize,
                                                            padID: tokenizer.eosID, threads: options.threads))
            chunkCount = corpus.chunks.count
        }
        try NonFiniteResult.check(quality, files: runDirectory.map { [$0] } ?? [options.model] + (adapter.map { [$0] } ?? []))
        if json {
            let object: [String: Any] = ["data": data, "chunks": chunkCount, "tokens": quality.tokenCount,
                                         "perplexity": quality.perplexity, "accuracy": quality.accuracy]
            print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self))
        } else {
            print(String(format: "perplexity %.3f  next-token accuracy %.2f%%  (%d predicted tokens in %d chunks)",
                         quality.perplexity, 100 * quality.accuracy, quality.tokenCount, chunkCount))
        }
    }
}
