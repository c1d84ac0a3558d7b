import Planning

/// Everything that can stop an audit or a verification before it reaches a verdict.
///
/// Tampering is not an error: it is a finding (`VerificationProblem`). These cases mean the
/// question could not be asked.
public enum AuditError: Error, CustomStringConvertible, Equatable, Sendable {
    /// The plan has no example with this id; `requests` are the ledger positions of deletion
    /// requests that named it anyway (recorded as unknown).
    case unknownExample(id: String, requests: [Int64] = [])
    /// No example of the dataset belongs to this group.
    case unknownGroup(group: String, requests: [Int64] = [])
    /// A feature needs a component this build does not have yet.
    case unavailable(feature: String, reason: String)

    public var description: String {
        switch self {
        case .unknownExample(let id, let requests) where !requests.isEmpty:
            return "the plan has no example \(Example.quoted(id)), so no model of this run trained on it. The ledger "
                + "records deletion request(s) naming it at " + requests.map { "#\($0)" }.joined(separator: ", ")
                + ", kept as unknown: nothing was deleted for them."
        case .unknownExample(let id, _):
            return "the plan has no example \(Example.quoted(id)). Check the id (ids are case-sensitive; the ids are those "
                + "of the planned dataset's \"id\" fields)."
        case .unknownGroup(let group, let requests) where !requests.isEmpty:
            return "no example of the dataset belongs to group \(Example.quoted(group)), so no model of this run trained "
                + "on one. The ledger records deletion request(s) naming it at "
                + requests.map { "#\($0)" }.joined(separator: ", ") + ", kept as unknown: nothing was deleted for them."
        case .unknownGroup(let group, _):
            return "no example of the dataset belongs to group \(Example.quoted(group)). Check the spelling, or pass the "
                + "planned dataset with --data."
        case .unavailable(let feature, let reason):
            return "\(feature) is not available: \(reason). Run the other checks without it."
        }
    }
}
