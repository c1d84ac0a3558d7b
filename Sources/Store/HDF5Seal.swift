import Foundation

/// A content hash in the user block of an HDF5 file, checked before HDF5 reads a byte of it.
///
/// libhdf5 trusts the structures it reads: a flipped bit in a file's metadata can make it read
/// out of bounds and crash the process. So files that Lethe writes and later trusts (plans,
/// stage checkpoints, adapters) are *sealed*: they are created with a 512-byte user block,
/// which HDF5, h5py and h5dump skip, and once the file is complete and closed its first bytes
/// become the ASCII line
///
///     lethe-sha256 <64 lowercase hex digits> <byte count>\n
///
/// (zero-padded to 512 bytes): the SHA-256 and the length of every byte after the user block.
/// `check` recomputes both from the file before it is opened; any change to the file — a
/// damaged sector, a truncated copy, an edit by another tool — is a `StoreError.sealBroken`
/// naming the file. The seal is integrity against accidents; the tensor hashes and
/// `lethe verify --replay` remain the defence against deliberate edits, since anyone can
/// compute a SHA-256.
public enum HDF5Seal {
    /// The user block size: HDF5's smallest, so the hashed content starts at byte 512.
    public static let userBlockSize = 512
    static let prefix = "lethe-sha256 "

    /// Writes the seal into the user block of the complete, closed file at `url`.
    public static func seal(fileAt url: URL) throws {
        let (digest, count) = try FileDigest.sha256(of: url, from: userBlockSize)
        var header = Array((prefix + digest + " \(count)\n").utf8)
        header += [UInt8](repeating: 0, count: userBlockSize - header.count)
        let descriptor = open(url.path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError.io(file: url.path, operation: "open to seal", errno: errno) }
        defer { close(descriptor) }
        let written = header.withUnsafeBytes { pwrite(descriptor, $0.baseAddress, $0.count, 0) }
        guard written == header.count else { throw StoreError.io(file: url.path, operation: "write the seal", errno: errno) }
    }

    /// Throws `StoreError.sealBroken` unless the file at `url` carries a seal that matches its
    /// content (`fileNotFound` when nothing is there).
    public static func check(fileAt url: URL) throws {
        guard FileManager.default.fileExists(atPath: url.path) else { throw StoreError.fileNotFound(file: url.path) }
        let header = try readHeader(url)
        guard header.starts(with: Array(prefix.utf8)), let end = header.firstIndex(of: 0x0A) else {
            throw StoreError.sealBroken(file: url.path, reason: header.starts(with: [0x89, 0x48, 0x44, 0x46])
                                        ? "it carries no Lethe seal (written by another tool, or by an older Lethe)"
                                        : "its first bytes are not a Lethe seal")
        }
        let fields = String(decoding: header[prefix.utf8.count..<end], as: UTF8.self).split(separator: " ")
        guard fields.count == 2, fields[0].count == 64, let recordedCount = Int(fields[1]),
              header.count == userBlockSize, header[(end + 1)...].allSatisfy({ $0 == 0 }) else {
            throw StoreError.sealBroken(file: url.path, reason: "its seal line is malformed")
        }
        let (digest, count) = try FileDigest.sha256(of: url, from: userBlockSize)
        guard count == recordedCount else {
            throw StoreError.sealBroken(file: url.path, reason: "it holds \(count) bytes after the seal, the seal "
                                        + "records \(recordedCount) (cut short or extended)")
        }
        guard digest == fields[0] else {
            throw StoreError.sealBroken(file: url.path, reason: "its content hashes to \(digest.prefix(16))…, the seal "
                                        + "records \(fields[0].prefix(16))… (damaged or edited)")
        }
    }

    private static func readHeader(_ url: URL) throws -> [UInt8] {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw StoreError.io(file: url.path, operation: "open", errno: errno) }
        defer { close(descriptor) }
        var header = [UInt8](repeating: 0, count: userBlockSize)
        let count = header.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
        guard count >= 0 else { throw StoreError.io(file: url.path, operation: "read", errno: errno) }
        return Array(header.prefix(count))
    }
}

extension HDF5File {
    /// Opens a sealed file after checking its seal (`HDF5Seal`): damaged or edited bytes are a
    /// `StoreError.sealBroken` naming the file, and never reach libhdf5.
    public static func openSealed(_ url: URL, mode: Mode = .readOnly) throws -> HDF5File {
        try HDF5Seal.check(fileAt: url)
        return try open(url, mode: mode)
    }
}
