import Foundation

/// Everything that can go wrong while reading weights, tokenizing or running a model.
///
/// Each case carries the facts a reader needs (file, tensor or key, expected vs found) and its
/// message ends with what to do about it.
public enum ModelsError: Error, CustomStringConvertible, Equatable {
    /// The file could not be opened or read.
    case unreadableFile(path: String, reason: String)
    /// The file does not start with the expected magic bytes.
    case badMagic(path: String, found: String)
    /// The format version is not one this reader understands.
    case unsupportedVersion(path: String, found: UInt32)
    /// The file ends before a field that must be there.
    case truncated(path: String, what: String, offset: Int)
    /// A metadata value has a type code this reader does not know.
    case unknownValueType(path: String, key: String, code: UInt32)
    /// A tensor has a storage type this reader cannot dequantise.
    case unsupportedTensorType(path: String, tensor: String, code: UInt32)
    /// A tensor's element count does not fit its quantisation block size.
    case badTensorShape(path: String, tensor: String, reason: String)
    /// A requested tensor is not in the file.
    case missingTensor(path: String, tensor: String)
    /// A metadata key the caller needs is absent or has the wrong type.
    case missingMetadata(path: String, key: String, expected: String)
    /// A string in the file is not valid UTF-8.
    case invalidString(path: String, offset: Int)
    /// The tokenizer metadata is inconsistent (e.g. a merge names an unknown token).
    case badTokenizer(reason: String)
    /// A model configuration value is out of range.
    case badConfiguration(field: String, value: String, reason: String)
    /// A token id is outside the vocabulary.
    case tokenOutOfRange(id: Int, vocabularySize: Int)

    public var description: String {
        switch self {
        case let .unreadableFile(path, reason):
            return "cannot read \(path): \(reason). Check the path and its permissions (run `make setup` for the pinned model files)."
        case let .badMagic(path, found):
            return "\(path) is not a GGUF file (magic bytes \(found), expected GGUF). Pass a .gguf model file."
        case let .unsupportedVersion(path, found):
            return "\(path) is GGUF version \(found); this reader supports version 3. Convert the model with a current llama.cpp."
        case let .truncated(path, what, offset):
            return "\(path) ends early: \(what) at byte \(offset) runs past the end of the file. Re-fetch the file (it is truncated or corrupt)."
        case let .unknownValueType(path, key, code):
            return "\(path): metadata key '\(key)' has unknown value type \(code). The file is corrupt or from a newer GGUF version."
        case let .unsupportedTensorType(path, tensor, code):
            return "\(path): tensor '\(tensor)' has ggml type \(code); supported are F32 (0), F16 (1), Q4_1 (3), Q8_0 (8). Re-quantise the model to a supported type."
        case let .badTensorShape(path, tensor, reason):
            return "\(path): tensor '\(tensor)' \(reason). The file is corrupt; re-fetch it."
        case let .missingTensor(path, tensor):
            return "\(path) has no tensor '\(tensor)'. Check that the file is a Llama-architecture model."
        case let .missingMetadata(path, key, expected):
            return "\(path) lacks metadata '\(key)' of type \(expected). Check that the file is a Llama-architecture GGUF with its tokenizer."
        case let .invalidString(path, offset):
            return "\(path): the string at byte \(offset) is not valid UTF-8. The file is corrupt; re-fetch it."
        case let .badTokenizer(reason):
            return "tokenizer metadata is inconsistent: \(reason). Use a GGUF file whose tokenizer is byte-level BPE (gpt2)."
        case let .badConfiguration(field, value, reason):
            return "model configuration field '\(field)' = \(value) is invalid: \(reason). Fix the configuration."
        case let .tokenOutOfRange(id, size):
            return "token id \(id) is outside the vocabulary of \(size) tokens. Encode the text with this model's tokenizer."
        }
    }
}
