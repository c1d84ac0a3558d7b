import Kernels

extension LlamaModel {
    /// Accumulates the adapter's gradients from dL/dlogits [M, V] of `pass` (callers zero them).
    ///
    /// Reverse of `forward`, block by block (shape glossary in `LlamaModel`):
    ///     dh_final = scatter(dLogits·E);  dx_L = RMSNorm′(dh_final)
    ///     per block: dact = dx''·Wd;  dg, du = SwiGLU′;  dh2 = dg·Wg + du·Wu;  dx' = dx'' + RMSNorm′(dh2)
    ///                datt = dx'·Wo;  dq, dk, dv = attention′;  RoPE⁻¹ on dq, dk;
    ///                dh1 = dq·Wq + dk·Wk + dv·Wv;  dx = dx' + RMSNorm′(dh1)
    /// Base weights, norms and the embedding are frozen: they get no gradient. Blocks below the
    /// lowest adapted layer are skipped (nothing there can change the loss).
    public func backward(_ pass: ForwardPass, dLogits: Tensor, adapter: LlamaAdapter, threads: Int = 1) {
        let c = configuration, n = pass.batch * pass.tokens, cs = c.hiddenSize, f = c.intermediateSize
        let hd = c.headCount * c.headSize, m = pass.logitRows.count
        let dSelected = Tensor(shape: [m, cs])
        packedHead.backwardInput(dY: dLogits.pointer, into: dSelected.data, rows: m, accumulate: false)
        let dHidden = Tensor(shape: [n, cs])
        for (i, r) in pass.logitRows.enumerated() {
            let dst = dHidden.data + r * cs, src = dSelected.data + i * cs
            for j in 0 ..< cs { dst[j] += src[j] }
        }
        var dx = Tensor(shape: [n, cs])
        RMSNorm.backward(dY: dHidden.pointer, x: pass.finalInput.pointer, gamma: weights.outputNorm.pointer,
                         rstd: pass.finalRstd.pointer, dX: dx.data, dGamma: nil, rows: n, columns: cs, threads: threads)
        let lowest = adapter.lowestLayer ?? c.layerCount
        precondition(lowest >= pass.firstLayer, "the pass starts above the adapter's lowest layer \(lowest)")
        let shape = Attention.Shape(batch: pass.batch, tokens: pass.tokens, heads: c.headCount,
                                    kvHeads: c.kvHeadCount, headSize: c.headSize, causal: true)
        for l in stride(from: c.layerCount - 1, through: lowest, by: -1) {
            let s = pass.layers[l - pass.firstLayer], w = weights.layers[l]
            let needInput = l > lowest
            // FFN half.
            let dAct = Tensor(shape: [n, f])
            projectBackward(dY: dx, x: s.act, dX: dAct, layer: l, .down, adapter: adapter, saved: s)
            let dGate = Tensor(shape: [n, f]), dUp = Tensor(shape: [n, f])
            SwiGLU.backward(dY: dAct.pointer, gate: s.gate.pointer, up: s.up.pointer, dGate: dGate.data,
                            dUp: dUp.data, count: n * f, threads: threads)
            let dH2 = Tensor(shape: [n, cs])
            projectBackward(dY: dGate, x: s.h2, dX: dH2, layer: l, .gate, adapter: adapter, saved: s)
            projectBackward(dY: dUp, x: s.h2, dX: dH2, layer: l, .up, adapter: adapter, saved: s)
            RMSNorm.backward(dY: dH2.pointer, x: s.xMid.pointer, gamma: w.ffnNorm.pointer, rstd: s.rstd2.pointer,
                             dX: dx.data, dGamma: nil, rows: n, columns: cs, threads: threads)
            // Attention half; dx now holds dL/dx'.
            let dAtt = Tensor(shape: [n, hd])
            projectBackward(dY: dx, x: s.attention, dX: dAtt, layer: l, .output, adapter: adapter, saved: s)
            // Written whole by attention's backward (overwrite mode), so not zero-filled.
            let dQ = Tensor.scratch(shape: [n, hd]), dK = Tensor.scratch(shape: [n, c.kvSize])
            let dV = Tensor.scratch(shape: [n, c.kvSize])
            Attention.backward(dOut: dAtt.pointer, q: s.q.pointer, k: s.k.pointer, v: s.v.pointer,
                               probabilities: s.probabilities.pointer, shape: shape, dQ: dQ.data, dK: dK.data,
                               dV: dV.data, accumulate: false, threads: threads)
            let dQPre = Tensor(shape: [n, hd]), dKPre = Tensor(shape: [n, c.kvSize])
            RoPE.backward(dY: dQ.pointer, dX: dQPre.data, table: rope, positions: nil, rows: n,
                          tokens: pass.tokens, heads: c.headCount, threads: threads)
            RoPE.backward(dY: dK.pointer, dX: dKPre.data, table: rope, positions: nil, rows: n,
                          tokens: pass.tokens, heads: c.kvHeadCount, threads: threads)
            let dH1: Tensor? = needInput ? Tensor(shape: [n, cs]) : nil
            projectBackward(dY: dQPre, x: s.h1, dX: dH1, layer: l, .query, adapter: adapter, saved: s)
            projectBackward(dY: dKPre, x: s.h1, dX: dH1, layer: l, .key, adapter: adapter, saved: s)
            projectBackward(dY: dV, x: s.h1, dX: dH1, layer: l, .value, adapter: adapter, saved: s)
            if let dH1 {
                RMSNorm.backward(dY: dH1.pointer, x: s.x.pointer, gamma: w.attentionNorm.pointer,
                                 rstd: s.rstd1.pointer, dX: dx.data, dGamma: nil, rows: n, columns: cs,
                                 threads: threads)
            } else {
                dx = Tensor(shape: [0])
            }
        }
    }

