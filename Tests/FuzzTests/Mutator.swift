import Foundation
import Support

/// Deterministic mutations of a valid input, the way a coverage-less fuzzer makes them: flipped
/// bits, bytes set to boundary values, inserted, deleted and duplicated ranges, truncations,
/// integers set to extremes and powers of two (sizes and counts of binary headers), and for
/// text formats splices of tokens that trip parsers (unbalanced quotes and brackets, escapes,
/// huge numbers). Each mutant applies one to four of them. The same seed gives the same mutants.
struct Mutator {
    private var generator: SplitMix64

    init(seed: UInt64) { generator = SplitMix64(seed: seed) }

    static let boundaryBytes: [UInt8] = [0x00, 0x01, 0x7F, 0x80, 0xFE, 0xFF, 0x0A, 0x22, 0x5C]
    static let textTokens: [String] = [
        "\"", "{", "}", "[", "]", ":", ",", "\\", "\\u0000", "\\ud800", "\n", "\r\n", "null", "true", "-",
        "1e999", "-0", "18446744073709551616", "-9223372036854775809", "NaN", "\u{FEFF}", "é", "\u{10FFFF}",
        "{\"id\":", "\"group\":", "\"text\":", "\"label\":",
        "9223372036854775807", "4611686018427387904", "4294967296", "1000000000000", "2.5", "1e308", "\"\"\"",
        "[[[[[[[[[[[[[[[[", "]]]]]]]]", "{\"a\":{\"a\":{\"a\":", "\u{FFFD}", "\\u", "\\ud83d\\ude00", "\t", "\u{7F}",
    ]
    /// Values written over 8 bytes of a binary input: extremes, and powers of two, which pass
    /// "is a power of two" checks and overflow sums and products.
    static let extremeIntegers: [UInt64] = [0, 1, UInt64(Int32.max), UInt64(UInt32.max), UInt64(Int64.max), UInt64.max,
                                            1 << 31, 1 << 32, 1 << 40, 1 << 62, 1 << 63, 1_000_000_000_000]

    mutating func int(_ bound: Int) -> Int { bound <= 0 ? 0 : generator.next(below: bound) }

    /// One mutant of `input`.
    mutating func mutate(_ input: [UInt8], text: Bool) -> [UInt8] {
        var bytes = input
        for _ in 0...int(4) { apply(to: &bytes, text: text) }
        return bytes
    }

    private mutating func apply(to bytes: inout [UInt8], text: Bool) {
        let position = int(bytes.count + 1)
        switch int(text ? 8 : 7) {
        case 0 where !bytes.isEmpty:
            bytes[min(position, bytes.count - 1)] ^= UInt8(1 << int(8))
        case 1 where !bytes.isEmpty:
            bytes[min(position, bytes.count - 1)] = Self.boundaryBytes[int(Self.boundaryBytes.count)]
        case 2:
            bytes.insert(contentsOf: (0..<(1 + int(8))).map { _ in UInt8(int(256)) }, at: position)
        case 3 where !bytes.isEmpty:
            let end = min(bytes.count, position + 1 + int(32))
            bytes.removeSubrange(min(position, bytes.count - 1)..<end)
        case 4 where !bytes.isEmpty:
            let start = int(bytes.count), end = min(bytes.count, start + 1 + int(64))
            bytes.insert(contentsOf: bytes[start..<end], at: position)
        case 5:
            bytes.removeSubrange(min(position, bytes.count)...)
        case 6 where bytes.count >= 8:
            // An integer field set to an extreme: lengths and counts in binary headers.
            let at = int(bytes.count - 7)
            let value = Self.extremeIntegers[int(Self.extremeIntegers.count)]
            for k in 0..<8 { bytes[at + k] = UInt8(truncatingIfNeeded: value >> (8 * UInt64(k))) }
        default:
            bytes.insert(contentsOf: Array(Self.textTokens[int(Self.textTokens.count)].utf8), at: position)
        }
    }
}

/// What a fuzz campaign saw.
struct FuzzTally: CustomStringConvertible {
    let parser: String
    var accepted = 0
    var rejected = 0
    var description: String { "\(parser): \(accepted + rejected) mutants, \(accepted) accepted, \(rejected) rejected with an error, 0 crashes" }
}

/// How many mutants per parser: `LETHE_FUZZ_COUNT` (make fuzz), else the default of `make test`.
func fuzzCount(default count: Int) -> Int {
    Int(ProcessInfo.processInfo.environment["LETHE_FUZZ_COUNT"] ?? "") ?? count
}

/// Feeds `count` mutants of `seed` to `parse`, which must return or throw; a trap or a hang
/// ends the test process, which fails the run. Returns the tally (also printed).
func fuzz(_ parser: String, seed: [UInt8], text: Bool, count: Int, randomSeed: UInt64,
          _ parse: ([UInt8]) throws -> Void) -> FuzzTally {
    var mutator = Mutator(seed: randomSeed)
    var tally = FuzzTally(parser: parser)
    for _ in 0..<count {
        do {
            try parse(mutator.mutate(seed, text: text))
            tally.accepted += 1
        } catch {
            tally.rejected += 1
        }
    }
    print("fuzz \(tally)")
    return tally
}
