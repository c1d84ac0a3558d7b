import Foundation
import Testing
@testable import Models

/// Golden values of ASSETS.md on the real SmolLM2-135M-Instruct weights.
@Suite(.serialized) struct LlamaGoldenTests {
    static let loaded: Result<(model: LlamaModel, tokenizer: BPETokenizer), Error> =
        Result { try LlamaModel.load(path: TestSupport.smolLMPath, maxPositions: 256) }

    @Test func configurationFromGGUF() throws {
        let c = try Self.loaded.get().model.configuration
        #expect(c.hiddenSize == 576 && c.intermediateSize == 1536 && c.layerCount == 30)
        #expect(c.headCount == 9 && c.kvHeadCount == 3 && c.headSize == 64 && c.ropeBase == 100000)
        #expect(c.vocabularySize == 49152 && c.parameterCount == 134_515_008)
    }

    @Test(arguments: [
        ("The capital of France is", " Paris.\n\nThe answer is:"),
        ("Once upon a time, there was a little", " girl named Emma who loved to play in"),
    ])
    func greedyContinuation(prompt: String, expected: String) throws {
        let (model, tokenizer) = try Self.loaded.get()
        let expectedIDs = tokenizer.encode(expected)
        let generator = LlamaGenerator(model: model)
        let ids = try generator.greedy(prompt: tokenizer.encode(prompt), maxTokens: expectedIDs.count)
        #expect(ids == expectedIDs)
        #expect(try tokenizer.decode(ids) == expected)
    }

    @Test func goldenPerplexity() throws {
        let (model, tokenizer) = try Self.loaded.get()
        let text = "The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park."
        let s = try model.scores(of: [tokenizer.encode(text)])[0]
        #expect(s.logProbabilities.count == 23)
        let perplexity = exp(s.meanNLL)
        #expect(abs(perplexity - 15.99) / 15.99 < 0.01, "perplexity \(perplexity)")
    }

    /// The frozen products in bfloat16 (float32 accumulation) keep perplexity within 1% of float32's.
    @Test func bf16PerplexityWithinOnePercentOfFloat32() throws {
        let (model, tokenizer) = try Self.loaded.get()
        let bf16 = try LlamaModel(weights: model.weights, precision: .bf16)
        let texts = ["The quick brown fox jumps over the lazy dog. It was a sunny day and the children were playing in the park.",
                     "Shares in the bank fell sharply after its quarterly profits missed analysts' forecasts.",
                     "Once upon a time, there was a little girl who lived in a village near the forest."]
        let ids = texts.map { tokenizer.encode($0) }
        let reference = try model.scores(of: ids), lowered = try bf16.scores(of: ids)
        // Perplexity over all the texts' tokens (one short text alone moves by about 1%).
        func perplexity(_ scores: [TokenScores]) -> Double {
            let lp = scores.flatMap(\.logProbabilities)
            return exp(-lp.reduce(0.0) { $0 + Double($1) } / Double(lp.count))
        }
        let (p32, p16) = (perplexity(reference), perplexity(lowered))
        #expect(abs(p16 - p32) / p32 < 0.01, "perplexity \(p16) in bf16 vs \(p32) in float32")
        for (a, b) in zip(reference, lowered) {
            #expect(a.logProbabilities != b.logProbabilities, "bf16 gave float32's bits: the precision is not used")
        }
    }

    /// Batched scoring with padding and the cached generator agree with single-sequence runs.
    @Test func paddingAndCacheDoNotChangeResults() throws {
        let (model, tokenizer) = try Self.loaded.get()
        let a = tokenizer.encode("The capital of France is"), b = tokenizer.encode("Once upon a time, there was a little")
        let single = try model.scores(of: [a])[0]
        let batched = try model.scores(of: [b, a], batchSize: 2)[1]
        for (x, y) in zip(single.logProbabilities, batched.logProbabilities) { #expect(abs(x - y) < 1e-4) }
        let cached = try LlamaGenerator(model: model).append(a)
        let pass = try model.forward(ids: a.map(Int32.init), batch: 1, tokens: a.count, logitRows: [a.count - 1])
        let full = pass.logits.values
        let maxDiff = zip(cached, full).map { abs($0 - $1) }.max() ?? 0
        #expect(maxDiff < 1e-3)
    }
}
