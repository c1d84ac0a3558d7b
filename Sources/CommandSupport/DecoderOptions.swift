import ArgumentParser
import Foundation
import Kernels
import Models
import Support

/// Options shared by the decoder commands: which GGUF model, how many threads, how long a
/// sequence may be. Their bounds are checked in `validate()`, before anything is loaded.
public struct DecoderOptions: ParsableArguments {
    public init() {}

    /// The model file of a command that does not name one.
    public static let defaultModel = "Checkpoints/base/SmolLM2-135M-Instruct/model.gguf"

    @Option(name: .customLong("model"), help: "GGUF model file (Llama architecture). (default: \(Self.defaultModel))")
    public var givenModel: String?

    /// The model file: --model, or the default.
    public var model: String { givenModel ?? Self.defaultModel }

    @Option(help: """
        Threads, \(CommonBounds.threads.text). Training splits each batch into this many groups of \
        sequences, one thread each (the same count gives the same bits); scoring runs this many \
        batches at once (the same bits for any count); a lone sequence uses them all inside BLAS \
        and the elementwise kernels.
        """)
    public var threads = CommonBounds.defaultThreads

    @Option(help: """
        Longest sequence (RoPE table and KV cache size), \(Self.positionBounds.text) and at most the \
        model's context (8192 for SmolLM2).
        """)
    public var maxPositions = 2048

    @Option(name: .customLong("precision"), help: "Arithmetic of the frozen weights' products: fp32, or bf16 (weights rounded to bfloat16 once, float32 accumulation; adapters, and when training gradients and optimiser state, stay float32). Default: with --run, the run's precision; otherwise fp32.")
    public var givenPrecision: Precision?

    /// --precision, or fp32.
    public var precision: Precision { givenPrecision ?? .fp32 }

    /// `--max-positions`: SmolLM2's context; a model with a shorter one refuses more when loaded.
    public static let positionBounds = OptionBounds(2...8192, reason: "the decoder's context; the KV cache grows with it")

    /// `--chunk-tokens` of the commands that cut texts into chunks: a chunk fits in --max-positions.
    public var chunkBounds: OptionBounds<Int> { OptionBounds(2...max(2, maxPositions), reason: "at most --max-positions") }

    /// Checks a chunk length against `chunkBounds`; one longer than --max-positions (its default,
    /// perhaps, beside a small --max-positions) is refused naming both options.
    public func checkChunkLength(_ value: Int, option: String) throws {
        if value > maxPositions {
            throw ValidationError("\(option) \(value) is longer than --max-positions \(maxPositions) (a chunk must fit in "
                                  + "the context): give \(option) 2…\(maxPositions), or a larger --max-positions.")
        }
        try chunkBounds.check(value, option: option)
    }

    public func validate() throws {
        try CommonBounds.threads.check(threads, option: "--threads")
        try Self.positionBounds.check(maxPositions, option: "--max-positions")
    }

    /// Refuses an --adapter path that names nothing, as a usage error (what is there is checked
    /// when it is loaded).
    public static func checkAdapterPath(_ adapter: String?) throws {
        guard let adapter, !FileManager.default.fileExists(atPath: adapter) else { return }
        throw ValidationError("--adapter \(adapter): no such file or directory. Give the --out directory of "
                              + "`lethe unlearn`, or the adapter.h5 in it.")
    }

    /// For a command that runs either a decoder run (`--run`, on the base model it was trained on)
    /// or --model: refuses both at once, and checks the model file when it is the one used.
    public func checkModel(orRun runDirectory: String?) throws {
        guard let runDirectory else { return try checkModel() }
        try RunOptions.checkUTF8(runDirectory, option: "--run")
        if givenModel != nil { throw ValidationError("--run and --model: give one (a run uses the base model it was trained on).") }
    }

    /// Refuses a missing or unreadable model file: each command's `validate` calls it when it
    /// uses the model (`lethe generate --run` uses the run's own instead).
    public func checkModel() throws {
        try InputFiles.check([("--model", model)])
    }

    /// Sets the BLAS thread count and loads model and tokenizer (refusing a --max-positions
    /// beyond the context the model records), the frozen products in --precision.
    public func load() throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        BLASRuntime.setThreadCount(threads)
        return try LlamaModel.load(path: model, maxPositions: maxPositions, precision: precision)
    }

    /// Refuses a LoRA `rank` outside `bounds` or wider than the model's narrowest adapted
    /// projection, as the same usage error as the fixed bounds: the upper end depends on the
    /// model, so this runs once it is loaded and before any work.
    public static func checkRank(_ rank: Int, within bounds: OptionBounds<Int>, option: String = "--rank",
                                 for configuration: LlamaConfiguration) throws {
        let narrowest = configuration.narrowestProjection
        try OptionBounds(bounds.range.lowerBound ... max(bounds.range.lowerBound, min(bounds.range.upperBound, narrowest)),
                         reason: "the model's narrowest adapted projection is \(narrowest) wide").check(rank, option: option)
    }

    /// Refuses scoring `chunks` in batches of `batchSize` (`--threads` batches at once) when
    /// the memory floor of the largest batches exceeds the machine's memory. Batches are padded
    /// to their longest chunk, so the longest chunk sizes them.
    public func ensureScoringMemory(_ configuration: LlamaConfiguration, chunks: [[Int]], batchSize: Int,
                                    mixture: Bool = false) throws {
        let batch = min(batchSize, chunks.count), tokens = chunks.map(\.count).max() ?? 0
        let workers = min(threads, (chunks.count + max(batchSize, 1) - 1) / max(batchSize, 1))
        var pass = configuration.forwardPassBytes(batch: batch, tokens: tokens, logitRows: batch * tokens)
        // An ensemble also sums the shards' distributions in Double, one row per scored token.
        if mixture { pass += batch * tokens * configuration.vocabularySize * MemoryLayout<Double>.size }
        try Self.ensureMemory(workers * pass, for: "scoring \(workers) batch(es) of \(batch) chunks of \(tokens) tokens at once",
                              sizedBy: "--chunk-tokens or --threads")
    }

    /// Refuses training steps on batches of `batchSize` chunks when their memory floor (the
    /// forward pass of the longest chunks and as much again for its gradients) exceeds the
    /// machine's memory.
    public func ensureTrainingMemory(_ configuration: LlamaConfiguration, chunks: [[Int]], batchSize: Int) throws {
        let tokens = chunks.map(\.count).max() ?? 0
        let pass = configuration.forwardPassBytes(batch: batchSize, tokens: tokens, logitRows: batchSize * tokens)
        try Self.ensureMemory(2 * pass, for: "training on batches of \(batchSize) chunks of \(tokens) tokens",
                              sizedBy: "--chunk-tokens or --batch-size")
    }

    /// Refuses work whose memory floor (`bytes`, e.g. `LlamaConfiguration.forwardPassBytes`)
    /// exceeds the machine's physical memory, before it is allocated, naming the options that
    /// size it — instead of the process being killed by the kernel half-way.
    public static func ensureMemory(_ bytes: Int, for work: String, sizedBy options: String) throws {
        let limit = MemoryLimit.current()
        guard UInt64(max(bytes, 0)) > limit.availableBytes else { return }
        throw ValidationError("\(work) needs about \(MemoryLimit.gigabytes(bytes)) of memory, and "
                              + "\(limit.text); lower \(options).")
    }
}
