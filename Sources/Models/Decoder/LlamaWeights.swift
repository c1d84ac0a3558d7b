import Foundation
import Kernels
import Support

/// The float32 weights of a Llama-architecture decoder, all row-major PyTorch orientation
/// (a linear layer's weight is [out, in]).
///
/// GGUF lists dims innermost first, so a tensor with dims (576, 1536) is read as [1536, 576];
/// dequantisation writes it in that order, which is already [out, in].
public final class LlamaWeights: @unchecked Sendable {
    /// One transformer block.
    public final class Layer: @unchecked Sendable {
        public let attentionNorm: Tensor   // [C]
        public let query: Tensor           // [H·D, C]
        public let key: Tensor             // [Hkv·D, C]
        public let value: Tensor           // [Hkv·D, C]
        public let output: Tensor          // [C, H·D]
        public let ffnNorm: Tensor         // [C]
        public let gate: Tensor            // [F, C]
        public let up: Tensor              // [F, C]
        public let down: Tensor            // [C, F]

        init(_ t: [Tensor]) {
            attentionNorm = t[0]; query = t[1]; key = t[2]; value = t[3]; output = t[4]
            ffnNorm = t[5]; gate = t[6]; up = t[7]; down = t[8]
        }

        /// The projection matrix for a target name.
        public func matrix(_ target: LlamaProjection) -> Tensor {
            switch target {
            case .query: return query
            case .key: return key
            case .value: return value
            case .output: return output
            case .gate: return gate
            case .up: return up
            case .down: return down
            }
        }
    }

    public let configuration: LlamaConfiguration
    /// [V, C]; tied: also the LM head.
    public let tokenEmbedding: Tensor
    public let layers: [Layer]
    /// [C]
    public let outputNorm: Tensor

    init(configuration: LlamaConfiguration, tokenEmbedding: Tensor, layers: [Layer], outputNorm: Tensor) {
        self.configuration = configuration; self.tokenEmbedding = tokenEmbedding
        self.layers = layers; self.outputNorm = outputNorm
    }

    /// GGUF names of the nine tensors of block `i`, in `Layer` order.
    static func names(block i: Int) -> [String] {
        ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"]
            .map { "blk.\(i).\($0).weight" }
    }

    /// Dequantises every tensor of `gguf`, checking each shape against `configuration`.
    public convenience init(gguf: GGUFFile, configuration: LlamaConfiguration) throws {
        let c = configuration.hiddenSize, f = configuration.intermediateSize
        let q = configuration.headCount * configuration.headSize, kv = configuration.kvSize
        func load(_ name: String, _ shape: [Int]) throws -> Tensor {
            guard let info = gguf.info(named: name) else { throw ModelsError.tensorMissing(path: gguf.path, tensor: name) }
            guard info.rowMajorShape == shape else {
                throw ModelsError.shapeMismatch(path: gguf.path, tensor: name, expected: shape, found: info.rowMajorShape)
            }
            return Tensor(shape: shape, values: try gguf.floats(named: name))
        }
        let embedding = try load("token_embd.weight", [configuration.vocabularySize, c])
        var layers: [Layer] = []
        for i in 0 ..< configuration.layerCount {
            let shapes = [[c], [q, c], [kv, c], [kv, c], [c, q], [c], [f, c], [f, c], [c, f]]
            layers.append(Layer(try zip(Self.names(block: i), shapes).map { try load($0, $1) }))
        }
        self.init(configuration: configuration, tokenEmbedding: embedding, layers: layers,
                  outputNorm: try load("output_norm.weight", [c]))
    }

    /// Random weights for tests: N(0, scale²) matrices from a seeded generator, norms near 1.
    public convenience init(randomWith configuration: LlamaConfiguration, seed: UInt64, scale: Float = 0.2) {
        var rng = SplitMix64(seed: seed)
        let c = configuration.hiddenSize, f = configuration.intermediateSize
        let q = configuration.headCount * configuration.headSize, kv = configuration.kvSize
        func random(_ shape: [Int], mean: Float = 0) -> Tensor {
            let t = Tensor(shape: shape)
            for i in 0 ..< t.count { t[i] = mean + scale * rng.nextGaussian() }
            return t
        }
        let layers = (0 ..< configuration.layerCount).map { _ in
            Layer([random([c], mean: 1), random([q, c]), random([kv, c]), random([kv, c]), random([c, q]),
                   random([c], mean: 1), random([f, c]), random([f, c]), random([c, f])])
        }
        self.init(configuration: configuration, tokenEmbedding: random([configuration.vocabularySize, c]),
                  layers: layers, outputNorm: random([c], mean: 1))
    }
}

/// The seven linear projections of a Llama block that LoRA (or full fine-tuning) can target,
/// named as in PEFT's `target_modules` for Llama.
public enum LlamaProjection: String, LoRAModule {
    case query = "q_proj", key = "k_proj", value = "v_proj", output = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"

    /// (out, in) of this projection's weight.
    public func shape(_ c: LlamaConfiguration) -> (out: Int, in: Int) {
        let h = c.headCount * c.headSize
        switch self {
        case .query: return (h, c.hiddenSize)
        case .key, .value: return (c.kvSize, c.hiddenSize)
        case .output: return (c.hiddenSize, h)
        case .gate, .up: return (c.intermediateSize, c.hiddenSize)
        case .down: return (c.hiddenSize, c.intermediateSize)
        }
    }
}
