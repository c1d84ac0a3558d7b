import ArgumentParser
import Foundation
import Models
import Planning
import Training

/// The stage trainer of an existing run, rebuilt from its saved settings (`RUN/train.json`),
/// for commands that train stages again: `lethe retrain` and `lethe verify --replay`.
struct RunTrainer {
    let runner: S3TRunner
    /// N, the base model's layers.
    let layerCount: Int

    /// - Parameters:
    ///   - data: the dataset, when not at the path the plan records.
    ///   - threads: must equal the saved thread count when given (bit-identity depends on it).
    ///   - forTraining: refuse a train.json that disagrees with the stages already trained
    ///     (false for a replay, which reports that disagreement as a finding instead).
    init(run: URL, data: String?, threads: Int?, forTraining: Bool = true, clock: @escaping () -> Double) throws {
        let layout = RunLayout(directory: run)
        guard FileManager.default.fileExists(atPath: layout.settingsURL.path) else {
            throw TrainingError.fileInvalid(file: layout.settingsURL.path, reason: TrainingSettings.missingReason(run: run))
        }
        let settings = try TrainingSettings.load(from: layout.settingsURL)
        if forTraining { try settings.requireMatchingStages(layout) }
        if let threads, threads != settings.threadCount {
            throw ValidationError("--threads \(threads): the run was trained with \(settings.threadCount) thread(s), and "
                                  + "stages are bit-identical only for equal thread counts; pass --threads "
                                  + "\(settings.threadCount) or leave it out.")
        }
        let plan = try Plan.load(from: Plan.url(inRun: run))
        let dataset = try RunData.dataset(for: plan, run: run, override: data)
        let (trainer, layers) = try TrainCommand.stageTrainer(run: run, settings: settings, plan: plan, dataset: dataset)
        runner = S3TRunner(layout: layout, settings: settings, trainer: trainer, labels: plan.labels.names, clock: clock)
        layerCount = layers
    }
}
