import Foundation
import Support
import Crypto
import Models

/// Token chunks of a JSON Lines data set, the unit every unlearning and evaluation step uses.
///
/// Each record's text field is tokenized on its own (no BOS, as for SmolLM2) and cut into
/// chunks of at most `chunkTokens` tokens; a remainder of fewer than two tokens is dropped
/// (it has no next-token prediction). `sha256` hashes the file's bytes, for the output record.
public struct TextCorpus: Sendable {
    public let path: String
    public let chunks: [[Int]]
    public let sha256: String

    /// SHA-256 of the token chunks themselves (each chunk's length, then its tokens, as
    /// little-endian UInt32): the same for the same texts, tokenizer, chunk size and --limit.
    public static func chunksSHA256(_ chunks: [[Int]]) -> String {
        var hasher = SHA256()
        for chunk in chunks {
            var words = [UInt32(chunk.count).littleEndian] + chunk.map { UInt32(truncatingIfNeeded: $0).littleEndian }
            words.withUnsafeMutableBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        return Hex.encode(contiguous: hasher.finalize())
    }

    public init(chunks: [[Int]], path: String = "<memory>", sha256: String = "") {
        self.chunks = chunks; self.path = path; self.sha256 = sha256
    }

    /// Reads `path`, tokenizes `field` of each record and chunks it; `limit` caps the records read.
    public init(path: String, field: String = "text", tokenizer: BPETokenizer, chunkTokens: Int,
                limit: Int? = nil) throws {
        guard chunkTokens >= 2 else {
            throw ApproximateError.invalidValue(field: "chunk tokens", value: "\(chunkTokens)", reason: "must be at least 2")
        }
        let data = try Self.read(path)
        let texts = try Self.texts(data, path: path, field: field, limit: limit)
        var chunks: [[Int]] = []
        for text in texts {
            let ids = tokenizer.encode(text, allowSpecial: false)
            var start = 0
            while ids.count - start >= 2 {
                chunks.append(Array(ids[start ..< min(start + chunkTokens, ids.count)]))
                start += chunkTokens
            }
        }
        guard !chunks.isEmpty else { throw ApproximateError.emptyData(name: field, path: path) }
        self.path = path
        self.chunks = chunks
        sha256 = Hex.encode(contiguous: SHA256.hash(data: data))
    }

    /// The `field` strings of each record of the JSON Lines file at `path` (blank lines skipped).
    public static func texts(path: String, field: String = "text", limit: Int? = nil) throws -> [String] {
        try texts(read(path), path: path, field: field, limit: limit)
    }

    /// The bytes of `path`, or an error naming it.
    static func read(_ path: String) throws -> Data {
        do { return try InputFile.read(URL(fileURLWithPath: path)) } catch {
            throw ApproximateError.unreadableData(path: path, reason: fileErrorReason(error))
        }
    }

    /// The `field` strings of each line (blank lines skipped, but counted, so an error names
    /// the line an editor shows), read by the same strict scanner as `lethe plan`'s data: a
    /// repeated key, a lone surrogate or invalid UTF-8 is an error naming its column, and a
    /// UTF-8 byte-order mark is skipped at the start of the file only.
    static func texts(_ data: Data, path: String, field: String, limit: Int?) throws -> [String] {
        var out: [String] = []
        for (number, line) in FlatJSONScanner.nonBlankLines(of: data) {
            if let limit, out.count >= limit { break }
            let members: [(key: String, value: FlatJSONScanner.Value)]
            do { members = try FlatJSONScanner.members(ofLine: line) } catch {
                throw ApproximateError.badRecord(path: path, line: number, reason: "column \(error.column): \(error.reason)")
            }
            guard let value = members.first(where: { $0.key == field })?.value else {
                throw ApproximateError.badRecord(path: path, line: number, reason: "no string field '\(field)'")
            }
            guard case let .string(text) = value else {
                throw ApproximateError.badRecord(path: path, line: number,
                                                 reason: "field '\(field)' is a \(value.kindName), not a string")
            }
            out.append(text)
        }
        return out
    }

    /// Total tokens in all chunks.
    public var tokenCount: Int { chunks.reduce(0) { $0 + $1.count } }
}

/// B chunks right-padded to T tokens, with the rows that have a next token.
struct ChunkBatch {
    let ids: [Int32]
    let batch: Int
    let tokens: Int
    /// Rows (b·T + t) with t + 1 < length of chunk b: they predict a real next token.
    let predictionRows: [Int]
    /// The true next token of each prediction row.
    let nextTokens: [Int32]
    /// Every real (non-padding) row.
    let realRows: [Int]

    init(_ chunks: [[Int]], padID: Int) {
        let t = chunks.map(\.count).max() ?? 0
        var ids: [Int32] = [], rows: [Int] = [], next: [Int32] = [], real: [Int] = []
        for (b, c) in chunks.enumerated() {
            ids += c.map(Int32.init) + Array(repeating: Int32(padID), count: t - c.count)
            for i in 0 ..< c.count {
                real.append(b * t + i)
                if i + 1 < c.count { rows.append(b * t + i); next.append(Int32(c[i + 1])) }
            }
        }
        self.ids = ids; batch = chunks.count; tokens = t
        predictionRows = rows; nextTokens = next; realRows = real
    }
}

extension TextCorpus {
    /// SHA-256 (hex) of a file's bytes, e.g. the base model recorded with an adapter.
    public static func fileSHA256(path: String) throws -> String {
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
            throw ApproximateError.unreadableData(path: path, reason: fileErrorReason(error))
        }
        return Hex.encode(contiguous: SHA256.hash(data: data))
    }
}
