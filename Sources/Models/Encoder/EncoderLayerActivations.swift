import Kernels

extension EncoderLayer {
    /// What forward saves for backward, plus backward's scratch, for one (batch, tokens) size,
    /// or for one set of packed sequences (`init(for:lengths:training:)`: no padding rows).
    /// Allocate once per layer and size; reuse across steps. The buffers are not zero-filled:
    /// forward and backward write every element before reading it. For a forward pass alone
    /// (`training: false`) GELU′ is neither stored nor computed and backward's scratch is never
    /// allocated: inference then touches about half the memory.
    public final class Activations: @unchecked Sendable {
        public let batch: Int
        public let tokens: Int
        /// Made for a pass that backward follows (GELU′ saved, backward's scratch on demand).
        public let training: Bool
        /// Rows of every [N, …] buffer: batch·tokens, or the sum of the packed lengths.
        public let rows: Int
        let attentionShape: Attention.Shape
        var dropoutSeed: UInt64 = 0
        // Saved by forward ([N, C] unless noted).
        let qkv: Tensor                    // q | k | v side by side [N, 3C]
        let probabilities: Tensor          // [B, H, T, T]; packed: [H, T_b, T_b] per sequence
        let context: Tensor
        let attentionSum: Tensor           // c·Woᵀ + bo + x, input of LN₁
        let mean1, rstd1: Tensor           // [N]
        /// LN₁ output h (input of the FFN).
        public let hidden: Tensor
        let activated: Tensor              // GELU(f) [N, F] (f before GELU runs in place)
        let geluDerivative: Tensor         // GELU′(f) [N, F]; empty for a forward pass alone
        let outputSum: Tensor              // g·Wdᵀ + bd + h, input of LN₂
        let mean2, rstd2: Tensor
        let lora: [LoRATarget: SavedLoRA]
        private let sizes: (c: Int, f: Int, r: Int)
        /// Made by the first backward.
        lazy var gradients = Gradients(n: rows, c: sizes.c, f: sizes.f, r: sizes.r)

        struct SavedLoRA {
            let xa: Tensor                 // [N, r]
            let xDropped: Tensor?          // [N, in] when dropout is on
        }

        /// Backward's intermediate gradients (scratch, not results). dOutputSum turns into
        /// dHidden and dActivated into dPreActivation in place.
        final class Gradients {
            let dOutputSum, dAttentionSum, dContext, dQKV: Tensor
            let dActivated: Tensor
            let loraScratch: Tensor
            init(n: Int, c: Int, f: Int, r: Int) {
                dOutputSum = .scratch(shape: [n, c])
                dAttentionSum = .scratch(shape: [n, c]); dContext = .scratch(shape: [n, c])
                dQKV = .scratch(shape: [n, 3 * c])
                dActivated = .scratch(shape: [n, f])
                loraScratch = .scratch(shape: [n, max(r, 1)])
            }
        }

        /// Buffers for `layer` on `batch` sequences of `tokens` tokens (`training: false` for
        /// a forward pass that is never followed by backward).
        public convenience init(for layer: EncoderLayer, batch: Int, tokens: Int, training: Bool = true) {
            let c = layer.configuration.hiddenSize
            self.init(for: layer, training: training,
                      shape: Attention.Shape(batch: batch, tokens: tokens, heads: layer.configuration.headCount,
                                             headSize: layer.configuration.headSize,
                                             queryRowStride: 3 * c, keyValueRowStride: 3 * c))
        }

        /// Buffers for packed sequences of `lengths` tokens, rows back to back: the layer then
        /// runs on real tokens only, and `forward` takes no mask.
        public convenience init(for layer: EncoderLayer, lengths: [Int], training: Bool = true) {
            let c = layer.configuration.hiddenSize
            self.init(for: layer, training: training,
                      shape: Attention.Shape(lengths: lengths, heads: layer.configuration.headCount,
                                             headSize: layer.configuration.headSize,
                                             queryRowStride: 3 * c, keyValueRowStride: 3 * c))
        }

        private init(for layer: EncoderLayer, training: Bool, shape: Attention.Shape) {
            let c = layer.configuration.hiddenSize, f = layer.configuration.intermediateSize
            let n = shape.rows
            self.batch = shape.batch; self.tokens = shape.tokens; self.rows = n; self.training = training
            attentionShape = shape
            qkv = .scratch(shape: [n, 3 * c])
            probabilities = .scratch(shape: [shape.probabilityCount])
            context = .scratch(shape: [n, c]); attentionSum = .scratch(shape: [n, c])
            mean1 = .scratch(shape: [n]); rstd1 = .scratch(shape: [n])
            hidden = .scratch(shape: [n, c])
            activated = .scratch(shape: [n, f])
            geluDerivative = .scratch(shape: training ? [n, f] : [0])
            outputSum = .scratch(shape: [n, c]); mean2 = .scratch(shape: [n]); rstd2 = .scratch(shape: [n])
            var saved: [LoRATarget: SavedLoRA] = [:]
            var rank = 0
            for (t, a) in layer.adapters {
                rank = a.rank
                saved[t] = SavedLoRA(xa: .scratch(shape: [n, a.rank]),
                                     xDropped: layer.loraDropout > 0 ? .scratch(shape: [n, a.inFeatures]) : nil)
            }
            lora = saved
            sizes = (c, f, rank)
        }
    }
}
