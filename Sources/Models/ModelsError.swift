/// Every error the Models module throws: weight files, vocabularies, configurations, checkpoints.
///
/// Each case carries the facts a reader needs (file, tensor, line, expected vs found) and its
/// message ends with what to do about it.
public enum ModelsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or mapped.
    case fileUnreadable(path: String, reason: String)
    /// The file ends before the declared header or data does.
    case truncated(path: String, expectedByteCount: Int, foundByteCount: Int)
    /// The safetensors JSON header is not what the format requires.
    case headerInvalid(path: String, reason: String)
    /// One tensor entry of a safetensors header is inconsistent.
    case tensorInvalid(path: String, tensor: String, reason: String)
    /// Two tensors claim overlapping bytes of the data section.
    case tensorsOverlap(path: String, first: String, second: String)
    /// A tensor the model needs is not in the file.
    case tensorMissing(path: String, tensor: String)
    /// A tensor has a different shape than the model expects.
    case shapeMismatch(path: String, tensor: String, expected: [Int], found: [Int])
    /// A tensor is stored in a type that cannot be read as requested.
    case dtypeMismatch(path: String, tensor: String, expected: String, found: String)
    /// A vocabulary file is malformed.
    case vocabularyInvalid(path: String, line: Int, reason: String)
    /// A model configuration file is malformed or describes an unsupported model.
    case configInvalid(path: String, field: String, reason: String)
    /// A LoRA or classifier configuration value is out of range.
    case invalidValue(field: String, value: String, reason: String)

    public var description: String {
        switch self {
        case let .fileUnreadable(path, reason):
            return "cannot read \(path): \(reason). Check that the file exists and is readable."
        case let .truncated(path, expected, found):
            return "\(path) is truncated: needs \(expected) bytes, has \(found). Fetch the file again (make setup)."
        case let .headerInvalid(path, reason):
            return "\(path): invalid safetensors header: \(reason). The file is corrupt or not safetensors; fetch it again."
        case let .tensorInvalid(path, tensor, reason):
            return "\(path): tensor '\(tensor)': \(reason). The file is corrupt; fetch it again."
        case let .tensorsOverlap(path, first, second):
            return "\(path): tensors '\(first)' and '\(second)' overlap in the data section. The file is corrupt; fetch it again."
        case let .tensorMissing(path, tensor):
            return "\(path): no tensor named '\(tensor)'. Check that the file holds the expected model."
        case let .shapeMismatch(path, tensor, expected, found):
            return "\(path): tensor '\(tensor)' has shape \(found), expected \(expected). Check that the file matches its config.json."
        case let .dtypeMismatch(path, tensor, expected, found):
            return "\(path): tensor '\(tensor)' is \(found), expected \(expected). Convert the file or read it with the matching accessor."
        case let .vocabularyInvalid(path, line, reason):
            return "\(path):\(line): \(reason). Use the vocab.txt shipped with the model."
        case let .configInvalid(path, field, reason):
            return "\(path): field '\(field)': \(reason). Use the config.json shipped with the model."
        case let .invalidValue(field, value, reason):
            return "invalid \(field) = \(value): \(reason). Choose a value in range."
        }
    }
}
