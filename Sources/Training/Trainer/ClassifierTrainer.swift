import Kernels
import Models
import Support

/// One labelled, tokenized example.
public struct TrainingExample: Sendable, Equatable {
    public let ids: [Int32]
    public let label: Int
    public init(ids: [Int32], label: Int) { self.ids = ids; self.label = label }
}

/// Where a training run is, reported after every optimizer step.
public struct TrainingProgress: Sendable {
    public let epoch: Int, epochCount: Int
    /// 1-based optimizer step and the total.
    public let step: Int, stepCount: Int
    public let batchLoss: Float
    public let examplesSeen: Int
    public let realTokensSeen: Int
}

/// What a finished run did.
public struct TrainingReport: Sendable {
    public let stepCount: Int
    public let epochMeanLosses: [Float]
    public let examplesSeen: Int
    public let realTokensSeen: Int
    /// Token rows the trained layers ran on, padding included; batches are packed, so this
    /// equals `realTokensSeen` (benchmarks print the difference as the padding share).
    public let paddedTokensSeen: Int
    public let cache: ActivationCache.Report?
}

/// Trains the adapters of chosen layers and (optionally) the head of a `LoRAClassifier`.
///
/// Parameters, as S3T needs them (docs/DESIGN.md §1): layers with adapters = `model.adapters.keys`;
/// trainable layers = `trainableLayers` (each must carry adapters); every other adapter stays
/// active but frozen; the head trains iff `trainsHead`. The frozen layers below the lowest
/// adapter are run once per example through the `ActivationCache`; backpropagation stops at the
/// lowest trainable layer. Per step: forward, mean cross-entropy, backward, global-norm
/// clipping, AdamW with warmup + linear decay. Batches come from `LengthBucketBatcher`.
/// Determinism: with equal examples, configuration (seed, thread count) and initial weights,
/// the trained weights are bit-identical. Progress goes to the callback; nothing is printed.
public final class ClassifierTrainer {
    public let model: LoRAClassifier
    public let trainableLayers: [Int]
    public let trainsHead: Bool
    public let configuration: TrainingConfiguration
    private var moments: [ObjectIdentifier: (m: Tensor, v: Tensor)] = [:]
    /// `trainableLayers` as a set, for the per-layer checks of a step.
    private let trainableSet: Set<Int>

    /// Where the frozen layers' states come from: a store shared with other trainers on the
    /// same examples (the stages of one shard), or nil for a cache of this trainer's own.
    public let baseStates: BaseStates?

    public init(model: LoRAClassifier, trainableLayers: [Int], trainsHead: Bool = true,
                configuration: TrainingConfiguration, baseStates: BaseStates? = nil) throws {
        for l in trainableLayers where model.adapters[l] == nil { throw TrainingError.layerWithoutAdapters(layer: l) }
        guard !trainableLayers.isEmpty || trainsHead else {
            throw TrainingError.invalidConfiguration(field: "trainable", value: "nothing",
                                                     reason: "train at least one layer or the head")
        }
        self.model = model
        trainableSet = Set(trainableLayers)
        self.trainableLayers = trainableSet.sorted()
        self.trainsHead = trainsHead
        self.configuration = try configuration.validated()
        self.baseStates = configuration.usesActivationCache ? baseStates : nil
    }

    /// The first layer whose input comes from the cache (or is recomputed frozen).
    var baseLayer: Int { model.lowestAdapterLayer ?? model.layerCount }
    /// The lowest layer that gets a backward pass.
    var lowestTrainableLayer: Int { trainableLayers.first ?? model.layerCount }

