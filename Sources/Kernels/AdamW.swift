/// AdamW (decoupled weight decay, Loshchilov & Hutter) with global gradient-norm clipping.
///
/// Per element, at 1-based step t with learning rate η, after clipping g ← g·c:
///     θ ← θ·(1 − η·λ)
///     m ← β1·m + (1 − β1)·g,   v ← β2·v + (1 − β2)·g²
///     θ ← θ − η/(1 − β1ᵗ) · m / (√v/√(1 − β2ᵗ) + ε)
/// which is PyTorch's `torch.optim.AdamW` order of operations. Clipping: with the global norm
/// ‖g‖ over all parameters (summed in Double, in slot order), c = min(1, maxNorm/(‖g‖ + 1e-6))
/// as in `torch.nn.utils.clip_grad_norm_`.
///
/// Shape glossary: each slot is a flat parameter θ with gradient g, moments m, v, all `count`.
public enum AdamW {
    /// Hyperparameters; defaults are PyTorch's except weight decay (0.01 there too).
    public struct Configuration: Sendable, Equatable, Codable {
        public var learningRate: Float
        public var beta1: Float
        public var beta2: Float
        public var epsilon: Float
        public var weightDecay: Float
        /// Clip the global gradient norm to this value; nil = no clipping.
        public var maxGradientNorm: Float?

        public init(learningRate: Float, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8,
                    weightDecay: Float = 0.01, maxGradientNorm: Float? = 1.0) {
            self.learningRate = learningRate; self.beta1 = beta1; self.beta2 = beta2
            self.epsilon = epsilon; self.weightDecay = weightDecay; self.maxGradientNorm = maxGradientNorm
        }
    }

    /// One trainable parameter and its optimiser state, all caller-owned and `count` long.
    public struct Slot {
        public var value: UnsafeMutablePointer<Float>
        public var gradient: UnsafeMutablePointer<Float>
        public var firstMoment: UnsafeMutablePointer<Float>
        public var secondMoment: UnsafeMutablePointer<Float>
        public var count: Int
        public init(value: UnsafeMutablePointer<Float>, gradient: UnsafeMutablePointer<Float>,
                    firstMoment: UnsafeMutablePointer<Float>, secondMoment: UnsafeMutablePointer<Float>,
                    count: Int) {
            self.value = value; self.gradient = gradient
            self.firstMoment = firstMoment; self.secondMoment = secondMoment; self.count = count
        }
    }

    /// √(Σ g²) over all slots, accumulated in Double in slot and element order.
    public static func globalGradientNorm(_ slots: [Slot]) -> Float {
        var total = 0.0
        for s in slots {
            var acc = Float8()
            var sum = 0.0
            var j = 0
            // Blocks of 1024 elements in float lanes, added into Double: accurate and fast.
            while j < s.count {
                let w = min(1024, s.count - j)
                acc = Float8()
                forEach8(w) { i, l in let g = loadPartial(s.gradient + j + i, l); acc += g * g }
                sum += Double(acc.sum())
                j += w
            }
            total += sum
        }
        return Float(total.squareRoot())
    }

    /// Clips (if configured) and applies one update at 1-based `step`; returns the global
    /// gradient norm before clipping. Gradients are left as they were (callers zero them).
    @discardableResult
    public static func step(_ slots: [Slot], step t: Int, configuration c: Configuration,
                            learningRate: Float? = nil) -> Float {
        precondition(t >= 1, "AdamW step is 1-based, got \(t)")
        let norm = globalGradientNorm(slots)
        var clip: Float = 1
        if let maxNorm = c.maxGradientNorm, norm.isFinite {
            clip = min(1, maxNorm / (norm + 1e-6))
        }
        let lr = learningRate ?? c.learningRate
        let bias1 = 1 - Float(pow(Double(c.beta1), Double(t)))
        let bias2 = 1 - Float(pow(Double(c.beta2), Double(t)))
        for s in slots {
            update(s, clip: clip, learningRate: lr, bias1: bias1, bias2Root: bias2.squareRoot(), c)
        }
        return norm
    }

    @inline(__always)
    static func update(_ s: Slot, clip: Float, learningRate lr: Float, bias1: Float, bias2Root: Float,
                       _ c: Configuration) {
        let decay = Float8(repeating: 1 - lr * c.weightDecay)
        let b1 = Float8(repeating: c.beta1), b2 = Float8(repeating: c.beta2)
        let stepSize = Float8(repeating: lr / bias1)
        let eps = Float8(repeating: c.epsilon), rb2 = Float8(repeating: bias2Root)
        forEach8(s.count) { j, w in
            let g = loadPartial(s.gradient + j, w) * clip
            let m = b1 * loadPartial(s.firstMoment + j, w) + (1 - b1) * g
            let v = b2 * loadPartial(s.secondMoment + j, w) + (1 - b2) * g * g
            let p = loadPartial(s.value + j, w) * decay - stepSize * m / (v.squareRoot() / rb2 + eps)
            storePartial(m, s.firstMoment + j, w)
            storePartial(v, s.secondMoment + j, w)
            storePartial(p, s.value + j, w)
        }
    }
}

import Foundation
