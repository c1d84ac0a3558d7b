import Foundation
import Store
import Testing
@testable import Planning
@testable import Training

/// Plans and stage checkpoints edited on purpose and sealed again, so that the seal lets them
/// through and libhdf5 reads well-formed HDF5: every attribute and dataset the loader reads set
/// to extreme, empty, inconsistent or wrongly typed values. The loader's own checks must refuse
/// each with an error, except the edits that leave a meaningful file (listed in each test) — a
/// trap on a value from the file would end the test process.
@Suite struct EditedFileTests {
    typealias Edit = (name: String, apply: (HDF5File) throws -> Void)

    static let extremes: [Int64] = [0, -1, 1, 2, 7, 1 << 40, .max, .min]

    /// Edits that replace the integer attribute `name` by each extreme value, then by a string.
    static func integerEdits(_ name: String) -> [Edit] {
        extremes.map { value in ("\(name) = \(value)", { try $0.setAttribute(.int(value), named: name) }) }
            + [("\(name) as a string", { try $0.setAttribute(.string("x"), named: name) })]
    }

    /// Edits that replace the integer-list attribute `name` by empty, extreme and long lists.
    static func integerListEdits(_ name: String) -> [Edit] {
        [[], [-1], [.max], [.min, 0], [0, 1, 2, 3, 4, 5, 6, 7, 8]].map { values in
            ("\(name) = \(values)", { try $0.setAttribute(.ints(values), named: name) })
        }
    }

    /// Edits that replace the dataset at `path` by `values` (shape `[count]` unless given).
    static func int64Edit(_ path: String, _ values: [Int64], shape: [Int]? = nil) -> Edit {
        ("\(path) = \(values.prefix(4))… \(shape ?? [values.count])", { file in
            try file.remove(path)
            try file.write(values, shape: shape ?? [values.count], at: path)
        })
    }

    static func stringsEdit(_ path: String, _ values: [String]) -> Edit {
        ("\(path) = \(values.prefix(4))", { file in
            if try file.exists(path) { try file.remove(path) }
            try file.write(values, at: path)
        })
    }

    /// Applies each edit to a fresh copy of `seed` at `url`, seals it and runs `load`; returns
    /// the names of the edits whose file loaded (the others were refused with an error).
    static func accepted(_ edits: [Edit], seed: Data, at url: URL, load: () throws -> Void) throws -> Set<String> {
        var accepted: Set<String> = []
        for edit in edits {
            try seed.write(to: url)
            let file = try HDF5File.open(url, mode: .readWrite)
            try edit.apply(file)
            try file.close()
            try HDF5Seal.seal(fileAt: url)
            do {
                try load()
                accepted.insert(edit.name)
            } catch {}
        }
        print("edited \(url.lastPathComponent): \(edits.count) edits, \(edits.count - accepted.count) refused, "
              + "\(accepted.count) accepted")
        return accepted
    }

