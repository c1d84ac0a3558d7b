import Foundation
import Kernels
import Store

/// The HDF5 form of a stage checkpoint (docs/FORMAT.md, "Stage checkpoints").
///
///     /                       attributes: format, format_version, lineage, record, tensors_sha256,
///                             labels (optional: class names of the head's rows),
///                             precision (optional: fp32 when absent),
///                             model_kind (optional: encoder when absent; a decoder's stage has no /head)
///     /adapters/encoder.layer.N.<module>/lora_A   float32 [r, in]
///     /adapters/encoder.layer.N.<module>/lora_B   float32 [out, r]
///     /head/weight            float32 [classes, hidden]
///     /head/bias              float32 [classes]
///
/// Written with `HDF5File.writeAtomically` (temporary file, fsync, rename, directory fsync), so
/// a stage file that exists under its final name is complete: that is what makes `lethe train`
/// resumable after a kill. Sealed (`HDF5Seal`): the seal is checked before HDF5 reads the file.
extension StageCheckpoint {
    public static let formatName = "lethe-stage"
    /// Version 3 records no training time, so two trainings alike write equal files byte for
    /// byte (the time goes to `RunLayout.timingsURL`); version 2 has `wall_time_seconds`, and
    /// version 1 the same content as 2 without a seal (read when sealed). Readers of version 2
    /// require the time, so they refuse version 3.
    public static let formatVersion: Int64 = 3
    /// The versions this build reads (only behind a valid seal).
    public static let readableVersions: ClosedRange<Int64> = 1...3

