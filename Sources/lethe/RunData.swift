import ArgumentParser
import Foundation
import Planning

/// Finding the dataset of a run.
enum RunData {
    /// The dataset the plan was made from: `override`, or the path recorded in the plan; its
    /// SHA-256 must match the plan's.
    static func dataset(for plan: Plan, override: String?) throws -> Dataset {
        let path = override ?? plan.datasetSource
        guard FileManager.default.fileExists(atPath: path) else {
            throw ValidationError("the plan's dataset \(path) is not there; pass --data with the file the plan was made from.")
        }
        let dataset = try Dataset.read(from: URL(fileURLWithPath: path), source: path)
        guard dataset.sha256 == plan.datasetSHA256 else {
            throw ValidationError("\(path) has SHA-256 \(dataset.sha256), the plan was made from \(plan.datasetSHA256); "
                                  + "pass --data with the original file.")
        }
        return dataset
    }
}
