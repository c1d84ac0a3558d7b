import Foundation
import Testing
@testable import Models

/// The real all-MiniLM-L6-v2 against the golden values published for the model.
@Suite struct MiniLMEncoderTests {
    static let sentences = ["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."]

    @Test func goldenEmbeddingsAndCosineMatrix() throws {
        let encoder = try MiniLMEncoder(directory: TestAssets.miniLMDirectory)
        let e = encoder.sentenceEmbeddings(Self.sentences, threads: 2)
        let first4: [Float] = [0.01920, 0.12009, 0.15960, 0.06707]
        for j in 0..<4 { #expect(abs(e[0][j] - first4[j]) < 1e-3, "dim \(j): \(e[0][j])") }
        let golden: [[Float]] = [[1, 0.6660, 0.1046], [0.6660, 1, 0.1411], [0.1046, 0.1411, 1]]
        for i in 0..<3 {
            for j in 0..<3 {
                let cosine = zip(e[i], e[j]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(cosine - golden[i][j]) < 1e-3, "cos(\(i),\(j)) = \(cosine)")
            }
        }
    }

    @Test func paddingDoesNotChangeEmbeddings() throws {
        // Batched with a longer sentence (so padded) vs alone: same embedding.
        let encoder = try MiniLMEncoder(directory: TestAssets.miniLMDirectory)
        let alone = encoder.sentenceEmbeddings([Self.sentences[2]], threads: 1)[0]
        let padded = encoder.sentenceEmbeddings(
            [Self.sentences[2], "A considerably longer sentence that forces padding of the first one."], threads: 1)[0]
        #expect(zip(alone, padded).allSatisfy { abs($0 - $1) < 1e-5 })
    }
}
