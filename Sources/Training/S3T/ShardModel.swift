import Foundation
import Store
import Kernels
import Models
import Planning

/// Builds classifiers from stage tensors, and the served shard models of a run.
///
/// A served S3T shard model is the base encoder + the adapters of stages 1..p of its sequence
/// + the head of stage p (docs/DESIGN.md §1 "Serving"); a SISA model is stage p's file alone.
public enum ShardModel {
    /// A classifier with `adapters` (PEFT-named tensors) installed, fresh adapters on
    /// `extraLayers` that have none, and `head` loaded (fresh from `seed` when nil).
    public static func classifier(encoder: MiniLMEncoder, lora: LoRAConfiguration<LoRATarget>, settings: TrainingSettings,
                                  classCount: Int, adapters: [NamedTensor], head: [NamedTensor]?,
                                  extraLayers: [Int] = [], seed: UInt64) throws -> LoRAClassifier {
        let layers = Set(adapters.compactMap { StageCheckpoint.layerIndex(ofAdapter: $0.name) }).union(extraLayers)
        let model = try LoRAClassifier(encoder: encoder, lora: lora, adapterLayers: layers.sorted(),
                                       classCount: classCount, maxLength: settings.maxTokenCount, seed: seed)
        for tensor in adapters {
            guard let layer = StageCheckpoint.layerIndex(ofAdapter: tensor.name),
                  let slash = tensor.name.lastIndex(of: "/") else {
                throw TrainingError.fileInvalid(file: tensor.name, reason: "not an adapter tensor name")
            }
            let module = String(tensor.name[..<slash].dropFirst("encoder.layer.\(layer).".count))
            guard let target = LoRATarget(rawValue: module), let adapter = model.adapters[layer]?[target] else {
                throw TrainingError.fileInvalid(file: tensor.name, reason: "module \(module) is not a target of "
                    + "this run (\(lora.targets.map(\.rawValue).joined(separator: ", ")))")
            }
            let destination = tensor.name.hasSuffix("/lora_A") ? adapter.loraA : adapter.loraB
            guard destination.shape == tensor.shape else {
                throw TrainingError.fileInvalid(file: tensor.name, reason: "shape \(tensor.shape), expected \(destination.shape)")
            }
            for i in 0..<tensor.values.count { destination[i] = tensor.values[i] }
        }
        if let head {
            guard let weight = head.first(where: { $0.name == "weight" }), let bias = head.first(where: { $0.name == "bias" }),
                  weight.shape == model.head.weight.shape, bias.shape == model.head.bias.shape else {
                throw TrainingError.fileInvalid(file: "head", reason: "head tensors missing or of the wrong shape "
                    + "(expected weight \(model.head.weight.shape), bias \(model.head.bias.shape))")
            }
            model.head.load(weight: weight.values, bias: bias.values)
        }
        return model
    }

    /// The adapters of `layers` as PEFT-named tensors ("encoder.layer.N.<module>/lora_A|lora_B").
    public static func adapterTensors(of model: LoRAClassifier, layers: [Int]) -> [NamedTensor] {
        layers.flatMap { layer -> [NamedTensor] in
            (model.adapters[layer] ?? [:]).sorted { $0.key < $1.key }.flatMap { target, adapter in
                let base = "encoder.layer.\(layer).\(target.rawValue)"
                return [NamedTensor(name: base + "/lora_A", shape: adapter.loraA.shape, values: adapter.loraA.values),
                        NamedTensor(name: base + "/lora_B", shape: adapter.loraB.shape, values: adapter.loraB.values)]
            }
        }
    }

    public static func headTensors(of model: LoRAClassifier) -> [NamedTensor] {
        [NamedTensor(name: "weight", shape: model.head.weight.shape, values: model.head.weight.values),
         NamedTensor(name: "bias", shape: model.head.bias.shape, values: model.head.bias.values)]
    }

    /// The served model of one shard, loaded from its stage files (through `loadStage`).
    public static func served(_ entry: ServedComposition.Entry, strategy: TrainingStrategy, layout: RunLayout,
                              encoder: MiniLMEncoder, settings: TrainingSettings, classCount: Int,
                              loadStage: (URL) throws -> StageCheckpoint = StageCheckpoint.load(from:))
        throws -> LoRAClassifier {
        precondition(!entry.isDead, "shard \(entry.shard) is dead")
        var checkpoints: [StageCheckpoint] = []
        let stages = strategy == .s3t ? Array(1...entry.prefixLength) : [entry.prefixLength]
        for stage in stages {
            let url = layout.stageURL(shard: entry.shard, stage: stage, key: entry.stageKeys[stage - 1])
            do {
                checkpoints.append(try loadStage(url))
            } catch StoreError.fileNotFound {
                // A served stage gone from disk (removed by hand, a copy of the run without it).
                throw TrainingError.servedStageMissing(file: url.path, run: layout.directory.path)
            }
        }
        let model = try classifier(encoder: encoder, lora: try EncoderStageTrainer.loraConfiguration(settings),
                                   settings: settings, classCount: classCount,
                                   adapters: checkpoints.flatMap(\.adapters), head: checkpoints.last?.head, seed: 0)
        // A served model's adapters never change: lay them out once, not at every pass.
        model.prepareForInference()
        return model
    }
}
