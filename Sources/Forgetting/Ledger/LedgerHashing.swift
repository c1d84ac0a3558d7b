import Crypto
import Foundation
import Support

/// The canonical encoding of a ledger entry and its SHA-256, which chains entries together.
///
/// hash(n) = SHA-256( "lethe-ledger-v1" 0x00
///                    ‖ u64be(seq) ‖ i64be(timestamp ms)
///                    ‖ str(kind) ‖ str(payload)
///                    ‖ u32be(key count) ‖ for each key in sorted order: str(field) ‖ str(value)
///                    ‖ previous hash (32 raw bytes; all zero for entry 1) )
/// where str(s) = u32be(UTF-8 byte count) ‖ UTF-8 bytes. Length prefixes make the encoding
/// injective (no two different entries share an encoding), the domain tag keeps the hashes
/// apart from any other SHA-256 in Lethe, and including the previous hash makes each hash
/// commit to the entire history before it. The index keys are covered too, so the side table
/// that answers "which entries mention example x" is as tamper-evident as the payload.
enum LedgerHashing {
    /// 64 zeros: the previous hash of the first entry.
    static let genesisHash = String(repeating: "0", count: 64)

    static let domainTag = Array("lethe-ledger-v1".utf8) + [0]

    /// The hex SHA-256 of one entry; `previousHash` is hex (64 characters).
    static func hash(sequenceNumber: Int64, timestampMilliseconds: Int64, kind: String,
                     payload: String, sortedKeys: [LedgerKey], previousHash: String) -> String {
        var encoding = Encoding()
        return encoding.hash(sequenceNumber: sequenceNumber, timestampMilliseconds: timestampMilliseconds,
                             kind: kind, payload: payload, sortedKeys: sortedKeys,
                             previousHash: previousHash)
    }

    /// A reusable buffer for the canonical encoding, so hashing a batch allocates once.
    struct Encoding {
        private var bytes: [UInt8] = []

        mutating func hash(sequenceNumber: Int64, timestampMilliseconds: Int64, kind: String,
                           payload: String, sortedKeys: [LedgerKey], previousHash: String) -> String {
            bytes.removeAll(keepingCapacity: true)
            bytes.append(contentsOf: LedgerHashing.domainTag)
            append(UInt64(bitPattern: sequenceNumber))
            append(UInt64(bitPattern: timestampMilliseconds))
            append(kind)
            append(payload)
            append(UInt32(sortedKeys.count))
            for key in sortedKeys {
                append(key.field.rawValue)
                append(key.value)
            }
            LedgerHashing.appendBytes(ofHex: previousHash, to: &bytes)
            return LedgerHashing.hex(SHA256.hash(data: bytes))
        }

        private mutating func append(_ value: UInt64) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }

        private mutating func append(_ value: UInt32) {
            withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
        }

        private mutating func append(_ text: String) {
            append(UInt32(text.utf8.count))
            bytes.append(contentsOf: text.utf8)
        }
    }

    /// Whether `text` is 64 lower-case hex digits.
    static func isHash(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { (48...57).contains($0) || (97...102).contains($0) }
    }

    /// Lower-case hex of a digest.
    static func hex(_ digest: SHA256Digest) -> String { Hex.encode(contiguous: digest) }

    /// Appends the raw bytes of a 64-digit hex string. Malformed text (possible only after
    /// tampering) is appended as-is, which can never reproduce a valid chain, so verification
    /// reports the entry.
    static func appendBytes(ofHex text: String, to bytes: inout [UInt8]) {
        var text = text
        text.withUTF8 { appendBytes(ofHexDigits: $0, to: &bytes) }
    }

    private static func appendBytes(ofHexDigits digits: UnsafeBufferPointer<UInt8>,
                                    to bytes: inout [UInt8]) {
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            default: return nil
            }
        }
        guard digits.count == 64 else {
            bytes.append(contentsOf: digits)
            return
        }
        // Decoded into a fixed buffer and appended once (per-byte appends cost more than SHA-256).
        var raw: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)
        let valid = withUnsafeMutableBytes(of: &raw) { out -> Bool in
            for index in 0..<32 {
                guard let high = nibble(digits[2 * index]), let low = nibble(digits[2 * index + 1]) else { return false }
                out[index] = high << 4 | low
            }
            return true
        }
        if valid {
            withUnsafeBytes(of: &raw) { bytes.append(contentsOf: $0) }
        } else {
            bytes.append(contentsOf: digits)
        }
    }
}