    /// Trains on `examples`; returns what happened.
    public func train(_ examples: [TrainingExample],
                      progress: (TrainingProgress) -> Void = { _ in }) throws -> TrainingReport {
        guard !examples.isEmpty else { throw TrainingError.noExamples }
        for (i, e) in examples.enumerated() where !(0..<model.head.classCount).contains(e.label) {
            throw TrainingError.labelOutOfRange(example: i, label: e.label, classCount: model.head.classCount)
        }
        let c = configuration
        // OpenBLAS's thread count is process-global: change it only when it differs.
        if BLASRuntime.threadCount != c.threadCount { BLASRuntime.setThreadCount(c.threadCount) }
        let ids = examples.map(\.ids)
        let batcher = LengthBucketBatcher(lengths: ids.map(\.count), batchSize: c.batchSize,
                                          bucketWindow: c.bucketWindow, seed: c.seed)
        let stepsPerEpoch = batcher.batchCountPerEpoch
        let schedule = LearningRateSchedule(
            peak: c.learningRate, warmupStepCount: Int((Float(stepsPerEpoch * c.epochCount) * c.warmupFraction).rounded()),
            totalStepCount: stepsPerEpoch * c.epochCount)
        let cache = baseStates.map { ActivationCache(layer: baseLayer, sharing: $0) }
            ?? ActivationCache(layer: baseLayer, byteBudget: c.usesActivationCache ? c.cacheByteBudget : 0)
        cache.prefill(ids, model: model, threads: c.threadCount)
        // Layers whose adapters stay frozen run with the adapters folded into their weights
        // (float32 without dropout; see EncoderLayer.foldingAdapters), for the whole run.
        let layers = (baseLayer..<model.layerCount).map { l in
            let layer = model.layer(l)
            return trainableSet.contains(l) ? layer : layer.foldingAdapters() ?? layer
        }
        // Thread group g > 0 runs the trainable layers with gradient replicas of their adapters.
        let groupCount = min(c.threadCount, c.batchSize)
        let groupLayers = (0..<groupCount).map { g in
            g == 0 ? layers : layers.enumerated().map { i, layer in
                trainableSet.contains(baseLayer + i) ? layer.withAdapterGradientReplicas() : layer
            }
        }
        var step = 0, seen = 0, tokens = 0
        var epochLosses: [Float] = []
        for epoch in 0..<c.epochCount {
            var lossSum = 0.0
            let batches = batcher.batches(epoch: epoch)
            for members in batches {
                step += 1
                let lengths = members.map { ids[$0].count }
                let groups = Self.groupRanges(lengths: lengths, count: min(groupCount, members.count)).map { r in
                    SequenceGroup(sequences: r, lengths: Array(lengths[r]),
                                  input: cache.packedHiddenStates(examples: Array(members[r]), ids: ids, model: model,
                                                                  threads: c.threadCount))
                }
                let loss = trainStep(groupLayers: groupLayers, groups: groups,
                                     labels: members.map { Int32(examples[$0].label) }, step: step,
                                     learningRate: schedule.rate(at: step - 1))
                // A diverged step poisons every weight after it: stop before anything is kept.
                guard loss.isFinite else { throw TrainingError.nonFiniteLoss(stage: "training", step: step, loss: loss) }
                lossSum += Double(loss)
                seen += members.count
                tokens += lengths.reduce(0, +)
                progress(TrainingProgress(epoch: epoch + 1, epochCount: c.epochCount, step: step,
                                          stepCount: schedule.totalStepCount, batchLoss: loss, examplesSeen: seen,
                                          realTokensSeen: tokens))
            }
            epochLosses.append(Float(lossSum / Double(batches.count)))
        }
        return TrainingReport(stepCount: step, epochMeanLosses: epochLosses, examplesSeen: seen, realTokensSeen: tokens,
                              paddedTokensSeen: tokens, cache: c.usesActivationCache ? cache.report : nil)
    }

    /// Consecutive sequences of a batch that one thread trains end to end, packed
    /// (`ActivationCache.packedHiddenStates`): the layers run on real tokens only.
    struct SequenceGroup {
        /// Which of the batch's sequences.
        let sequences: Range<Int>
        let lengths: [Int]
        /// Their hidden states entering `baseLayer`, rows back to back.
        let input: Tensor
    }

    /// `count` consecutive, non-empty ranges of the sequences with about equal token counts: a
    /// sequence goes to the earlier group while the middle of it is not past that group's share
    /// of the total. They depend on the lengths and the count alone, so a thread count always
    /// cuts a batch the same way.
    static func groupRanges(lengths: [Int], count: Int) -> [Range<Int>] {
        precondition(count >= 1 && count <= lengths.count, "need 1 to \(lengths.count) groups, not \(count)")
        let total = lengths.reduce(0, +)
        var bounds = [0], rows = 0, next = 0
        for g in 1..<count {
            // Leave at least one sequence for each group still to come.
            while next < lengths.count - (count - g)
                    && (next == bounds[g - 1] || (2 * rows + lengths[next]) * count <= 2 * total * g) {
                rows += lengths[next]; next += 1
            }
            bounds.append(next)
        }
        bounds.append(lengths.count)
        return (0..<count).map { bounds[$0]..<bounds[$0 + 1] }
    }

