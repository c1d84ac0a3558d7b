import Kernels

extension LlamaWeights {
    /// The weights with `adapter` folded in: W' = W + s·B·A for each LoRA pair, and the trained
    /// copy for each fully trained matrix. Untouched tensors are shared, not copied.
    ///
    /// Used to make a fine-tuned model the new frozen θ0 before unlearning on top of it.
    public func merging(_ adapter: LlamaAdapter) -> LlamaWeights {
        let c = adapter.configuration
        let merged = layers.enumerated().map { (l, layer) -> Layer in
            let tensors = LlamaProjection.allCases.map { target -> Tensor in
                if let full = adapter.full[l][target] {
                    let t = Tensor(shape: full.value.shape)
                    t.copy(from: full.value)
                    return t
                }
                guard let pair = adapter.lora[l][target] else { return layer.matrix(target) }
                let (o, i) = target.shape(configuration)
                let t = Tensor(shape: [o, i])
                t.copy(from: layer.matrix(target))
                MatMul.gemm(false, false, o, i, c.rank, c.scale, pair.b.value.pointer, c.rank,
                            pair.a.value.pointer, i, 1, t.data, i)
                return t
            }
            // Layer order: norm, q, k, v, o, norm, gate, up, down (projections in allCases order).
            return Layer([layer.attentionNorm, tensors[0], tensors[1], tensors[2], tensors[3],
                          layer.ffnNorm, tensors[4], tensors[5], tensors[6]])
        }
        return LlamaWeights(configuration: configuration, tokenEmbedding: tokenEmbedding, layers: merged,
                            outputNorm: outputNorm)
    }
}
