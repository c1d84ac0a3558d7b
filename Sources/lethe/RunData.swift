import ArgumentParser
import Foundation
import Planning
import Store
import Support

/// Finding the dataset of a run.
enum RunData {
    /// The recorded dataset is missing or changed: a problem of the run's files (exit 1), not of
    /// the command line.
    struct Unavailable: Error, CustomStringConvertible {
        let description: String
    }

    /// The dataset the plan was made from: `override` (--data), or the file the plan records
    /// (relative to the run, whatever the working directory); its SHA-256 must match the plan's.
    static func dataset(for plan: Plan, run: URL, override: String?) throws -> Dataset {
        if let override {
            guard FileManager.default.fileExists(atPath: override) else {
                throw ValidationError("--data \(override): no such file; pass the file the plan was made from.")
            }
            let dataset = try Dataset.read(from: URL(fileURLWithPath: override), source: override)
            guard dataset.sha256 == plan.datasetSHA256 else {
                throw ValidationError("--data \(override) has SHA-256 \(dataset.sha256), the plan was made from "
                                      + "\(plan.datasetSHA256); pass the original file.")
            }
            return dataset
        }
        let url = plan.datasetURL(run: run)
        guard FileManager.default.fileExists(atPath: url.path), !InputFile.isPipe(url.path), !url.path.hasPrefix("/dev/") else {
            if ["/dev/stdin", "/dev/fd/", "/proc/"].contains(where: { url.path.hasPrefix($0) }) || InputFile.isPipe(url.path) {
                throw Unavailable(description: "the plan was made from data read through a pipe (it records "
                                  + "\(plan.datasetSource)), which holds it no more: pass --data with a file holding the "
                                  + "same data (SHA-256 \(plan.datasetSHA256)).")
            }
            throw Unavailable(description: "\(url.path): the plan's dataset is not there (the plan records "
                              + "\(plan.datasetSource)); restore it, or pass --data with the file the plan was made from.")
        }
        let dataset: Dataset
        do { dataset = try Dataset.read(from: url, source: url.path) } catch {
            // A file the plan was made from parsed then: one that no longer does was changed.
            if let digest = try? FileDigest.sha256(of: url), digest.hex != plan.datasetSHA256 {
                throw Unavailable(description: "\(error)\nThat file changed since the plan was made from it (SHA-256 "
                                  + "\(plan.datasetSHA256), now \(digest.hex)): restore it rather than edit it, or pass "
                                  + "--data with the original file.")
            }
            throw error
        }
        guard dataset.sha256 == plan.datasetSHA256 else {
            throw Unavailable(description: "\(url.path) has SHA-256 \(dataset.sha256), but the plan was made from "
                              + "\(plan.datasetSHA256): the file changed since; restore it, or pass --data with the "
                              + "original file.")
        }
        return dataset
    }
}
