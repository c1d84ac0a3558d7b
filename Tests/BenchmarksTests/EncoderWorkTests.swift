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
}
