import Foundation
import Models
import RunFixtures
import Testing

/// A model whose weights hold a NaN or an infinity gives NaN results; the measuring commands
/// refuse them (exit 1, naming the file) in text mode as with --json, and generation stops
/// instead of emitting token 0 for logits that have no argmax.
@Suite(.serialized) struct NonFiniteResultTests {
    static let root = S3TEndToEndTests.root

    /// Three short texts in `directory`, each a few chunks of 16 tokens.
    static func texts(in directory: URL) throws -> String {
        let url = directory.appendingPathComponent("texts.jsonl")
        try Data(("{\"text\": \"The cat sat on the mat and looked at the door for a long time.\"}\n"
                  + "{\"text\": \"Markets fell sharply on Monday morning after the announcement.\"}\n"
                  + "{\"text\": \"She planted tomatoes in the spring garden behind the house.\"}\n").utf8).write(to: url)
        return url.path
    }

    /// A copy of SmolLM2 in `directory` whose final RMSNorm gain (float32) starts with NaN, so
    /// every logit is NaN.
    static func damagedDecoder(in directory: URL) throws -> String {
        let source = root.appendingPathComponent("Checkpoints/base/SmolLM2-135M-Instruct/model.gguf").path
        let file = try GGUFFile(contentsOf: source)
        let info = try #require(file.info(named: "output_norm.weight"))
        #expect(info.typeCode == 0, "output_norm.weight is float32")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: source))
        let at = file.dataOffset + info.offset
        withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { bytes.replaceSubrange(at ..< at + 4, with: $0) }
        let damaged = directory.appendingPathComponent("nan.gguf")
        try bytes.write(to: damaged)
        return damaged.path
    }

    /// A copy of MiniLM in `directory` whose first word-embedding value is +infinity.
    static func damagedEncoder(in directory: URL) throws -> String {
        let source = root.appendingPathComponent("Checkpoints/base/all-MiniLM-L6-v2")
        let copy = directory.appendingPathComponent("minilm")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        for name in ["config.json", "vocab.txt"] {
            try FileManager.default.copyItem(at: source.appendingPathComponent(name), to: copy.appendingPathComponent(name))
        }
        let weights = source.appendingPathComponent("model.safetensors").path
        let info = try SafeTensors(contentsOf: weights).info("embeddings.word_embeddings.weight")
        #expect(info.dtype == .f32)
        var bytes = try Data(contentsOf: URL(fileURLWithPath: weights))
        // Every token row is damaged, so any sentence meets one.
        let columns = info.shape[1]
        for row in 0 ..< info.shape[0] {
            let at = info.fileByteRange.lowerBound + 4 * row * columns
            withUnsafeBytes(of: Float.infinity.bitPattern.littleEndian) { bytes.replaceSubrange(at ..< at + 4, with: $0) }
        }
        try bytes.write(to: copy.appendingPathComponent("model.safetensors"))
        return copy.path
    }

    static func expectRefused(_ arguments: [String], naming file: String) throws {
        let (status, output) = try LetheProcess.run(arguments)
        #expect(status == 1, "\(arguments): exit \(status): \(output)")
        #expect(output.contains("the model or adapter produced a non-finite value") && output.contains(file),
                "\(arguments): \(output)")
        for printed in ["perplexity nan", "perplexity -nan", "perplexity inf", "nan,", "inf,"] {
            #expect(!output.contains(printed), "\(arguments) printed a non-finite result: \(output)")
        }
    }

    @Test func decoderCommandsRefuseNaNResultsInTextAndJSON() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-nan-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try Self.damagedDecoder(in: scratch), texts = try Self.texts(in: scratch)
        let perplexity = ["perplexity", "--model", model, "--data", texts, "--chunk-tokens", "16"]
        try Self.expectRefused(perplexity, naming: model)
        try Self.expectRefused(perplexity + ["--json"], naming: model)
        // Members and non-members apart (the same file for both is refused before any scoring).
        let unseen = scratch.appendingPathComponent("unseen.jsonl")
        try Data("{\"text\": \"The river rose after three days of heavy rain in the valley.\"}\n".utf8).write(to: unseen)
        try Self.expectRefused(["eval-forget", "--model", model, "--forget", texts, "--unseen", unseen.path,
                                "--chunk-tokens", "16"], naming: model)
        let (status, output) = try LetheProcess.run(["generate", "The capital of France is", "--model", model, "--new-tokens", "2"])
        #expect(status == 1 && output.contains("the model or adapter produced a non-finite value")
                && output.contains("logits after position 4") && output.contains(model), "exit \(status): \(output)")
    }

    @Test func embedRefusesInfiniteEmbeddingsInTextAndJSON() throws {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-inf-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }
        let model = try Self.damagedEncoder(in: scratch)
        try Self.expectRefused(["embed", "--model", model, "The weather is lovely today."], naming: model)
        try Self.expectRefused(["embed", "--model", model, "The weather is lovely today.", "--json"], naming: model)
    }
}
