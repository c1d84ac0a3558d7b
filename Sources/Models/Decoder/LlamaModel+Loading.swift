import Kernels
extension LlamaModel {
    /// Loads a Llama-architecture GGUF file: configuration, dequantised weights and tokenizer.
    public static func load(path: String, maxPositions: Int = 2048,
                            precision: Precision = .fp32) throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        let file = try GGUFFile(contentsOf: path)
        let configuration = try LlamaConfiguration(gguf: file, maxPositions: maxPositions)
        let weights = try LlamaWeights(gguf: file, configuration: configuration)
        return (try LlamaModel(weights: weights, precision: precision), try BPETokenizer(gguf: file))
    }
}
