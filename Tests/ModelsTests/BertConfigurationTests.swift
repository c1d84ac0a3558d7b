import Foundation
import Testing
@testable import Models

/// config.json of an encoder: values are checked before anything is sized by them.
@Suite struct BertConfigurationTests {
    private let valid: [String: Any] = [
        "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6, "num_attention_heads": 12,
        "intermediate_size": 1536, "max_position_embeddings": 512, "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "hidden_act": "gelu",
    ]

    private func read(_ json: [String: Any]) throws -> BertConfiguration {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("config-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: url) }
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        return try BertConfiguration(contentsOf: url.path)
    }

    @Test func miniLMsValuesAreRead() throws {
        let configuration = try read(valid)
        #expect(configuration.layerCount == 6 && configuration.hiddenSize == 384 && configuration.intermediateSize == 1536)
    }

    @Test func hugeValuesAreRefusedNamingTheField() throws {
        for (field, value) in [("num_hidden_layers", 1_000_000_000), ("hidden_size", 1 << 40), ("vocab_size", 1 << 30)] {
            var json = valid
            json[field] = value
            #expect(throws: ModelsError.self, "\(field)") { _ = try read(json) }
            do { _ = try read(json) } catch {
                #expect("\(error)".contains(field) && "\(error)".contains("beyond any encoder"), "\(error)")
            }
        }
    }
}
