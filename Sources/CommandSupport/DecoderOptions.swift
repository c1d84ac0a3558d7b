import ArgumentParser
import Kernels
import Models

/// Options shared by the decoder commands: which GGUF model, how many threads.
public struct DecoderOptions: ParsableArguments {
    public init() {}

    @Option(help: "GGUF model file (Llama architecture).")
    public var model = "Checkpoints/base/SmolLM2-135M-Instruct/model.gguf"

    @Option(help: """
        Threads. Training splits each batch into this many groups of sequences, one thread each \
        (the same count gives the same bits); scoring runs this many batches at once (the same \
        bits for any count); a lone sequence uses them all inside BLAS and the elementwise kernels.
        """)
    public var threads = 2

    @Option(help: "Longest sequence (RoPE table and KV cache size), 2…8192 (SmolLM2's context). Default 2048.")
    public var maxPositions = 2048

    /// The bounds checked before anything is loaded or allocated.
    public static let threadLimit = 1...256
    public static let positionLimit = 2...8192

    public func validate() throws {
        guard Self.threadLimit.contains(threads) else {
            throw ValidationError("--threads \(threads): give 1…\(Self.threadLimit.upperBound).")
        }
        guard Self.positionLimit.contains(maxPositions) else {
            throw ValidationError("--max-positions \(maxPositions): give 2…\(Self.positionLimit.upperBound) "
                                  + "(the model's context; the KV cache grows with it).")
        }
    }

    /// Sets the BLAS thread count and loads model and tokenizer.
    public func load() throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        BLASRuntime.setThreadCount(threads)
        return try LlamaModel.load(path: model, maxPositions: maxPositions)
    }
}
