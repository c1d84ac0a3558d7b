import ArgumentParser
import CommandSupport
import Foundation
import Models

/// `lethe embed`: sentence embeddings of the frozen encoder and their cosine matrix.
struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Print sentence embeddings (first dimensions) and their cosine-similarity matrix.",
        discussion: """
            Embeddings are the mean of the encoder's last hidden states over the real tokens, \
            L2-normalised (sentence-transformers' all-MiniLM-L6-v2 recipe).

            Example:
              lethe embed --model Checkpoints/base/all-MiniLM-L6-v2 "The weather is lovely today." "He drove to the stadium."

            \(ExitStatus.help())
            """)

    @Option(help: "Model folder with config.json, vocab.txt and model.safetensors.")
    var model: String = "Checkpoints/base/all-MiniLM-L6-v2"

    @Option(help: "How many leading dimensions of each embedding to print (text output), \(Self.dimensionBounds.text).")
    var dimensions: Int = 4

    @Option(help: "Threads for the encoder's own kernels, \(CommonBounds.threads.text).")
    var threads: Int = CommonBounds.defaultThreads

    @OptionGroup var output: OutputOptions
    var json: Bool { output.json }

    @Argument(help: "Sentences to embed.")
    var sentences: [String]

    /// `--dimensions`: MiniLM's width.
    static let dimensionBounds = OptionBounds(1...384, reason: "the embedding's width")

    func validate() throws {
        guard !sentences.isEmpty else { throw ValidationError("Give at least one sentence.") }
        try Self.dimensionBounds.check(dimensions, option: "--dimensions")
        try CommonBounds.threads.check(threads, option: "--threads")
    }

    func run() throws {
        _ = try TrainingOptions.weightsFile(model)
        let encoder = try MiniLMEncoder(directory: model)
        let embeddings = encoder.sentenceEmbeddings(sentences, threads: threads)
        let cosine = embeddings.map { a in embeddings.map { b in zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 } } }
        try NonFiniteResult.check(["embeddings": embeddings, "cosine": cosine], files: [model])
        if json {
            let object: [String: Any] = [
                "model": model, "sentences": sentences,
                "embeddings": embeddings.map { $0.map(Double.init) },
                "cosine": cosine.map { $0.map(Double.init) },
            ]
            let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            print(String(decoding: data, as: UTF8.self))
            return
        }
        for (i, (sentence, e)) in zip(sentences, embeddings).enumerated() {
            let head = e.prefix(dimensions).map { String(format: "%.5f", $0) }.joined(separator: ", ")
            print("[\(i)] \(sentence)\n    [\(head)\(e.count > dimensions ? ", …" : "")] (\(e.count) dims)")
        }
        print("cosine similarity:")
        for (i, row) in cosine.enumerated() {
            print("  [\(i)] " + row.map { String(format: "%7.4f", $0) }.joined(separator: " "))
        }
    }
}
