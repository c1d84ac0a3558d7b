import Foundation
import Testing
@testable import Models

/// What a decoder's sizes allow before anything is allocated: positions within the context
/// the file records, and the byte counts the commands check against the machine's memory.
@Suite struct LlamaConfigurationTests {
    /// A GGUF header with the llama metadata of a tiny model whose context is `context`, with
    /// RMS ε `epsilon` and, when given, RoPE base `ropeBase` (both stored as float32).
    static func header(context: Int, epsilon: Float = 1e-5, ropeBase: Float? = nil, headCount: Int = 4,
                       rotaryDimensions: Int? = nil, vocabularySize: Int? = nil) throws -> GGUFFile {
        typealias B = GGUFBuilder
        var b = GGUFBuilder()
        b.add("general.architecture", type: 8, B.string("llama"))
        b.add("tokenizer.ggml.tokens", type: 9, B.le(UInt32(8)) + B.le(UInt64(3)) + B.string("a") + B.string("b") + B.string("c"))
        for (key, value) in [("llama.embedding_length", 16), ("llama.feed_forward_length", 24), ("llama.block_count", 2),
                             ("llama.attention.head_count", headCount), ("llama.attention.head_count_kv", 2),
                             ("llama.context_length", context)] {
            b.add(key, type: 4, B.le(UInt32(value)))
        }
        b.add("llama.attention.layer_norm_rms_epsilon", type: 6, B.le(epsilon.bitPattern))
        if let ropeBase { b.add("llama.rope.freq_base", type: 6, B.le(ropeBase.bitPattern)) }
        if let rotaryDimensions { b.add("llama.rope.dimension_count", type: 4, B.le(UInt32(rotaryDimensions))) }
        if let vocabularySize { b.add("llama.vocab_size", type: 4, B.le(UInt32(vocabularySize))) }
        return try GGUFFile(data: Data(b.build()), path: "tiny.gguf")
    }

    @Test func maxPositionsBeyondTheRecordedContextIsRefused() throws {
        let file = try Self.header(context: 512)
        #expect(try LlamaConfiguration(gguf: file, maxPositions: 512).maxPositions == 512)
        #expect(throws: ModelsError.invalidValue(field: "--max-positions", value: "513",
                                                 reason: "tiny.gguf has a context of 512 positions")) {
            try LlamaConfiguration(gguf: file, maxPositions: 513)
        }
    }

    @Test func byteCountsFollowTheShapes() throws {
        let c = try LlamaConfiguration(gguf: try Self.header(context: 64), maxPositions: 64)
        // K and V: 2 blocks × 64 positions × (2 heads × 4) floats each.
        #expect(c.keyValueCacheBytes == 4 * 2 * 2 * 64 * 8)
        // 3 sequences of 5 tokens, 7 logit rows: per row 4·16 + 2·16 + 2·8 + 3·24 + 2 = 186 floats
        // per block, attention 3·4·5·5, final states 3·15·16, logits 7·3.
        let perBlock = 15 * 186 + 3 * 4 * 25
        #expect(c.forwardPassBytes(batch: 3, tokens: 5, logitRows: 7) == 4 * (2 * perBlock + 3 * 15 * 16 + 7 * 3))
    }

    /// A hyperparameter the shapes cannot hold is the file's fault, named with its path.
    @Test func aHeadCountThatDoesNotDivideTheWidthNamesTheFile() throws {
        #expect(throws: ModelsError.ggufInvalid(path: "tiny.gguf", what: "headCount",
                                                reason: "5 is out of range: must divide hiddenSize 16")) {
            try LlamaConfiguration(gguf: try Self.header(context: 64, headCount: 5), maxPositions: 64)
        }
    }

    @Test func ropeBaseAndEpsilonThatMakeOutputsNaNAreRefusedNamingTheKey() throws {
        let c = try LlamaConfiguration(gguf: try Self.header(context: 64, epsilon: 0, ropeBase: 500), maxPositions: 64)
        #expect(c.ropeBase == 500 && c.rmsEpsilon == 0)
        for base: Float in [0, -5, .nan, .infinity] {
            #expect(throws: ModelsError.ggufInvalid(path: "tiny.gguf", what: "metadata 'llama.rope.freq_base'",
                                                    reason: "\(Double(base)) is not a finite positive number")) {
                try LlamaConfiguration(gguf: try Self.header(context: 64, ropeBase: base), maxPositions: 64)
            }
        }
        for epsilon: Float in [-1, .nan, .infinity] {
            #expect(throws: ModelsError.ggufInvalid(path: "tiny.gguf", what: "metadata 'llama.attention.layer_norm_rms_epsilon'",
                                                    reason: "\(epsilon) is not a finite number ≥ 0")) {
                try LlamaConfiguration(gguf: try Self.header(context: 64, epsilon: epsilon), maxPositions: 64)
            }
        }
    }

    /// Every token the tokenizer makes needs an embedding row: a declared vocabulary smaller than
    /// the tokenizer's is the file's fault, named with the key (not a token of the text).
    @Test func aVocabularySmallerThanTheTokenizersIsRefusedNamingTheKey() throws {
        #expect(try LlamaConfiguration(gguf: try Self.header(context: 64, vocabularySize: 3), maxPositions: 64)
            .vocabularySize == 3)
        #expect(throws: ModelsError.ggufInvalid(path: "tiny.gguf", what: "metadata 'llama.vocab_size'",
                                                reason: "2 is less than the tokenizer's 3 tokens")) {
            try LlamaConfiguration(gguf: try Self.header(context: 64, vocabularySize: 2), maxPositions: 64)
        }
    }

    /// RoPE rotates whole heads here; a file that rotates part of each head (or none) is another
    /// model and is refused rather than run with wrong outputs.
    @Test func aPartialRotaryEmbeddingIsRefusedNamingTheKey() throws {
        // 16 wide, 4 heads: heads of 4.
        #expect(try LlamaConfiguration(gguf: try Self.header(context: 64, rotaryDimensions: 4), maxPositions: 64).headSize == 4)
        for rotary in [0, 2, 8] {
            #expect(throws: ModelsError.ggufInvalid(path: "tiny.gguf", what: "metadata 'llama.rope.dimension_count'",
                reason: "\(rotary) rotated dimensions per head, but Lethe rotates all 4 (embedding_length ÷ head_count); "
                    + "partial rotary embeddings are not supported")) {
                try LlamaConfiguration(gguf: try Self.header(context: 64, rotaryDimensions: rotary), maxPositions: 64)
            }
        }
    }
}
