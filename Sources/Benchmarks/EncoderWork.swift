import Models

/// The least arithmetic a LoRA training run of a post-LN BERT encoder needs, in FLOPs (2 per
/// multiply-add): real tokens only, no padding; the frozen layers below the lowest trained one
/// run once per example for the whole run (their outputs never change); each trained layer runs
/// forward and, backward, the input gradients through its frozen matrices (as many FLOPs as the
/// forward's products; the lowest trained layer needs none for q, k, v) and four attention
/// products for the forward's two. The adapters' rank-r products are left out, so this is a floor:
/// a run's FLOPs ÷ its seconds ÷ the peak is the share of the machine it used at best.
/// `adapterWork` counts the adapters' products separately: every implementation does them too
/// (they are the trained part), so floor + adapters is the run's whole necessary arithmetic.
struct EncoderWork {
    let hidden: Int
    let intermediate: Int
    let layerCount: Int

    /// One layer on one sequence of `n` tokens.
    func layer(tokens n: Int, backward: Bool, inputGradient: Bool = true) -> Double {
        let c = Double(hidden), f = Double(intermediate), t = Double(n)
        let dense = 2 * t * (4 * c * c + 2 * c * f)
        let attention = 4 * t * t * c
        guard backward else { return dense + attention }
        let denseBackward = inputGradient ? dense : 2 * t * (c * c + 2 * c * f)
        return dense + attention + denseBackward + 2 * attention
    }

    /// The floor of `epochs` passes over sequences of these lengths with layers
    /// `lowestTrained ..< layerCount` trained.
    func trainingFloor(lengths: [Int], epochs: Int, lowestTrained: Int) -> Double {
        lengths.reduce(0.0) { total, n in
            let frozen = Double(lowestTrained) * layer(tokens: n, backward: false)
            let trained = (lowestTrained ..< layerCount).reduce(0.0) {
                $0 + layer(tokens: n, backward: true, inputGradient: $1 > lowestTrained)
            }
            return total + frozen + Double(epochs) * trained
        }
    }

    /// The adapters' rank-r products of one trained layer on `n` tokens, per target with input
    /// width I and output width O: forward x·Aᵀ (n·r·I multiply-adds) and (x·Aᵀ)·Bᵀ (n·r·O);
    /// backward dY·B (n·O·r), B's gradient (O·n·r), A's (r·n·I) and the input gradient through
    /// the adapter (n·r·I), which q, k and v of the lowest trained layer do not need.
    func adapters(tokens n: Int, targets: [LoRATarget], rank r: Int, inputGradient: Bool) -> Double {
        targets.reduce(0.0) { total, target in
            let (i, o) = target.features(hidden: hidden, intermediate: intermediate)
            let needsInput = inputGradient || ![.query, .key, .value].contains(target)
            return total + 2 * Double(n * r) * Double(2 * i + 3 * o + (needsInput ? i : 0))
        }
    }

    /// The adapters' products of `epochs` passes over sequences of these lengths, with adapters
    /// trained on `trainedLayers` (input gradients everywhere but the lowest of them).
    func adapterWork(lengths: [Int], epochs: Int, trainedLayers: [Int], targets: [LoRATarget], rank: Int) -> Double {
        let lowest = trainedLayers.min() ?? 0
        let perToken = trainedLayers.reduce(0.0) {
            $0 + adapters(tokens: 1, targets: targets, rank: rank, inputGradient: $1 > lowest)
        }
        return Double(epochs) * Double(lengths.reduce(0, +)) * perToken
    }
}
