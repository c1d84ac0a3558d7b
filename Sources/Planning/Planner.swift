import Foundation
import Support

/// Builds the plan of a new run from a dataset and parameters.
public enum Planner {
    /// Partitions `dataset`, hashes every slice and selects every shard's sequences.
    ///
    /// Refuses (with a `PlanningError` naming the flag): invalid m, L, B or prior, B > L!, and
    /// more slices than examples (random assignment) or groups (group assignment). With group
    /// assignment the dataset must name at least one group.
    public static func makePlan(for dataset: Dataset, parameters: PlanParameters) throws -> Plan {
        try parameters.validate()
        if parameters.assignment == .group && !dataset.hasGroups {
            throw PlanningError.invalidValue(flag: "--assign", value: "group",
                                             reason: "\(dataset.source) has no \"group\" field; use --assign random")
        }
        let cells = try Partitioner.partition(dataset, shardCount: parameters.shardCount,
                                              sliceCount: parameters.sliceCount,
                                              assignment: parameters.assignment, seed: parameters.seed)
        var orderedIDs: [String] = []
        orderedIDs.reserveCapacity(dataset.examples.count)
        var offsets = [0]
        var hashes: [String] = []
        for shard in cells {
            for slice in shard {
                let ids = slice.map { dataset.examples[$0].id }.sorted(by: UTF8Order.precedes)
                hashes.append(SliceHash.of(sortedIDs: ids))
                orderedIDs.append(contentsOf: ids)
                offsets.append(orderedIDs.count)
            }
        }
        // Every shard has the same L slices and the same prior over them, so one selection serves all.
        let sequences = parameters.selection.sequences(
            sliceCount: parameters.sliceCount, budget: parameters.budget,
            prior: parameters.prior, exponent: parameters.bmsExponent)
        return try Plan(parameters: parameters, datasetSource: dataset.source, datasetSHA256: dataset.sha256,
                        exampleCount: dataset.examples.count, labels: dataset.labelVocabulary,
                        orderedIDs: orderedIDs, cellOffsets: offsets, cellHashes: hashes,
                        shardSequences: Array(repeating: sequences, count: parameters.shardCount),
                        tombstones: [], file: dataset.source)
    }
}

extension Planner {
    /// What `lethe plan` does: refuse an existing plan (unless `force`), read the data, plan,
    /// and save `plan.h5` crash-safely into `runDirectory` (created if missing).
    /// - Parameters:
    ///   - dataSource: how messages name the data file (the path as given).
    ///   - recordedSource: how the plan records it (`RunRelativePath.recorded`); `dataSource` if nil.
    public static func planRun(dataURL: URL, dataSource: String? = nil, recordedSource: String? = nil,
                               parameters: PlanParameters, runDirectory: URL, force: Bool) throws -> Plan {
        let planURL = Plan.url(inRun: runDirectory)
        if FileManager.default.fileExists(atPath: planURL.path) && !force {
            throw PlanningError.planExists(path: runDirectory.path)
        }
        try parameters.validate()
        let read = try Dataset.read(from: dataURL, source: dataSource)
        let dataset = recordedSource.map { Dataset(examples: read.examples, source: $0, sha256: read.sha256) } ?? read
        let plan = try makePlan(for: dataset, parameters: parameters)
        // Labelled data trains a classifier, which needs two labels at least: refused here, not
        // at training after the plan is made. (Text data, with no label, trains a decoder.)
        if plan.labels.count == 1 {
            throw PlanningError.invalidValue(flag: "--data", value: dataSource ?? dataURL.path, reason: "every example "
                + "has the label \"\(plan.labels.names[0])\"; a classifier learns to tell two or more labels apart. "
                + "Give data with at least two labels, or leave the labels out to train a decoder on the texts")
        }
        do {
            try FileManager.default.createDirectory(at: runDirectory, withIntermediateDirectories: true)
        } catch {
            throw PlanningError.invalidValue(flag: "--run", value: runDirectory.path,
                                             reason: "cannot create the directory (\(fileErrorReason(error)))")
        }
        try plan.save(to: planURL)
        return plan
    }
}
