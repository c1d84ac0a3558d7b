import Foundation
import Store

/// Saving and loading a plan as `plan.h5` (layout in docs/FORMAT.md, section "plan.h5").
extension Plan {
    /// The plan's file name inside a run directory.
    public static let fileName = "plan.h5"
    /// The value of the root attribute `format`.
    public static let formatName = "lethe-plan"
    /// The format version this build writes: version 4, a sealed file (`HDF5Seal`) whose root
    /// attribute `tombstone_log` says whether the plan's tombstones include its tombstone log
    /// (`TombstoneLog`, made so by the first forget) and whose `examples/excluded` is present
    /// when a slice was rebuilt. Versions 1 (no log, nothing excluded), 2 (rebuilt slices) and
    /// 3 (a log) were written before; their readers did not check seals, so they must refuse a
    /// version-4 file rather than rewrite it without one.
    public static let formatVersion: Int64 = 4
    /// The versions this build reads (every one only behind a valid seal).
    public static let readableVersions: ClosedRange<Int64> = 1...4
    /// Recorded in the file so readers need not consult the docs to recompute a hash.
    public static let sliceHashEncoding =
        "sha256 over member ids sorted by UTF-8 bytes, joined by one 0x0A byte, no trailing newline; lowercase hex"

    /// The plan file of a run directory.
    public static func url(inRun runDirectory: URL) -> URL {
        runDirectory.appendingPathComponent(fileName)
    }

