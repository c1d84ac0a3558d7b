import Foundation
import Kernels
import Testing
@testable import Models

/// One LoRA configuration type serves the encoder and the decoder: the same PEFT keys, the same
/// checks, and rsLoRA (α/√r) for both.
@Suite struct LoRAConfigurationTests {
    @Test func encoderAndDecoderConfigurationsReadTheSamePEFTKeys() throws {
        let json = #"{"r": 4, "lora_alpha": 8, "target_modules": [%@], "use_rslora": true}"#
        let encoder = try JSONDecoder().decode(LoRAConfiguration<LoRATarget>.self, from: Data(
            json.replacingOccurrences(of: "%@", with: #""attention.self.value", "attention.self.query""#).utf8))
        let decoder = try JSONDecoder().decode(LoRAConfiguration<LlamaProjection>.self, from: Data(
            json.replacingOccurrences(of: "%@", with: #""v_proj", "q_proj", "v_proj""#).utf8))
        #expect(encoder.targets == [.query, .value] && decoder.targets == [.query, .value])
        #expect(encoder.scale == 4 && decoder.scale == 4, "α/√r = 8/2")
        // An encoder module name is not a decoder one.
        #expect(throws: DecodingError.self) {
            try JSONDecoder().decode(LoRAConfiguration<LlamaProjection>.self, from: Data(
                json.replacingOccurrences(of: "%@", with: #""attention.self.value""#).utf8))
        }
    }

    @Test func theDecoderConfigurationChecksWhatTrains() throws {
        #expect(throws: ModelsError.self) { try LlamaAdapterConfiguration(rank: 0, alpha: 1, targets: [.query]) }
        #expect(throws: ModelsError.self) { try LlamaAdapterConfiguration(targets: [], fullTargets: []) }
        #expect(throws: ModelsError.self) { try LlamaAdapterConfiguration(targets: [.up], fullTargets: [.up]) }
        let fullOnly = try LlamaAdapterConfiguration(rank: 0, targets: [], fullTargets: [.down])
        #expect(fullOnly.lora == nil && fullOnly.rank == 0 && fullOnly.targets.isEmpty)
        let plain = try LlamaAdapterConfiguration(rank: 4, alpha: 8)
        let rs = try LlamaAdapterConfiguration(rank: 4, alpha: 8, useRSLoRA: true)
        #expect(plain.scale == 2 && rs.scale == 4)
    }

    /// rsLoRA with α on rank r is plain LoRA with α·√r: the same seed gives the same A, so the
    /// two decoders' logits agree bit for bit once B is set equal.
    @Test func rsLoRAOnTheDecoderScalesByAlphaOverRootR() throws {
        let model = try LlamaGradientTests.tiny()
        let rs = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 4, alpha: 3, targets: [.query, .down],
                                                                           useRSLoRA: true),
                              weights: model.weights, seed: 5)
        let plain = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 4, alpha: 6, targets: [.query, .down]),
                                 weights: model.weights, seed: 5)
        let other = LlamaAdapter(configuration: try LlamaAdapterConfiguration(rank: 4, alpha: 3, targets: [.query, .down]),
                                 weights: model.weights, seed: 5)
        for adapter in [rs, plain, other] {
            for p in adapter.parameters where p.name.hasSuffix("lora_B") {
                for j in 0 ..< p.value.count { p.value[j] = 0.01 * Float(j % 7) - 0.03 }
            }
        }
        let ids: [Int32] = [1, 5, 9, 2, 12, 0, 3, 3, 7, 11]
        func logits(_ adapter: LlamaAdapter) throws -> [Float] {
            try model.forward(ids: ids, batch: 2, tokens: 5, logitRows: Array(0 ..< 10), adapter: adapter).logits.values
        }
        #expect(try logits(rs) == logits(plain))
        #expect(try logits(rs) != logits(other), "the plain α/r scale differs")
    }
}
