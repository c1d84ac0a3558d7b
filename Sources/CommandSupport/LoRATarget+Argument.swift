import Models

extension LoRATarget {
    /// Command-line names: q, k, v, o, up, down, or the PEFT module paths.
    public static func parse(_ name: String) -> LoRATarget? {
        switch name {
        case "q", "query": return .query
        case "k", "key": return .key
        case "v", "value": return .value
        case "o", "attention.output": return .attentionOutput
        case "up", "intermediate": return .intermediate
        case "down", "output": return .output
        default: return LoRATarget(rawValue: name)
        }
    }

    /// Parses a comma-separated list, naming the first unknown entry.
    public static func parseList(_ list: String) throws -> [LoRATarget] {
        try list.split(separator: ",").map { name in
            guard let t = parse(String(name)) else {
                throw LetheCommandError.invalidOption(option: "--targets", value: String(name),
                                                      reason: "use q, k, v, o, up, down")
            }
            return t
        }
    }
}

/// Errors of the command-line tool itself.
public enum LetheCommandError: Error, CustomStringConvertible {
    case invalidOption(option: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .invalidOption(option, value, reason): return "\(option) \(value): \(reason)."
        }
    }
}
