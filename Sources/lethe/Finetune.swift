import ArgumentParser
import CommandSupport
import Foundation
import Models
import Planning
import Support
import Training

/// `lethe finetune`: one LoRA classifier on all the data, the "full training" baseline.
///
/// A fine-tuned model is a run directory like any other: a plan of one shard, one slice and one
/// sequence (plan.h5, which holds the label vocabulary), the settings (train.json), one stage
/// checkpoint with every adapter, the head, the label names, the hyperparameters and the base
/// model's SHA-256 (stages/shard-0/…h5), and served.json. So `lethe evaluate`, `predict`,
/// `status`, `audit` and `verify` work on it unchanged, and `lethe train --strategy full` on
/// any plan trains the same thing (docs/FORMAT.md, "Fine-tuned models").
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune one LoRA classifier on all the data (the full-training baseline).",
        discussion: """
            Trains LoRA adapters on the top --layers encoder layers (default: all) and a \
            classification head on the mean-pooled output, with AdamW, warmup and linear decay, \
            length-bucketed batches and seeded shuffling; the same seed and thread count give \
            bit-identical weights. The model is written atomically into the --run directory (an \
            HDF5 checkpoint with PEFT adapter names; see docs/FORMAT.md). Running the same command \
            again after an interruption finishes the job; options that contradict the run's saved \
            settings are refused. The model is one stage of a run of one shard and one slice, so \
            the training options mean what they mean for `lethe train`. Encoders and labelled data \
            only: a decoder on text data trains with `lethe plan … --shards 1 --slices 1 --budget 1` \
            and `lethe train`.

            Examples:
              lethe finetune --data Datasets/bbc-news/train.jsonl --run Checkpoints/runs/bbc-full
              lethe finetune --data Datasets/bbc-news/train.jsonl --run Checkpoints/runs/bbc-top --layers 1 --text-field text+lead
              lethe evaluate --run Checkpoints/runs/bbc-full --data Datasets/bbc-news/test.jsonl
              lethe predict --run Checkpoints/runs/bbc-full --text "Shares rise as profits beat forecasts"

            \(ExitStatus.help())
            """)

    @Option(help: "Training data, JSON Lines: one {\"id\", \"text\", \"label\", …} object per line.")
    var data: String
    @Option(name: .customLong("run"), help: "Run directory for the model (created if missing).")
    var out: String
    @Option(help: """
        Train LoRA adapters on the top N encoder layers, \(rangeText(TrainingSettings.Limits.layersPerBlock)) and at \
        most the model's layers (6 for MiniLM). Default: every layer.
        """)
    var layers: Int?
    @OptionGroup var options: TrainingOptions
    @Flag(help: "One JSON line per event instead of text.")
    var json = false

    func validate() throws {
        try OptionBounds(TrainingSettings.Limits.layersPerBlock).check(layers, option: "--layers")
        try RunOptions.checkUTF8(out, option: "--run")
        try InputFiles.check([("--data", data)])
        if InputFile.isPipe(data) {
            // Planning reads it to its end, and training reads --data again.
            throw ValidationError("--data \(data) is a pipe: finetune reads its data twice (to plan the run and to "
                                  + "train it); write the data to a file and pass that.")
        }
        if let model = options.model, model.lowercased().hasSuffix(".gguf") {
            throw ValidationError("--model \(model): finetune trains an encoder classifier (a MiniLM-style directory "
                                  + "with config.json); a decoder trains with `lethe plan … --shards 1 --slices 1 "
                                  + "--budget 1` and `lethe train`.")
        }
    }

    func run() throws {
        let directory = URL(fileURLWithPath: out)
        // The model is checked before the plan is written, so a wrong --model leaves nothing behind.
        let modelDirectory = try TrainingOptions.weightsFile(options.model).deletingLastPathComponent().path
        let layerCount = try BertConfiguration(contentsOf: modelDirectory + "/config.json").layerCount
        if let layers, !(1...layerCount).contains(layers) {
            throw ValidationError("--layers \(layers): give 1…\(layerCount) (the model has \(layerCount) layers).")
        }
        // One finetune at a time per run: a second would train beside the first, and its refusal
        // would clean up files the first made. The lock file is made with the directory.
        let existed = FileManager.default.fileExists(atPath: directory.path)
        do { try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true) } catch {
            throw ValidationError("--run \(out): cannot create the directory (\(fileErrorReason(error))).")
        }
        try OutputDirectoryLock.holding(directory, command: "finetune", refusal: "--run \(out): another `lethe finetune` is "
                                        + "training there; wait for it to finish (running this again afterwards resumes or "
                                        + "confirms it)") { guardFile in
            try finetune(directory: directory, layerCount: layerCount, guardFile: guardFile, created: !existed)
        }
    }

    private func finetune(directory: URL, layerCount: Int, guardFile: URL, created: Bool) throws {
        let layout = RunLayout(directory: directory)
        let planURL = Plan.url(inRun: directory)
        let planned = !FileManager.default.fileExists(atPath: planURL.path)
        do {
            let plan: Plan
            if !planned {
                plan = try Plan.load(from: planURL)
                guard plan.shardCount == 1, plan.sliceCount == 1, plan.budget == 1 else {
                    throw ValidationError("\(out) holds an S3T run (\(plan.shardCount) shards × \(plan.sliceCount) slices), "
                                          + "not a fine-tuned model; choose another --run, or use `lethe train --run \(out)`.")
                }
            } else {
                plan = try Planner.planRun(dataURL: URL(fileURLWithPath: data), dataSource: data,
                                           recordedSource: RunRelativePath.recorded(data, run: directory),
                                           parameters: PlanParameters(shardCount: 1, sliceCount: 1, budget: 1,
                                                                      seed: options.seed ?? 0),
                                           runDirectory: directory, force: false)
            }
            guard plan.labels.count > 0 else {
                throw ValidationError("--data \(data): the examples have no labels (text data), and finetune trains an "
                                      + "encoder classifier; a decoder trains on text data with `lethe plan --data \(data) "
                                      + "--shards 1 --slices 1 --budget 1 --run DIR` and `lethe train --run DIR`.")
            }
            // A resumed model keeps its saved layer count unless --layers names one.
            let resumed = FileManager.default.fileExists(atPath: layout.settingsURL.path)
            let settings = try options.resolveSettings(layout: layout, strategy: .full,
                                                       layersPerBlock: layers ?? (resumed ? nil : layerCount)) { _ in
                if plan.labels.count < 2 { throw TrainingError.tooFewLabels(names: plan.labels.names) }
            }
            try TrainCommand.train(layout: layout, settings: settings, shards: [], data: data, json: json)
        } catch {
            // A call that planned the run and trained nothing leaves nothing behind: the
            // corrected call (other data, other settings) starts clean. It holds the finetune
            // lock, so these are its own files.
            if planned, layout.anyStageFile() == nil, !FileManager.default.fileExists(atPath: layout.ledgerURL.path) {
                for file in [planURL, layout.settingsURL, layout.lockURL] { try? FileManager.default.removeItem(at: file) }
                if created {
                    try? FileManager.default.removeItem(at: guardFile)
                    rmdir(directory.path)  // only if now empty
                }
            }
            throw error
        }
        if !json {
            print("fine-tuned model in \(out): evaluate with `lethe evaluate --run \(out) --data TEST.jsonl`")
        }
    }
}
