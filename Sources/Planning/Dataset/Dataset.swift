import Crypto
import Foundation
import Support

/// A JSON Lines dataset held in memory: its examples in file order and the SHA-256 of its bytes.
///
/// Reading validates every line (see `JSONLinesReader`); afterwards ids are known unique, so
/// `index(of:)` is a plain hash lookup.
public struct Dataset: Sendable {
    /// How the dataset is named in messages and in the plan (usually the path given on the command line).
    public let source: String
    public let examples: [Example]
    /// Lowercase hex SHA-256 of the file's bytes exactly as read (the dataset's identity in a plan).
    public let sha256: String
    private let positionByID: [String: Int]

    /// Wraps already-validated examples (tests, generated data). Precondition: ids are unique.
    public init(examples: [Example], source: String, sha256: String) {
        var positions: [String: Int] = [:]
        positions.reserveCapacity(examples.count)
        for (position, example) in examples.enumerated() {
            precondition(positions.updateValue(position, forKey: example.id) == nil,
                         "duplicate id \(example.id); use Dataset.read or Dataset.parse to validate input")
        }
        self.init(examples: examples, source: source, sha256: sha256, positionByID: positions)
    }

    init(examples: [Example], source: String, sha256: String, positionByID: [String: Int]) {
        self.examples = examples
        self.source = source
        self.sha256 = sha256
        self.positionByID = positionByID
    }

    /// Reads and validates a JSON Lines file; errors name the file and the 1-based line.
    public static func read(from url: URL, source: String? = nil) throws -> Dataset {
        let name = source ?? url.path
        let data: Data
        do {
            data = try InputFile.read(url)
        } catch {
            throw PlanningError.unreadableFile(file: name, reason: fileErrorReason(error))
        }
        return try parse(data, source: name)
    }

    /// Parses JSON Lines bytes; `source` names them in errors.
    public static func parse(_ data: Data, source: String) throws -> Dataset {
        let digest = Hex.encode(contiguous: SHA256.hash(data: data))
        let (examples, positions) = try data.withUnsafeBytes { raw in
            try JSONLinesReader.read(raw.bindMemory(to: UInt8.self), source: source)
        }
        return Dataset(examples: examples, source: source, sha256: digest, positionByID: positions)
    }

    /// The position of the example with this id in `examples`, if any.
    public func index(of id: String) -> Int? { positionByID[id] }

    /// The example with this id, if any.
    public subscript(id id: String) -> Example? { positionByID[id].map { examples[$0] } }

    /// Sorted label names of all examples; empty for text data.
    public var labelVocabulary: LabelVocabulary {
        isTextOnly ? LabelVocabulary(labels: []) : LabelVocabulary(labels: examples.map(\.label))
    }

    /// True for text data: no example has a label (a decoder trains on it; a classifier cannot).
    public var isTextOnly: Bool { examples.allSatisfy { $0.label.isEmpty } }

    /// True when at least one example names a `group`.
    public var hasGroups: Bool { examples.contains { $0.group != nil } }
}
