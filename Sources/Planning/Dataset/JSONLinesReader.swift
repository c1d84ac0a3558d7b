import Support

/// Turns the bytes of a JSON Lines file into validated examples.
///
/// Lines are separated by LF (a CR before it is whitespace); blank lines are skipped but still
/// counted, so every error names the line a text editor shows. A UTF-8 byte-order mark at the
/// start is ignored. Field rules: `id`, `text` are required strings; `label` is a string that
/// either every line has (a classification data set) or none has (text data, for a decoder);
/// `group` is an optional string (`null` means absent); other string fields are kept by name,
/// other values of other fields are ignored.
enum JSONLinesReader {
    static func read(_ bytes: UnsafeBufferPointer<UInt8>, source: String) throws
        -> (examples: [Example], positionByID: [String: Int]) {
        var examples: [Example] = []
        var lineOfPosition: [Int] = []
        var positionByID: [String: Int] = [:]
        var start = 0
        if bytes.count >= 3, bytes[0] == 0xEF, bytes[1] == 0xBB, bytes[2] == 0xBF { start = 3 }
        var lineNumber = 0
        // The first line with a label and the first without: both set is a mixed file.
        var labelled: Int?, unlabelled: Int?
        while start < bytes.count {
            lineNumber += 1
            var end = start
            while end < bytes.count, bytes[end] != 0x0A { end += 1 }
            let line = UnsafeBufferPointer(rebasing: bytes[start..<end])
            start = end + 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let (example, hasLabel) = try example(from: line, lineNumber: lineNumber, source: source)
            if hasLabel { labelled = labelled ?? lineNumber } else { unlabelled = unlabelled ?? lineNumber }
            if let labelled, let unlabelled {
                throw PlanningError.mixedLabels(file: source, unlabelledLine: unlabelled, labelledLine: labelled)
            }
            if let earlier = positionByID.updateValue(examples.count, forKey: example.id) {
                throw PlanningError.duplicateID(file: source, id: example.id,
                                                firstLine: lineOfPosition[earlier], secondLine: lineNumber,
                                                otherSpelling: Array(examples[earlier].id.utf8) != Array(example.id.utf8))
            }
            examples.append(example)
            lineOfPosition.append(lineNumber)
        }
        guard !examples.isEmpty else { throw PlanningError.emptyDataset(file: source) }
        return (examples, positionByID)
    }

    /// The example of one line, and whether the line had a label (an absent one reads as "").
    static func example(from line: UnsafeBufferPointer<UInt8>, lineNumber: Int, source: String) throws
        -> (Example, Bool) {
        let members: [(key: String, value: FlatJSONScanner.Value)]
        do {
            members = try FlatJSONScanner.members(of: line)
        } catch {
            throw PlanningError.malformedJSON(file: source, line: lineNumber, column: error.column, reason: error.reason)
        }
        var id: String?, text: String?, label: String?, group: String?
        var extras: [String: String] = [:]
        for (key, value) in members {
            switch key {
            case "id", "text", "label":
                guard case let .string(string) = value else {
                    throw PlanningError.wrongFieldType(file: source, line: lineNumber, field: key,
                                                       expected: "string", found: value.kindName)
                }
                if key == "id" { id = string } else if key == "text" { text = string } else { label = string }
            case "group":
                switch value {
                case let .string(string): group = string
                case .null: group = nil
                case .other:
                    throw PlanningError.wrongFieldType(file: source, line: lineNumber, field: key,
                                                       expected: "string", found: value.kindName)
                }
            default:
                if case let .string(string) = value { extras[key] = string }
            }
        }
        guard let id else { throw PlanningError.missingField(file: source, line: lineNumber, field: "id") }
        guard let text else { throw PlanningError.missingField(file: source, line: lineNumber, field: "text") }
        if id.isEmpty {
            throw PlanningError.invalidID(file: source, line: lineNumber, id: id, reason: "it is empty")
        }
        if id.utf8.count > Example.maxNameBytes {
            throw PlanningError.invalidID(file: source, line: lineNumber, id: id,
                                          reason: "it is \(id.utf8.count) bytes long, and a deletion request names at most "
                                              + "\(Example.maxNameBytes)")
        }
        if let control = Example.controlCharacter(in: id) {
            throw PlanningError.invalidID(file: source, line: lineNumber, id: id,
                                          reason: "it contains the control character \(control) (slice hashes join ids "
                                              + "with newlines, and a deletion request may not name one)")
        }
        // A group is forgotten by its name: one that a deletion request cannot name (empty,
        // blank, or holding a control character) would make its examples unforgettable as a group.
        if let group {
            if group.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                throw PlanningError.invalidGroup(file: source, line: lineNumber, group: group,
                                                 reason: group.isEmpty ? "it is empty" : "it is blank")
            }
            if group.utf8.count > Example.maxNameBytes {
                throw PlanningError.invalidGroup(file: source, line: lineNumber, group: group,
                                                 reason: "it is \(group.utf8.count) bytes long, and at most "
                                                     + "\(Example.maxNameBytes) fit")
            }
            if let control = Example.controlCharacter(in: group) {
                throw PlanningError.invalidGroup(file: source, line: lineNumber, group: group,
                                                 reason: "it contains the control character \(control)")
            }
        }
        if text.isEmpty { throw PlanningError.emptyText(file: source, line: lineNumber, id: id) }
        if label?.isEmpty == true { throw PlanningError.emptyLabel(file: source, line: lineNumber, id: id) }
        return (Example(id: id, text: text, label: label ?? "", group: group, extraFields: extras), label != nil)
    }
}
