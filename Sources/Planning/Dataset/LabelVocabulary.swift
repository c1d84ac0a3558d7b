import Foundation

/// The label names of a classification task and their class indices.
///
/// Names are sorted by their UTF-8 bytes (= Unicode code point order), so the same set of
/// labels always gets the same indices, whatever order the data lists them in. Saved with the
/// plan (dataset `labels`) and with every model, so predictions map back to names.
public struct LabelVocabulary: Sendable, Equatable {
    /// Label names, sorted by UTF-8 bytes; `names[i]` is class `i`.
    public let names: [String]
    private let indexByName: [String: Int]

    /// The vocabulary of the distinct labels in `labels`.
    public init(labels: some Sequence<String>) {
        let distinct = Set(labels)
        self.init(validatedNames: distinct.sorted(by: UTF8Order.precedes))
    }

    /// Rebuilds a vocabulary from saved names, checking that they are distinct and sorted
    /// (none for a plan of text data).
    public init(savedNames names: [String], file: String) throws {
        for i in names.indices.dropFirst() where !UTF8Order.precedes(names[i - 1], names[i]) {
            throw PlanningError.invariantViolated(
                file: file, invariant: "labels sorted and distinct",
                detail: "label \"\(names[i])\" at index \(i) does not come after \"\(names[i - 1])\"")
        }
        self.init(validatedNames: names)
    }

    private init(validatedNames names: [String]) {
        self.names = names
        var indices: [String: Int] = [:]
        for (index, name) in names.enumerated() { indices[name] = index }
        self.indexByName = indices
    }

    /// The number of classes.
    public var count: Int { names.count }

    /// The class index of a label name, or nil for a label the vocabulary does not know.
    public func index(of name: String) -> Int? { indexByName[name] }

    /// The label name of a class index. Precondition: `0 <= index < count`.
    public func name(at index: Int) -> String { names[index] }
}

/// Ordering of strings by their UTF-8 bytes, which is what the on-disk formats promise.
///
/// Swift's `<` on `String` compares by Unicode canonical equivalence, which is neither byte
/// order nor stable across normalisation forms; hashes and sorted files need bytes.
public enum UTF8Order {
    /// True when `a`'s UTF-8 bytes sort strictly before `b`'s.
    public static func precedes(_ a: String, _ b: String) -> Bool {
        var a = a, b = b
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let common = min(x.count, y.count)
                if common > 0, let xs = x.baseAddress, let ys = y.baseAddress {
                    let order = memcmp(xs, ys, common)
                    if order != 0 { return order < 0 }
                }
                return x.count < y.count
            }
        }
    }
}