    /// Writes the checkpoint atomically to `url` (replacing any file there).
    public func save(to url: URL) throws {
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(),
                                                withIntermediateDirectories: true)
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            for tensor in storedTensors {
                try file.write(tensor.values, shape: tensor.shape, at: tensor.name)
            }
            let l = lineage, r = record
            let attributes: [(String, AttributeValue)] = [
                ("format", .string(Self.formatName)),
                ("format_version", .int(Self.formatVersion)),
                ("strategy", .string(r.strategy.rawValue)),
                ("shard", .int(Int64(l.shard))),
                ("sequences", .ints(l.sequences.map(Int64.init))),
                ("stage", .int(Int64(l.stage))),
                ("block_layers", .ints(l.blockLayers.map(Int64.init))),
                ("prefix_slices", .ints(l.prefixSlices.map(Int64.init))),
                ("prefix_slice_hashes", .strings(l.prefixSliceHashes)),
                ("stage_key", .string(l.key.hex)),
                ("parent_stage_key", .string(l.parentKey?.hex ?? "")),
                ("base_model_sha256", .string(r.baseModelSHA256)),
                ("hyperparameters", .string(r.hyperparametersJSON)),
                ("seed", .string(String(r.seed))),
                ("thread_count", .int(Int64(r.threadCount))),
                ("software_version", .string(r.softwareVersion)),
                ("training_loss", .double(r.trainingLoss)),
                ("examples_seen", .int(Int64(r.examplesSeen))),
                ("precision", .string(r.precision.rawValue)),
                ("tensors_sha256", .string(tensorsSHA256)),
            ]
            for (name, value) in attributes { try file.setAttribute(value, named: name) }
            if !r.labels.isEmpty { try file.setAttribute(.strings(r.labels), named: "labels") }
            if r.modelKind != .encoder { try file.setAttribute(.string(r.modelKind.rawValue), named: "model_kind") }
            if !r.kernels.isEmpty { try file.setAttribute(.string(r.kernels), named: "kernels") }
        }
    }

    /// The `precision` attribute (absent in files written before it existed: float32).
    /// An optional string attribute naming a case of `T` (`absent` when the file lacks it).
    private static func choice<T: RawRepresentable & CaseIterable>(_ name: String, of file: HDF5File, path: String,
                                                                 absent: T) throws -> T where T.RawValue == String {
        guard try file.hasAttribute(named: name) else { return absent }
        let value = try file.stringAttribute(named: name)
        guard let choice = T(rawValue: value) else {
            throw TrainingError.fileInvalid(file: path, reason: "attribute \(name) is \"\(value)\"; expected one of "
                                            + T.allCases.map(\.rawValue).joined(separator: ", "))
        }
        return choice
    }

    /// A file at a stage's place in a run (`shard-K/stage-I-<key>.h5`) must hold that stage: a
    /// sealed file copied or renamed into another slot (another stage, shard or key — say, one
    /// a forget erased) would otherwise be loaded as the one its name promises. Returns the
    /// first attribute that disagrees with the path; nil for a file named otherwise.
    public static func slotMismatch(_ url: URL, shard: Int, stage: Int, key: String)
        -> (field: String, expected: String, found: String)? {
        let name = url.lastPathComponent
        guard name.hasPrefix("stage-"), name.hasSuffix(".h5") else { return nil }
        let parts = name.dropFirst("stage-".count).dropLast(".h5".count).split(separator: "-", maxSplits: 1)
        // Only the names a run gives its stages (`stage-<n>-<64 hex digits>.h5`) promise a slot.
        guard parts.count == 2, parts[1].count == 64, parts[1].allSatisfy(\.isHexDigit) else { return nil }
        if String(parts[1]) != key { return ("stage_key", String(parts[1]), key) }
        if String(parts[0]) != String(stage) { return ("stage", String(parts[0]), String(stage)) }
        let folder = url.deletingLastPathComponent().lastPathComponent
        if folder.hasPrefix("shard-"), folder != "shard-\(shard)" {
            return ("shard", String(folder.dropFirst("shard-".count)), String(shard))
        }
        return nil
    }

    /// Reads and checks a stage checkpoint: format and version, every attribute, the tensors,
    /// and that the tensors hash to the recorded `tensors_sha256`.
    public static func load(from url: URL) throws -> StageCheckpoint {
        let path = url.path
        let file = try HDF5File.openSealed(url) { TrainingError.damagedStage(file: path, reason: $0) }
        defer { try? file.close() }
        func need<T>(_ name: String, _ read: (String) throws -> T) throws -> T {
            guard try file.hasAttribute(named: name) else {
                throw TrainingError.checkpointIncomplete(file: path, missing: "attribute \(name)")
            }
            return try read(name)
        }
        let format = try need("format") { try file.stringAttribute(named: $0) }
        let version = try need("format_version") { try file.intAttribute(named: $0) }
        guard format == formatName, readableVersions.contains(version) else {
            throw TrainingError.unsupportedFormat(file: path, expected: "\(formatName) v\(formatVersion)",
                                                  found: "\(format) v\(version)")
        }
        let strategyName = try need("strategy") { try file.stringAttribute(named: $0) }
        guard let strategy = TrainingStrategy(rawValue: strategyName) else {
            throw TrainingError.fileInvalid(file: path, reason: "unknown strategy \(strategyName)")
        }
        let seedText = try need("seed") { try file.stringAttribute(named: $0) }
        guard let seed = UInt64(seedText) else {
            throw TrainingError.fileInvalid(file: path, reason: "seed \(seedText) is not a UInt64")
        }
        let ints = { (name: String) in try need(name) { try file.intsAttribute(named: $0).map(Int.init) } }
        let stage = Int(try need("stage") { try file.intAttribute(named: $0) })
        let prefixSlices = try ints("prefix_slices")
        let prefixSliceHashes = try need("prefix_slice_hashes") { try file.stringsAttribute(named: $0) }
        guard stage >= 1, prefixSlices.count == stage, prefixSliceHashes.count == stage else {
            throw TrainingError.fileInvalid(file: path, reason: "stage \(stage) lists \(prefixSlices.count) prefix slices "
                                            + "and \(prefixSliceHashes.count) slice hashes (a stage needs one of each per "
                                            + "slice of its prefix)")
        }
        let lineage = StageLineage(
            shard: Int(try need("shard") { try file.intAttribute(named: $0) }),
            sequences: try ints("sequences"), stage: stage, prefixSlices: prefixSlices,
            prefixSliceHashes: prefixSliceHashes, blockLayers: try ints("block_layers"))
        let record = StageRecord(
            strategy: strategy,
            baseModelSHA256: try need("base_model_sha256") { try file.stringAttribute(named: $0) },
            hyperparametersJSON: try need("hyperparameters") { try file.stringAttribute(named: $0) },
            seed: seed,
            threadCount: Int(try need("thread_count") { try file.intAttribute(named: $0) }),
            softwareVersion: try need("software_version") { try file.stringAttribute(named: $0) },
            trainingLoss: try need("training_loss") { try file.doubleAttribute(named: $0) },
            examplesSeen: Int(try need("examples_seen") { try file.intAttribute(named: $0) }),
            // Recorded up to version 2; 0 when absent (the time is in the run's timings log).
            wallTimeSeconds: try file.hasAttribute(named: "wall_time_seconds")
                ? file.doubleAttribute(named: "wall_time_seconds") : 0,
            labels: try file.hasAttribute(named: "labels") ? file.stringsAttribute(named: "labels") : [],
            precision: try choice("precision", of: file, path: path, absent: Precision.fp32),
            modelKind: try choice("model_kind", of: file, path: path, absent: ModelKind.encoder),
            kernels: try file.hasAttribute(named: "kernels") ? file.stringAttribute(named: "kernels") : "")
        try checkNumbers(lineage, record, file: path)
        let recordedKey = try need("stage_key") { try file.stringAttribute(named: $0) }
        guard recordedKey == lineage.key.hex else {
            throw TrainingError.stageMismatch(file: path, field: "stage_key", expected: lineage.key.hex,
                                              found: recordedKey)
        }
        if let slot = Self.slotMismatch(url, shard: lineage.shard, stage: lineage.stage, key: recordedKey) {
            throw TrainingError.stageMismatch(file: path, field: slot.field, expected: slot.expected, found: slot.found)
        }
        let checkpoint = StageCheckpoint(lineage: lineage, record: record,
                                         adapters: try readTensors(file, under: "adapters"),
                                         head: record.modelKind == .decoder ? [] : try readTensors(file, under: "head"))
        let recorded = try need("tensors_sha256") { try file.stringAttribute(named: $0) }
        let computed = checkpoint.tensorsSHA256
        guard recorded == computed else {
            throw TrainingError.tensorHashMismatch(file: path, recorded: recorded, computed: computed)
        }
        // Training never writes NaN or infinity (it stops on a non-finite loss); a stage holding
        // them would make every answer of its shard NaN, so it is refused where it is loaded.
        let nonFinite = (checkpoint.adapters + checkpoint.head).reduce(0) { $0 + $1.values.lazy.filter { !$0.isFinite }.count }
        guard nonFinite == 0 else {
            throw TrainingError.fileInvalid(file: path, reason: "\(nonFinite) adapter or head value(s) are NaN or infinite; "
                                            + "delete the file and train the stage again")
        }
        return checkpoint
    }

    /// Refuses numbers no trained stage has, which later code would index or divide with:
    /// negative shards, sequences, slices and layers, fewer than one thread, a negative count.
    private static func checkNumbers(_ lineage: StageLineage, _ record: StageRecord, file: String) throws {
        let indices = [("shard", [lineage.shard]), ("sequences", lineage.sequences),
                       ("prefix_slices", lineage.prefixSlices), ("block_layers", lineage.blockLayers)]
        for (name, values) in indices where values.contains(where: { $0 < 0 }) {
            throw TrainingError.fileInvalid(file: file, reason: "\(name) \(values) holds a negative index")
        }
        guard record.threadCount >= 1, record.examplesSeen >= 0 else {
            throw TrainingError.fileInvalid(file: file, reason: "thread_count \(record.threadCount) must be at least 1 "
                                            + "and examples_seen \(record.examplesSeen) at least 0")
        }
    }

    /// Every float dataset below `group`, named relative to it ("encoder.layer.5.…/lora_A").
    private static func readTensors(_ file: HDF5File, under group: String) throws -> [NamedTensor] {
        guard try file.kind(of: group) == .group else {
            throw TrainingError.checkpointIncomplete(file: file.url.path, missing: "group /\(group)")
        }
        var result: [NamedTensor] = []
        func visit(_ relative: String) throws {
            let full = relative.isEmpty ? group : group + "/" + relative
            switch try file.kind(of: full) {
            case .group:
                for child in try file.children(of: full) {
                    try visit(relative.isEmpty ? child : relative + "/" + child)
                }
            case .dataset:
                let (values, shape) = try file.readFloats(at: full)
                result.append(NamedTensor(name: relative, shape: shape, values: values))
            case nil:
                break
            }
        }
        try visit("")
        return result
    }
}
