import Foundation
import Testing
@testable import Store

/// `HDF5Seal`: a sealed file round-trips, and any change to its bytes — a flipped bit anywhere,
/// a cut, an extension, a missing or damaged seal line — is refused before HDF5 opens it.
@Suite struct SealTests {
    static func sealedFile(_ scratch: ScratchDirectory) throws -> URL {
        let url = scratch.file("sealed.h5")
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            try file.write((0..<4096).map(Float.init), shape: [64, 64], at: "adapters/lora_A")
            try file.write(["a", "b", "ç"], at: "ids")
            try file.setAttribute("lethe-test", named: "format")
        }
        return url
    }

    static func refusal(_ url: URL) -> String? {
        do {
            let file = try HDF5File.openSealed(url)
            try file.close()
            return nil
        } catch StoreError.sealBroken(let file, let reason) {
            return file == url.path ? reason : "wrong file \(file)"
        } catch {
            return "other error: \(error)"
        }
    }

    @Test func aSealedFileRoundTripsAndStartsWithItsSeal() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = try Self.sealedFile(scratch)
        let bytes = try Data(contentsOf: url)
        #expect(bytes.starts(with: Data("lethe-sha256 ".utf8)))
        #expect(bytes[HDF5Seal.userBlockSize..<HDF5Seal.userBlockSize + 4] == Data([0x89, 0x48, 0x44, 0x46]))
        let file = try HDF5File.openSealed(url)
        #expect(try file.readFloats(at: "adapters/lora_A").0 == (0..<4096).map(Float.init))
        try file.close()
    }

    @Test func everyFlippedBitIsRefused() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = try Self.sealedFile(scratch)
        let original = try Data(contentsOf: url)
        var generator = SystemRandomNumberGenerator()
        var positions = [0, 13, 20, 80, HDF5Seal.userBlockSize, original.count - 1]
        positions += (0..<60).map { _ in Int.random(in: 0..<original.count, using: &generator) }
        for position in positions {
            var damaged = original
            damaged[position] ^= UInt8(1 << Int.random(in: 0..<8, using: &generator))
            try damaged.write(to: url)
            #expect(Self.refusal(url) != nil, "flip at byte \(position) of \(original.count)")
        }
        try original.write(to: url)
        #expect(Self.refusal(url) == nil)
    }

    @Test func cutExtendedAndUnsealedFilesAreRefusedWithTheReason() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = try Self.sealedFile(scratch)
        let original = try Data(contentsOf: url)
        try original.prefix(original.count - 100).write(to: url)
        #expect(Self.refusal(url)?.contains("cut short or extended") == true)
        try (original + Data([0])).write(to: url)
        #expect(Self.refusal(url)?.contains("cut short or extended") == true)
        try original.prefix(200).write(to: url)
        #expect(Self.refusal(url) != nil)
        try Data().write(to: url)
        #expect(Self.refusal(url)?.contains("not a Lethe seal") == true)

        let plain = scratch.file("plain.h5")
        try HDF5File.writeAtomically(to: plain) { try $0.setAttribute("x", named: "format") }
        #expect(Self.refusal(plain)?.contains("carries no Lethe seal") == true)
        #expect(throws: StoreError.fileNotFound(file: scratch.file("missing.h5").path)) {
            try HDF5File.openSealed(scratch.file("missing.h5"))
        }
    }
}
