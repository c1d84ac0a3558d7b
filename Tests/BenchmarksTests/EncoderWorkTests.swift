import Models
import Testing
@testable import Benchmarks

/// The FLOP floor behind `bench train`'s share of the peak, against the counts worked by hand
/// (and by Tools/torch_mirror.py's layer_flops, the same model).
@Suite struct EncoderWorkTests {
    // Width 2, FFN 4, 3 tokens: dense 2·3·(4·2² + 2·2·4) = 192, attention 4·3²·2 = 72.
    let work = EncoderWork(hidden: 2, intermediate: 4, layerCount: 2)

    @Test func oneLayer() {
        #expect(work.layer(tokens: 3, backward: false) == 264)
        // Backward: the dense products again and twice the attention products.
        #expect(work.layer(tokens: 3, backward: true) == 192 + 72 + 192 + 144)
        // The lowest trained layer needs no input gradient through q, k, v: 2·3·(2² + 2·2·4) = 120.
        #expect(work.layer(tokens: 3, backward: true, inputGradient: false) == 192 + 72 + 120 + 144)
    }

    @Test func frozenLayersRunOncePerExample() {
        // Layer 0 frozen (once), layer 1 trained for 2 epochs as the lowest trained layer.
        #expect(work.trainingFloor(lengths: [3], epochs: 2, lowestTrained: 1) == 264 + 2 * 528)
        // Every layer trained: layer 0 without, layer 1 with input gradients, per epoch.
        #expect(work.trainingFloor(lengths: [3, 3], epochs: 1, lowestTrained: 0) == 2 * (528 + 600))
    }

    @Test func adapterProducts() {
        // Rank 1 on q (I = O = 2), 3 tokens: forward 3·(2 + 2), backward 3·(2 + 2 + 2) and the
        // input gradient 3·2 multiply-adds, 2 FLOPs each.
        #expect(work.adapters(tokens: 3, targets: [.query], rank: 1, inputGradient: true) == 72)
        #expect(work.adapters(tokens: 3, targets: [.query], rank: 1, inputGradient: false) == 60)
        // The FFN output (I = 4, O = 2) always passes its input gradient on: 2·3·(8 + 6 + 4).
        #expect(work.adapters(tokens: 3, targets: [.output], rank: 1, inputGradient: false) == 108)
        #expect(work.adapters(tokens: 3, targets: [.query, .output], rank: 2, inputGradient: true) == 2 * (72 + 108))
        // Layers 0 (lowest: no input gradient, 20 per token) and 1 (24), 4 tokens, 2 epochs.
        #expect(work.adapterWork(lengths: [3, 1], epochs: 2, trainedLayers: [0, 1], targets: [.query], rank: 1) == 352)
    }
}
