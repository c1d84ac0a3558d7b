import Foundation
import Kernels
import Support

/// Which parts of a Llama decoder train: a LoRA configuration on chosen projections (the same
/// type the encoder uses) and, optionally, full fine-tuning of chosen matrices, in chosen layers.
public struct LlamaAdapterConfiguration: Sendable, Equatable {
    /// The LoRA pairs (`lora_A` [r, in], `lora_B` [out, r]) in every adapted layer; nil when
    /// only full matrices train.
    public let lora: LoRAConfiguration<LlamaProjection>?
    /// Projections trained in full (a trainable copy; the base weights stay frozen for θ0).
    public let fullTargets: [LlamaProjection]
    /// Layers adapted (nil = all).
    public let layers: [Int]?

    /// Rejects a projection listed as both LoRA and full, and a configuration that trains nothing.
    public init(lora: LoRAConfiguration<LlamaProjection>?, fullTargets: [LlamaProjection] = [],
                layers: [Int]? = nil) throws {
        if let both = lora?.targets.first(where: fullTargets.contains) {
            throw ModelsError.invalidValue(field: "full_modules", value: both.rawValue,
                                           reason: "a projection is either LoRA-adapted or fully trained, not both")
        }
        guard lora != nil || !fullTargets.isEmpty else {
            throw ModelsError.invalidValue(field: "target_modules", value: "[]",
                                           reason: "name at least one LoRA or fully trained module")
        }
        self.lora = lora; self.fullTargets = Array(Set(fullTargets)).sorted(); self.layers = layers
    }

    /// LoRA rank `rank` with alpha `alpha` on `targets` (all projections by default); an empty
    /// `targets` list means full fine-tuning of `fullTargets` only.
    public init(rank: Int = 8, alpha: Float = 16, targets: [LlamaProjection] = LlamaProjection.allCases,
                fullTargets: [LlamaProjection] = [], layers: [Int]? = nil, useRSLoRA: Bool = false) throws {
        let lora = targets.isEmpty ? nil : try LoRAConfiguration(rank: rank, alpha: alpha, targets: targets,
                                                                 useRSLoRA: useRSLoRA)
        try self.init(lora: lora, fullTargets: fullTargets, layers: layers)
    }

    /// The LoRA rank (0 without LoRA pairs).
    public var rank: Int { lora?.rank ?? 0 }
    /// The LoRA projections (none without LoRA pairs).
    public var targets: [LlamaProjection] { lora?.targets ?? [] }
    /// The LoRA factor: α/r, or α/√r with rsLoRA.
    public var scale: Float { lora?.scale ?? 0 }
}

/// The trainable state of a Llama decoder: LoRA pairs and full-weight copies, each with a
/// gradient and AdamW moments. B starts at zero, so a fresh adapter leaves the model unchanged.
public final class LlamaAdapter: @unchecked Sendable {
    /// One trainable tensor with its gradient and optimiser moments.
    public final class Parameter: @unchecked Sendable {
        public let name: String
        public let value: Tensor
        public let gradient: Tensor
        let firstMoment: Tensor
        let secondMoment: Tensor
        init(name: String, value: Tensor) {
            self.name = name; self.value = value
            gradient = Tensor(shape: value.shape)
            firstMoment = Tensor(shape: value.shape)
            secondMoment = Tensor(shape: value.shape)
        }
        /// The same value with a gradient of its own and no optimiser moments (a replica never steps).
        init(sharingValueOf other: Parameter) {
            name = other.name; value = other.value
            gradient = Tensor(shape: value.shape)
            firstMoment = Tensor(shape: [0])
            secondMoment = Tensor(shape: [0])
        }
        var slot: AdamW.Slot {
            AdamW.Slot(value: value.data, gradient: gradient.data, firstMoment: firstMoment.data,
                       secondMoment: secondMoment.data, count: value.count)
        }
    }

    /// A LoRA pair on one projection.
    public struct LoRAPair: @unchecked Sendable {
        public let a: Parameter  // lora_A [r, in]
        public let b: Parameter  // lora_B [out, r]
    }

    public let configuration: LlamaAdapterConfiguration
    /// lora[layer][projection]
    public let lora: [[LlamaProjection: LoRAPair]]
    /// full[layer][projection]: trainable copies of base matrices.
    public let full: [[LlamaProjection: Parameter]]
    /// Every parameter in a fixed order (layer, then projection order, A before B, then full).
    public let parameters: [Parameter]
    /// Layers whose parameters stay as they are: active in the forward pass, skipped by `step`
    /// (an S3T stage trains its block with the blocks of earlier stages frozen above it).
    public var frozenLayers: Set<Int> = []

    /// The lowest layer with a LoRA pair or a trained copy; nil for an adapter with none. The
    /// layers below it run as the frozen base does.
    public var lowestLayer: Int? {
        lora.indices.first { !lora[$0].isEmpty || !full[$0].isEmpty }
    }

