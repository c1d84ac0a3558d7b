import Foundation
import Support

/// A per-slice deletion prior: one probability per slice of a shard, summing to 1.
///
/// File format (`--prior FILE`): JSON, either an array `[p0, p1, …]` with one number per slice,
/// or an object `{"0": p0, "2": p2, …}` keyed by 0-based slice index (slices left out get 0).
public enum Prior {
    /// How far from 1 the sum may be (rounding in hand-written decimals).
    public static let sumTolerance = 1e-6

    /// Reads and validates a prior file for L slices.
    /// `argument` as given to `--prior`: the JSON itself when it starts with `[` or `{`, else
    /// the path of a file holding it.
    public static func read(argument: String, sliceCount: Int) throws -> [Double] {
        let trimmed = argument.trimmingCharacters(in: .whitespaces)
        if trimmed.hasPrefix("[") || trimmed.hasPrefix("{") {
            return try parse(Data(trimmed.utf8), sliceCount: sliceCount, source: "(given inline)")
        }
        return try read(from: URL(fileURLWithPath: argument), sliceCount: sliceCount, source: argument)
    }

    public static func read(from url: URL, sliceCount: Int, source: String? = nil) throws -> [Double] {
        let name = source ?? url.path
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw PlanningError.invalidPrior(file: name, reason: "cannot read the file (\(fileErrorReason(error)))")
        }
        return try parse(data, sliceCount: sliceCount, source: name)
    }

    /// Parses and validates prior JSON for L slices.
    public static func parse(_ data: Data, sliceCount: Int, source: String) throws -> [Double] {
        let decoder = JSONDecoder()
        var prior = [Double](repeating: 0, count: sliceCount)
        if let array = try? decoder.decode([Entry].self, from: data) {
            guard array.count == sliceCount else {
                throw PlanningError.invalidPrior(file: source, reason: "has \(array.count) entries for \(sliceCount) slices")
            }
            for (index, entry) in array.enumerated() {
                prior[index] = try entry.probability(slice: "\(index)", source: source)
            }
        } else if let object = try? decoder.decode([String: Entry].self, from: data) {
            for (key, entry) in object.sorted(by: { $0.key < $1.key }) {
                guard let index = Int(key), (0..<sliceCount).contains(index) else {
                    throw PlanningError.invalidPrior(
                        file: source, reason: "names unknown slice \"\(key)\" (slices are 0…\(sliceCount - 1))")
                }
                prior[index] = try entry.probability(slice: key, source: source)
            }
        } else {
            throw PlanningError.invalidPrior(file: source, reason: "is not a JSON array or object")
        }
        // A slice given twice would keep one of its two probabilities unannounced, and a comma
        // before a closing bracket may mark an entry left out.
        switch LenientJSON.firstProblem(inDocument: Array(data)) {
        case let .repeatedKey(key)?: throw PlanningError.invalidPrior(file: source, reason: "gives slice \"\(key)\" twice")
        case let problem?: throw PlanningError.invalidPrior(file: source, reason: "has \(problem.text)")
        case nil: break
        }
        try validate(prior, sliceCount: sliceCount, source: source)
        return prior
    }

    /// One value of the prior file: a number, or anything else (refused with its slice named).
    private enum Entry: Decodable {
        case number(Double)
        case other

        init(from decoder: Decoder) throws {
            let container = try decoder.singleValueContainer()
            // JSONDecoder refuses true/false and strings as Double, so only numbers land here.
            if let value = try? container.decode(Double.self) { self = .number(value) } else { self = .other }
        }

        func probability(slice: String, source: String) throws -> Double {
            guard case let .number(value) = self else {
                throw PlanningError.invalidPrior(file: source, reason: "slice \(slice) has a value that is not a number")
            }
            return value
        }
    }

    /// Checks length, that every entry is a finite non-negative number, and the sum.
    public static func validate(_ prior: [Double], sliceCount: Int, source: String) throws {
        guard prior.count == sliceCount else {
            throw PlanningError.invalidPrior(file: source, reason: "has \(prior.count) entries for \(sliceCount) slices")
        }
        for (slice, p) in prior.enumerated() where !(p.isFinite && p >= 0) {
            throw PlanningError.invalidPrior(file: source, reason: "slice \(slice) has probability \(p), not a number in [0, 1]")
        }
        let sum = prior.reduce(0, +)
        guard abs(sum - 1) <= sumTolerance else {
            throw PlanningError.invalidPrior(file: source, reason: "sums to \(sum), not 1")
        }
    }

}