    /// Accumulates dX (optional) and the adapter gradients of one projection y = x·Wᵀ (+ LoRA).
    func projectBackward(dY: Tensor, x: Tensor, dX: Tensor?, layer l: Int, _ target: LlamaProjection,
                         adapter: LlamaAdapter, saved: LayerActivations) {
        let (o, i) = target.shape(configuration)
        let n = x.count / i
        let fullWeight = adapter.full[l][target]
        let weight = fullWeight?.value ?? weights.layers[l].matrix(target)
        if let frozen = frozenProjection(l, target, adapter: adapter) {
            if let pair = adapter.lora[l][target], let xa = saved.loraXA[target] {
                let r = adapter.configuration.rank
                let scratch = Tensor(shape: [n, r])
                LoRALinear.adapterBackward(dY: dY.pointer, x: x.pointer, rows: n,
                                           shape: .init(inFeatures: i, outFeatures: o, rank: r),
                                           loraA: pair.a.value.pointer, loraB: pair.b.value.pointer,
                                           scale: adapter.configuration.scale, xa: xa.pointer,
                                           dLoraA: pair.a.gradient.data, dLoraB: pair.b.gradient.data,
                                           dX: dX?.data, scratch: scratch.data)
            }
            if let dX { frozen.backwardInput(dY: dY.pointer, into: dX.data, rows: n, accumulate: true) }
        } else if let pair = adapter.lora[l][target], let xa = saved.loraXA[target] {
            let r = adapter.configuration.rank
            let scratch = Tensor(shape: [n, r])
            LoRALinear.backward(dY: dY.pointer, x: x.pointer, rows: n,
                                shape: .init(inFeatures: i, outFeatures: o, rank: r), weight: weight.pointer,
                                loraA: pair.a.value.pointer, loraB: pair.b.value.pointer,
                                scale: adapter.configuration.scale, xa: xa.pointer, dLoraA: pair.a.gradient.data,
                                dLoraB: pair.b.gradient.data, dX: dX?.data, scratch: scratch.data)
        } else if let dX {
            MatMul.gemm(false, false, n, i, o, 1, dY.pointer, o, weight.pointer, i, 1, dX.data, i)
        }
        if let fullWeight {
            // dW[O,I] += dYᵀ·x
            MatMul.gemm(true, false, o, i, n, 1, dY.pointer, o, x.pointer, i, 1, fullWeight.gradient.data, i)
        }
    }
}