    /// One step on a batch cut into `groups`: forward from `baseLayer` through the layers of
    /// each group, mean pooling, the head and the loss over the whole batch, backward to the
    /// lowest trainable layer in each group, one AdamW step; returns the batch's mean loss.
    ///
    /// With one group everything runs on the configured threads, each product split over them.
    /// With several, group g runs on its own thread with products single-threaded, on
    /// `groupLayers[g]` (the first group's are the model's layers, the others' carry gradient
    /// replicas of the trainable adapters): no thread waits for another inside a layer, which
    /// on short sequences is where a shared product loses its time. The replicas' gradients are
    /// then added in group order, so the same thread count gives the same bits; another count
    /// sums the rows' adapter gradients in another order. Each real row gets the bits it would
    /// get in a padded batch.
    func trainStep(groupLayers: [[EncoderLayer]], groups: [SequenceGroup], labels: [Int32], step: Int,
                   learningRate: Float) -> Float {
        let c = configuration
        let b = labels.count, k = model.head.classCount
        let top = model.layerCount
        let hiddenSize = model.encoder.configuration.hiddenSize
        let pooled = Tensor(shape: [b, hiddenSize])
        // Forward, each group to its pooled rows.
        let passes = eachGroup(groups) { g, group, threads in
            var inputs: [Int: Tensor] = [:]
            var saved: [Int: EncoderLayer.Activations] = [:]
            var h = group.input
            for l in baseLayer..<top {
                let layer = groupLayers[g][l - baseLayer]
                let a = EncoderLayer.Activations(for: layer, lengths: group.lengths, training: l >= lowestTrainableLayer)
                let y = Tensor.scratch(shape: h.shape)   // the layer's last LayerNorm writes every row
                let seed = g == 0 ? SplitMix64.derive(c.seed, step, l) : SplitMix64.derive(c.seed, step, l, g)
                layer.forward(h.pointer, mask: nil, activations: a, into: y.data, dropoutSeed: seed, threads: threads)
                if l >= lowestTrainableLayer { inputs[l] = h; saved[l] = a }
                h = y
            }
            MeanPooling.forward(h.pointer, lengths: group.lengths, into: pooled.data + group.sequences.lowerBound * hiddenSize,
                                columns: hiddenSize)
            return (inputs: inputs, saved: saved, rows: h.shape[0])
        }
        // The head and the loss, on the whole batch.
        let threads = c.threadCount
        let (logits, headSaved) = model.head.forward(pooled, batch: b)
        let logSumExp = Tensor(shape: [b])
        let dLogits = Tensor(shape: [b, k])
        let loss: Float = labels.withUnsafeBufferPointer { targets in
            let (loss, _) = CrossEntropy.forward(logits: logits.pointer, targets: targets.baseAddress!,
                                                 logSumExp: logSumExp.data, rows: b, classes: k, threads: threads)
            CrossEntropy.backward(dLoss: 1, logits: logits.pointer, targets: targets.baseAddress!,
                                  logSumExp: logSumExp.pointer, dLogits: dLogits.data, rows: b, classes: k,
                                  threads: threads)
            return loss
        }
        let dPooled = model.head.backward(dLogits: dLogits, saved: headSaved, batch: b, trainable: trainsHead)
        // Backward, each group from its pooled rows.
        if lowestTrainableLayer < top {
            _ = eachGroup(groups) { g, group, threads in
                let pass = passes[g]
                var dH = Tensor(shape: [pass.rows, hiddenSize])
                MeanPooling.backward(dY: dPooled.pointer + group.sequences.lowerBound * hiddenSize,
                                     lengths: group.lengths, dX: dH.data, columns: hiddenSize)
                for l in stride(from: top - 1, through: lowestTrainableLayer, by: -1) {
                    let dInput = l > lowestTrainableLayer ? Tensor(shape: dH.shape) : nil
                    // Layers above the trained ones pass the gradient down (through their adapters
                    // when not folded) but compute none for the adapters.
                    groupLayers[g][l - baseLayer].backward(dY: dH.pointer, x: pass.inputs[l]!.pointer,
                                                           activations: pass.saved[l]!, dInput: dInput?.data,
                                                           adapterGradients: trainableSet.contains(l), threads: threads)
                    if let dInput { dH = dInput }
                }
            }
        }
        for g in 1..<groups.count {
            for l in trainableLayers {
                let replica = groupLayers[g][l - baseLayer]
                for (t, a) in groupLayers[0][l - baseLayer].adapters { a.addGradients(of: replica.adapters[t]!) }
            }
        }
        AdamW.step(slots(), step: step, configuration: c.optimizer, learningRate: learningRate)
        for layers in groupLayers.prefix(groups.count) {
            for l in trainableLayers { for a in layers[l - baseLayer].adapters.values { a.zeroGradients() } }
        }
        model.head.zeroGradients()
        return loss
    }

    /// `body(g, group, threads)` for every group: one group inline on the configured threads,
    /// several each on a thread of its own with products single-threaded.
    private func eachGroup<T>(_ groups: [SequenceGroup], _ body: (Int, SequenceGroup, Int) -> T) -> [T] {
        guard groups.count > 1 else { return [body(0, groups[0], configuration.threadCount)] }
        do {
            return try Parallel.mapSingleThreaded(count: groups.count, threads: groups.count) { g in
                body(g, groups[g], 1)
            }
        } catch {
            preconditionFailure("a group's pass cannot throw: \(error)")
        }
    }

    /// Optimizer slots of the trainable parameters, in a fixed order (layer, target, A then B, head).
    private func slots() -> [AdamW.Slot] {
        var result: [AdamW.Slot] = []
        func add(_ value: Tensor, _ gradient: Tensor) {
            let key = ObjectIdentifier(value)
            let state = moments[key] ?? (Tensor(shape: value.shape), Tensor(shape: value.shape))
            moments[key] = state
            result.append(AdamW.Slot(value: value.data, gradient: gradient.data, firstMoment: state.m.data,
                                     secondMoment: state.v.data, count: value.count))
        }
        for l in trainableLayers {
            for (_, a) in (model.adapters[l] ?? [:]).sorted(by: { $0.key < $1.key }) {
                add(a.loraA, a.gradA); add(a.loraB, a.gradB)
            }
        }
        if trainsHead { add(model.head.weight, model.head.gradWeight); add(model.head.bias, model.head.gradBias) }
        return result
    }
}