    /// The layer of a parameter named "layers.L.…".
    public static func layer(of parameter: Parameter) -> Int? {
        guard parameter.name.hasPrefix("layers.") else { return nil }
        return Int(parameter.name.dropFirst("layers.".count).prefix { $0.isNumber })
    }

    /// The parameters `step` updates: all but those of `frozenLayers`.
    public var trainableParameters: [Parameter] {
        frozenLayers.isEmpty ? parameters : parameters.filter { Self.layer(of: $0).map { !frozenLayers.contains($0) } ?? true }
    }

    /// A fresh adapter: A ~ U(−1/√in, 1/√in) from `seed` (PEFT's Kaiming-uniform bound), B = 0;
    /// full targets start as copies of the base weights.
    public init(configuration: LlamaAdapterConfiguration, weights: LlamaWeights, seed: UInt64) {
        self.configuration = configuration
        let model = weights.configuration
        let layerSet = Set(configuration.layers ?? Array(0 ..< model.layerCount))
        var rng = SplitMix64(seed: seed)
        var lora: [[LlamaProjection: LoRAPair]] = []
        var full: [[LlamaProjection: Parameter]] = []
        var parameters: [Parameter] = []
        for l in 0 ..< model.layerCount {
            var pairs: [LlamaProjection: LoRAPair] = [:]
            var copies: [LlamaProjection: Parameter] = [:]
            if layerSet.contains(l) {
                for target in LlamaProjection.allCases where configuration.targets.contains(target) {
                    let (o, i) = target.shape(model)
                    let a = Tensor(shape: [configuration.rank, i])
                    let bound = 1 / Float(i).squareRoot()
                    for j in 0 ..< a.count { a[j] = bound * (2 * Float(rng.next() >> 40) / Float(1 << 24) - 1) }
                    let pair = LoRAPair(a: Parameter(name: "layers.\(l).\(target.rawValue).lora_A", value: a),
                                        b: Parameter(name: "layers.\(l).\(target.rawValue).lora_B",
                                                     value: Tensor(shape: [o, configuration.rank])))
                    pairs[target] = pair
                    parameters += [pair.a, pair.b]
                }
                for target in LlamaProjection.allCases where configuration.fullTargets.contains(target) {
                    let base = weights.layers[l].matrix(target)
                    let copy = Tensor(shape: base.shape)
                    copy.copy(from: base)
                    let p = Parameter(name: "layers.\(l).\(target.rawValue).weight", value: copy)
                    copies[target] = p
                    parameters.append(p)
                }
            }
            lora.append(pairs)
            full.append(copies)
        }
        self.lora = lora; self.full = full; self.parameters = parameters
    }

    private init(configuration: LlamaAdapterConfiguration, lora: [[LlamaProjection: LoRAPair]],
                 full: [[LlamaProjection: Parameter]], parameters: [Parameter]) {
        self.configuration = configuration; self.lora = lora; self.full = full; self.parameters = parameters
    }

    /// An adapter that reads this one's values but accumulates into gradients of its own, so
    /// several threads can run backward passes at once and `addGradients(of:)` sums them after.
    /// It has no optimiser state: only the original steps.
    public func gradientReplica() -> LlamaAdapter {
        var replicas: [ObjectIdentifier: Parameter] = [:]
        for p in parameters { replicas[ObjectIdentifier(p)] = Parameter(sharingValueOf: p) }
        func replica(_ p: Parameter) -> Parameter { replicas[ObjectIdentifier(p)]! }
        return LlamaAdapter(configuration: configuration,
                            lora: lora.map { $0.mapValues { LoRAPair(a: replica($0.a), b: replica($0.b)) } },
                            full: full.map { $0.mapValues(replica) },
                            parameters: parameters.map(replica))
    }

    /// Adds the gradients of `replica` (made by `gradientReplica()`) into this adapter's.
    public func addGradients(of replica: LlamaAdapter) {
        precondition(replica.parameters.count == parameters.count, "not a replica of this adapter")
        for (p, r) in zip(parameters, replica.parameters) {
            precondition(p.value === r.value, "\(r.name) is not a replica of \(p.name)")
            p.gradient.add(r.gradient)
        }
    }

    /// Number of trainable floats.
    public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }

    /// Sets every gradient to zero (backward accumulates).
    public func zeroGradients() { for p in parameters { p.gradient.zero() } }

    /// One AdamW update of the trainable parameters at 1-based `step`; returns their gradient
    /// norm before clipping.
    @discardableResult
    public func step(_ step: Int, optimizer: AdamW.Configuration, learningRate: Float? = nil) -> Float {
        AdamW.step(trainableParameters.map(\.slot), step: step, configuration: optimizer, learningRate: learningRate)
    }
}