    /// Writes the plan crash-safely (temporary file, fsync, rename): readers see the old file or the new one.
    /// Every tombstone goes into `tombstones`; a plan with a tombstone log also gets an (empty)
    /// log beside it if it has none, created first, so a file that names its log never lacks it.
    public func save(to url: URL) throws {
        if tombstoneLogEnd != nil { try TombstoneLog.create(TombstoneLog.url(forPlanAt: url)) }
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            try file.setAttribute(.string(Plan.formatName), named: "format")
            try file.setAttribute(.int(Plan.formatVersion), named: "format_version")
            try file.setAttribute(.int(tombstoneLogEnd != nil ? 1 : 0), named: "tombstone_log")
            try file.setAttribute(.string(letheVersion), named: "lethe_version")
            try file.setAttribute(.int(Int64(shardCount)), named: "shard_count")
            try file.setAttribute(.int(Int64(sliceCount)), named: "slice_count")
            try file.setAttribute(.int(Int64(budget)), named: "budget")
            try file.setAttribute(.string(parameters.selection.rawValue), named: "selection")
            try file.setAttribute(.double(parameters.bmsExponent), named: "bms_exponent")
            if let prior = parameters.prior {
                try file.setAttribute(.doubles(prior), named: "prior")
            }
            try file.setAttribute(.string(parameters.assignment.rawValue), named: "assignment")
            try file.setAttribute(.int(Int64(bitPattern: parameters.seed)), named: "seed")
            try file.setAttribute(.string(datasetSource), named: "dataset_source")
            try file.setAttribute(.string(datasetSHA256), named: "dataset_sha256")
            try file.setAttribute(.int(Int64(exampleCount)), named: "example_count")
            try file.setAttribute(.string(Plan.sliceHashEncoding), named: "slice_hash_encoding")
            try file.write(orderedIDs, at: "examples/ids")
            try file.write(cellOffsets.map { Int64($0) }, shape: [cellOffsets.count], at: "slices/offsets")
            try file.write(cellHashes, at: "slices/sha256")
            let flat = shardSequences.joined().joined().map { Int64($0) }
            try file.write(flat, shape: [shardCount, budget, sliceCount], at: "sequences")
            try file.write(labels.names, at: "labels")
            try file.write(tombstones, at: "tombstones")
            if !excludedIDs.isEmpty { try file.write(excludedIDs, at: "examples/excluded") }
        }
    }

    /// The files of a run directory that only exist once its plan was used (a deletion ledger,
    /// stage files, a served composition, a tombstone log holding an id), by name; empty for a
    /// directory that holds none, which may be planned (again). A tombstone log holding only its
    /// header is what a plan killed while it was written leaves.
    public static func filesMadeFromAPlan(in directory: URL) -> [String] {
        let manager = FileManager.default
        var found = ["ledger.sqlite", "served.json"].filter {
            manager.fileExists(atPath: directory.appendingPathComponent($0).path)
        }
        let log = TombstoneLog.url(forPlanAt: url(inRun: directory))
        if let attributes = try? manager.attributesOfItem(atPath: log.path),
           (attributes[.size] as? Int ?? 0) > TombstoneLog.header.utf8.count {
            found.append(log.lastPathComponent)
        }
        // The stages directory may be a link to another disk: its files count.
        let stages = directory.appendingPathComponent("stages").resolvingSymlinksInPath()
        if let walker = manager.enumerator(atPath: stages.path),
           walker.contains(where: { ($0 as? String)?.hasSuffix(".h5") == true }) {
            found.append("stages/")
        }
        return found
    }

    /// Reads a plan and checks its format version and every invariant.
    public static func load(from url: URL) throws -> Plan {
        let name = url.path
        // Every command that takes --run reads the plan first: a directory without one is named
        // as not a run, with how to make one, rather than as a missing file to create.
        var isDirectory: ObjCBool = false
        if !FileManager.default.fileExists(atPath: name, isDirectory: &isDirectory) {
            let directory = url.deletingLastPathComponent()
            let remaining = Self.filesMadeFromAPlan(in: directory)
            throw remaining.isEmpty ? PlanningError.notARun(directory: directory.path)
                : PlanningError.planMissing(directory: directory.path, remaining: remaining)
        }
        let file = try HDF5File.openSealed(url) { PlanningError.damagedPlan(file: name, reason: $0) }
        defer { try? file.close() }
        let format = (try? file.stringAttribute(named: "format")) ?? "no format attribute"
        guard format == formatName else {
            throw PlanningError.unsupportedFormat(file: name, found: "format \"\(format)\"", expected: "format \"\(formatName)\"")
        }
        let version = try file.intAttribute(named: "format_version")
        guard readableVersions.contains(version) else {
            throw PlanningError.unsupportedFormat(file: name, found: "version \(version)",
                                                  expected: "version \(readableVersions.lowerBound)…\(readableVersions.upperBound)")
        }
        func enumValue<T: RawRepresentable>(_ type: T.Type, _ attribute: String) throws -> T where T.RawValue == String {
            let raw = try file.stringAttribute(named: attribute)
            guard let value = T(rawValue: raw) else {
                throw PlanningError.invariantViolated(file: name, invariant: "parameters",
                                                      detail: "attribute \(attribute) has unknown value \"\(raw)\"")
            }
            return value
        }
        let prior = try file.hasAttribute(named: "prior") ? try file.doublesAttribute(named: "prior") : nil
        let parameters = PlanParameters(
            shardCount: Int(try file.intAttribute(named: "shard_count")),
            sliceCount: Int(try file.intAttribute(named: "slice_count")),
            budget: Int(try file.intAttribute(named: "budget")),
            selection: try enumValue(SequenceSelection.self, "selection"),
            prior: prior,
            bmsExponent: try file.doubleAttribute(named: "bms_exponent"),
            assignment: try enumValue(Assignment.self, "assignment"),
            seed: UInt64(bitPattern: try file.intAttribute(named: "seed")))
        let (m, l, b) = (parameters.shardCount, parameters.sliceCount, parameters.budget)
        guard m >= 1, l >= 1, b >= 1 else {
            throw PlanningError.invariantViolated(file: name, invariant: "parameters",
                                                  detail: "shard_count \(m), slice_count \(l), budget \(b) must all be ≥ 1")
        }
        let offsets = try file.readInt64s(at: "slices/offsets").values.map { Int($0) }
        let flat = try file.readInt64s(at: "sequences", expectedShape: [m, b, l]).values.map { Int($0) }
        let sequences = (0..<m).map { h in
            (0..<b).map { s in Array(flat[(h * b + s) * l ..< (h * b + s + 1) * l]) }
        }
        let labels = try LabelVocabulary(savedNames: try file.readStrings(at: "labels"), file: name)
        let hasExcluded = try version == 2 || (version >= 3 && file.exists("examples/excluded"))
        let logFlag = version == 4 ? try file.intAttribute(named: "tombstone_log") : version == 3 ? 1 : 0
        guard logFlag == 0 || logFlag == 1 else {
            throw PlanningError.unsupportedFormat(file: name, found: "tombstone_log \(logFlag)",
                                                  expected: "tombstone_log 0 or 1")
        }
        let hasLog = logFlag == 1
        var plan = try Plan(parameters: parameters,
                        datasetSource: try file.stringAttribute(named: "dataset_source"),
                        datasetSHA256: try file.stringAttribute(named: "dataset_sha256"),
                        exampleCount: Int(try file.intAttribute(named: "example_count")),
                        labels: labels,
                        orderedIDs: try file.readStrings(at: "examples/ids"),
                        cellOffsets: offsets,
                        cellHashes: try file.readStrings(at: "slices/sha256"),
                        shardSequences: sequences,
                        tombstones: try file.readStrings(at: "tombstones"),
                        excludedIDs: hasExcluded ? try file.readStrings(at: "examples/excluded") : [],
                        file: name)
        if hasLog {
            plan.tombstoneLogEnd = 0
            try plan.readNewTombstones(savedAt: url)
        }
        return plan
    }
}
