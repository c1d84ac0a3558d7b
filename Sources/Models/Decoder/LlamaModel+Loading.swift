import Foundation
import Kernels
import Support
extension LlamaModel {
    /// Loads a Llama-architecture GGUF file: configuration, dequantised weights and tokenizer.
    public static func load(path: String, maxPositions: Int = 2048,
                            precision: Precision = .fp32) throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        let file = try GGUFFile(contentsOf: path)
        let configuration = try LlamaConfiguration(gguf: file, maxPositions: maxPositions)
        // The weights in float32, their products' prepared copy (bf16 half as large), and the
        // dequantisation's scratch (measured: about 9.5 bytes a parameter in all for float32, 7 for bf16).
        let parameters = UInt64(configuration.parameterCount)
        try MemoryLimit.requireForModel(path, arrayBytes: parameters * (precision == .bf16 ? 14 : 19) / 2)
        let weights = try LlamaWeights(gguf: file, configuration: configuration)
        return (try LlamaModel(weights: weights, precision: precision), try BPETokenizer(gguf: file))
    }
}
