import Foundation
import Planning

/// The small real datasets the end-to-end tests train on: the first `perLabel` BBC News
/// training examples of each label, as JSON Lines (`id`, `text`, `label`, and `group` when
/// `group` names one from the example's position), keys sorted.
public enum BBCSubset {
    public static func write(perLabel limit: Int, to url: URL, group: ((Int) -> String)? = nil) throws {
        let source = try Dataset.read(from: LetheProcess.root.appendingPathComponent("Datasets/bbc-news/train.jsonl"))
        var perLabel: [String: Int] = [:]
        var lines: [String] = []
        for example in source.examples where perLabel[example.label, default: 0] < limit {
            perLabel[example.label, default: 0] += 1
            var object = ["id": example.id, "text": example.text, "label": example.label]
            if let group { object["group"] = group(lines.count) }
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]),
                                as: UTF8.self))
        }
        try (lines.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }
}
