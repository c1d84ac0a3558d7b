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
    /// A GGUF file does not start with the magic bytes `GGUF`.
    case badMagic(path: String, found: String)
    /// A GGUF format version this reader does not understand.
    case unsupportedVersion(path: String, found: UInt32)
    /// A GGUF file ends before a field that must be there.
    case ggufTruncated(path: String, what: String, offset: Int)
    /// A GGUF metadata value has a type code this reader does not know.
    case unknownValueType(path: String, key: String, code: UInt32)
    /// A GGUF tensor has a storage type this reader cannot dequantise.
    case unsupportedTensorType(path: String, tensor: String, code: UInt32)
    /// A GGUF metadata key the caller needs is absent or has the wrong type.
    case missingMetadata(path: String, key: String, expected: String)
    /// A GGUF header field holds a value no valid file has (a size past the limits of the format
    /// or of this reader).
    case ggufInvalid(path: String, what: String, reason: String)
    /// A string in a GGUF file is not valid UTF-8.
    case invalidString(path: String, offset: Int)
    /// The BPE tokenizer metadata is inconsistent (e.g. a merge names an unknown token).
    case badTokenizer(reason: String)
    /// A token id is outside the vocabulary.
    case tokenOutOfRange(id: Int, vocabularySize: Int)
    /// A forward pass gave a NaN or infinite logit (`value`) for the token after `position`.
    case nonFiniteLogits(position: Int, value: Float)

    public var description: String {
        switch self {
        case let .badMagic(path, found):
            return "\(path) is not a GGUF file (magic bytes \(found), expected GGUF). Pass a .gguf model file."
        case let .unsupportedVersion(path, found):
            return "\(path) is GGUF version \(found); this reader supports version 3. Convert the model with a current llama.cpp."
        case let .ggufTruncated(path, what, offset):
            return "\(path) ends early: \(what) at byte \(offset) runs past the end of the file. Re-fetch the file (it is truncated or corrupt)."
        case let .unknownValueType(path, key, code):
            return "\(path): metadata key '\(key)' has unknown value type \(code). The file is corrupt or from a newer GGUF version."
        case let .unsupportedTensorType(path, tensor, code):
            return "\(path): tensor '\(tensor)' has ggml type \(code); supported are F32 (0), F16 (1), Q4_1 (3), Q8_0 (8). Re-quantise the model to a supported type."
        case let .missingMetadata(path, key, expected):
            return "\(path) lacks metadata '\(key)' of type \(expected). Check that the file is a Llama-architecture GGUF with its tokenizer."
        case let .ggufInvalid(path, what, reason):
            return "\(path): \(what): \(reason). The file is corrupt or not a model this reader supports; re-fetch it."
        case let .invalidString(path, offset):
            return "\(path): the string at byte \(offset) is not valid UTF-8. The file is corrupt; re-fetch it."
        case let .badTokenizer(reason):
            return "tokenizer metadata is inconsistent: \(reason). Use a GGUF file whose tokenizer is byte-level BPE (gpt2)."
        case let .tokenOutOfRange(id, size):
            return "token id \(id) is outside the vocabulary of \(size) tokens. Encode the text with this model's tokenizer."
        case let .nonFiniteLogits(position, value):
            return "the logits after position \(position) hold \(value): the model's weights are damaged. Re-fetch the model file."
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
            return "\(path): tensor '\(tensor)' has shape \(found), expected \(expected) from the model's configuration "
                + "(its config.json, or a GGUF file's own metadata). The file does not match it: fetch the model again."
        case let .dtypeMismatch(path, tensor, expected, found):
            return "\(path): tensor '\(tensor)' is \(found), expected \(expected). The file is not the model Lethe reads: "
                + "fetch the model again (`make setup` fetches the default ones)."
        case let .vocabularyInvalid(path, line, reason):
            return "\(path):\(line): \(reason). Use the vocab.txt shipped with the model."
        case let .configInvalid(path, field, reason):
            return "\(path): field '\(field)': \(reason). Use the config.json shipped with the model."
        case let .invalidValue(field, value, reason):
            return "invalid \(field) = \(value): \(reason). Choose a value in range."
        }
    }
}