    @Test func editedPlansAreRefusedByTheirChecks() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let url = scratch.file("plan.h5")
        try SealedFixtures.savePlan(at: url)
        let seed = try Data(contentsOf: url)
        var edits: [Edit] = ["shard_count", "slice_count", "budget", "example_count", "seed", "format_version",
                             "tombstone_log"].flatMap(Self.integerEdits)
        edits += [Double.nan, .infinity, -1, 0].map { value in
            ("bms_exponent = \(value)", { try $0.setAttribute(.double(value), named: "bms_exponent") })
        }
        edits += [[Double.nan, 0, 1], [1e308, 1e308, -1e308], []].map { prior in
            ("prior = \(prior)", { try $0.setAttribute(.doubles(prior), named: "prior") })
        }
        edits += ["selection", "assignment"].map { name in (name, { try $0.setAttribute(.string("?"), named: name) }) }
        edits += [[], [0], [.max], [-1, 24], [0, 24, 12, 24, 24, 24, 24], [0, 4, 8, 12, 16, 20, .max],
                  [0, 4, 8, 12, 16, 20, 24, 28]].map { Self.int64Edit("slices/offsets", $0) }
        edits += [Self.int64Edit("sequences", Array(repeating: -1, count: 18), shape: [2, 3, 3]),
                  Self.int64Edit("sequences", Array(repeating: .max, count: 18), shape: [2, 3, 3]),
                  Self.int64Edit("sequences", [0, 1, 2], shape: [1, 1, 3]),
                  Self.int64Edit("sequences", [], shape: [2, 3, 0])]
        edits += [[], [""], Array(repeating: "ex-1", count: 24), (0..<24).map { "ex-\(23 - $0)" }]
            .map { Self.stringsEdit("examples/ids", $0) }
        edits += [[], ["x"], Array(repeating: String(repeating: "0", count: 64), count: 6)]
            .map { Self.stringsEdit("slices/sha256", $0) }
        edits += [[], ["b", "a"], ["a", "a"]].map { Self.stringsEdit("labels", $0) }
        edits += [["nobody"], ["ex-3", "ex-3"], ["ex-5", "ex-3"]].map { Self.stringsEdit("tombstones", $0) }
        edits += [["ex-4"], ["ex-3", "ex-3"], (0..<24).map { "ex-\($0)" }].map { Self.stringsEdit("examples/excluded", $0) }
        let accepted = try Self.accepted(edits, seed: seed, at: url) { _ = try Plan.load(from: url) }
        // The seed is not checked against anything; the others leave the plan as it was; no label
        // names is a plan of text data (a decoder run's), which is valid.
        #expect(accepted == Set(Self.extremes.map { "seed = \($0)" } + ["shard_count = 2", "format_version = 1",
                                                                         "tombstone_log = 0", "labels = []"]))
    }

    @Test func editedStageCheckpointsAreRefusedByTheirChecks() throws {
        let scratch = try Scratch()
        defer { scratch.remove() }
        let hashes = SealedFixtures.checkpoint.lineage.prefixSliceHashes
        let url = scratch.file("stage.h5")
        try SealedFixtures.checkpoint.save(to: url)
        let seed = try Data(contentsOf: url)
        var edits: [Edit] = ["shard", "stage", "thread_count", "examples_seen", "format_version"].flatMap(Self.integerEdits)
        edits += ["sequences", "prefix_slices", "block_layers"].flatMap(Self.integerListEdits)
        edits += [[], [hashes[0]], hashes + hashes, ["", ""]].map { values in
            ("prefix_slice_hashes = \(values.count) hashes", { try $0.setAttribute(.strings(values), named: "prefix_slice_hashes") })
        }
        edits += ["", "-1", "18446744073709551616", "0x10"].map { value in
            ("seed = \(value)", { try $0.setAttribute(.string(value), named: "seed") })
        }
        edits += [("strategy = ?", { try $0.setAttribute(.string("?"), named: "strategy") }),
                  ("training_loss = nan", { try $0.setAttribute(.double(.nan), named: "training_loss") }),
                  ("no head", { try $0.remove("head") }),
                  ("no adapters", { try $0.remove("adapters") })]
        edits += [[0, 4], [1, 1, 1, 8], [8]].map { shape in
            ("head/weight of shape \(shape)", { file in
                try file.remove("head/weight")
                try file.write([Float](repeating: 1, count: shape.reduce(1, *)), shape: shape, at: "head/weight")
            })
        }
        let accepted = try Self.accepted(edits, seed: seed, at: url) { _ = try StageCheckpoint.load(from: url) }
        // What a stage records about itself without a check to hold it against: plausible
        // counts and indices, the loss; and the unchanged stage number and readable versions.
        let plausible = Self.extremes.filter { $0 >= 0 }.flatMap { ["shard = \($0)", "examples_seen = \($0)"] }
            + Self.extremes.filter { $0 >= 1 }.map { "thread_count = \($0)" }
            + [[], [Int64.max], Array(0...8)].flatMap { ["sequences = \($0)", "block_layers = \($0)"] }
        #expect(accepted == Set(plausible + ["stage = 2", "format_version = 1", "format_version = 2",
                                             "training_loss = nan"]))
    }
}
