import ArgumentParser
import Kernels
import Models

/// Options shared by the decoder commands: which GGUF model, how many threads.
struct DecoderOptions: ParsableArguments {
    @Option(help: "GGUF model file (Llama architecture).")
    var model = "Checkpoints/base/SmolLM2-135M-Instruct/model.gguf"

    @Option(help: """
        Threads. Training splits each batch into this many groups of sequences, one thread each \
        (the same count gives the same bits); scoring runs this many batches at once (the same \
        bits for any count); a lone sequence uses them all inside BLAS and the elementwise kernels.
        """)
    var threads = 2

    @Option(help: "Longest sequence (RoPE table and KV cache size).")
    var maxPositions = 2048

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads).") }
        guard maxPositions >= 2 else { throw ValidationError("--max-positions must be at least 2, got \(maxPositions).") }
    }

    /// Sets the BLAS thread count and loads model and tokenizer.
    func load() throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        BLASRuntime.setThreadCount(threads)
        return try LlamaModel.load(path: model, maxPositions: maxPositions)
    }
}
