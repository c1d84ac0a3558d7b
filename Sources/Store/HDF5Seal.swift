import Crypto
import Foundation
import Support

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
/// `verifiedContents(of:)` reads the file once and recomputes both; any change to the file — a
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
        _ = try verifiedContents(of: url)
    }

    /// Every byte of the file at `url`, read once, after checking that they match its seal.
    ///
    /// The length the seal records is compared with the file's size before the content is
    /// read, so a cut or extended file costs no more than its first 512 bytes.
    /// - Throws: `StoreError.sealBroken` naming the file and what is wrong with it,
    ///   `fileNotFound`, or `io`.
    public static func verifiedContents(of url: URL) throws -> [UInt8] {
        let name = url.path
        let descriptor = try RegularFile.openForReading(name)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? StoreError.fileNotFound(file: name)
                                  : StoreError.io(file: name, operation: "open", errno: errno)
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw StoreError.io(file: name, operation: "fstat", errno: errno) }
        guard (status.st_mode & S_IFMT) == S_IFREG else {
            throw StoreError.sealBroken(file: name, reason: "it is not a regular file")
        }
        let size = Int(status.st_size)
        let header = try read(descriptor, count: min(size, userBlockSize), from: 0, file: name)
        let seal = try parse(header, file: name)
        guard size - userBlockSize == seal.byteCount else {
            let found = max(0, size - userBlockSize)
            throw StoreError.sealBroken(file: name, reason: "it holds \(found) bytes after its seal, which records "
                                        + "\(seal.byteCount): it was cut short or extended")
        }
        let contents = try read(descriptor, count: size, from: 0, file: name)
        var hasher = SHA256()
        contents.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[userBlockSize...])) }
        let digest = Hex.encode(contiguous: hasher.finalize())
        guard digest == seal.digest else {
            throw StoreError.sealBroken(file: name, reason: "its content hashes to \(digest.prefix(16))…, its seal "
                                        + "records \(seal.digest.prefix(16))…: it was damaged or edited")
        }
        return contents
    }

    /// The digest and byte count of a seal line, or `sealBroken` saying why `header` is none.
    private static func parse(_ header: [UInt8], file: String) throws -> (digest: String, byteCount: Int) {
        guard header.starts(with: Array(prefix.utf8)), let end = header.firstIndex(of: 0x0A) else {
            throw StoreError.sealBroken(file: file, reason: header.starts(with: [0x89, 0x48, 0x44, 0x46])
                                        ? "it carries no Lethe seal (written by another tool, or by an older Lethe)"
                                        : "its first bytes are not a Lethe seal")
        }
        let fields = header[prefix.utf8.count..<end].split(separator: 0x20, omittingEmptySubsequences: false)
        let hexDigits = Array("0123456789abcdef".utf8), decimalDigits = Array("0123456789".utf8)
        guard fields.count == 2, fields[0].count == 64, fields[0].allSatisfy(hexDigits.contains),
              (1...18).contains(fields[1].count), fields[1].allSatisfy(decimalDigits.contains),
              let byteCount = Int(String(decoding: fields[1], as: UTF8.self)),
              header.count == userBlockSize, header[(end + 1)...].allSatisfy({ $0 == 0 }) else {
            throw StoreError.sealBroken(file: file, reason: "its seal line is malformed")
        }
        return (String(decoding: fields[0], as: UTF8.self), byteCount)
    }

    /// Exactly `count` bytes from `offset`; a file that ends sooner changed while it was read.
    private static func read(_ descriptor: Int32, count: Int, from offset: Int, file: String) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: count)
        var done = 0
        while done < count {
            let got = bytes.withUnsafeMutableBytes { buffer in
                pread(descriptor, buffer.baseAddress.map { $0 + done }, count - done, off_t(offset + done))
            }
            if got < 0 && errno == EINTR { continue }
            guard got >= 0 else { throw StoreError.io(file: file, operation: "read", errno: errno) }
            guard got > 0 else {
                throw StoreError.sealBroken(file: file, reason: "it became shorter while it was read (another process "
                                            + "is writing it)")
            }
            done += got
        }
        return bytes
    }
}

extension HDF5File {
    /// Opens a sealed file read-only after checking its seal (`HDF5Seal`). The file is read
    /// once, into memory; HDF5 then parses that verified copy (its in-memory "core" driver), so
    /// damaged or edited bytes never reach libhdf5 — not even when the file is replaced between
    /// the check and the parse — and no HDF5 file lock is taken.
    ///
    /// Memory: the file's size twice while it is opened, then once until it is closed.
    /// - Parameter damaged: makes the error thrown when the seal does not match, from the reason
    ///   (the caller's own error, which says what to do about that kind of file); nil throws
    ///   `StoreError.sealBroken`.
    public static func openSealed(_ url: URL, damaged: ((_ reason: String) -> any Error)? = nil) throws -> HDF5File {
        let contents: [UInt8]
        do { contents = try HDF5Seal.verifiedContents(of: url) } catch StoreError.sealBroken(let file, let reason) {
            throw damaged?(reason) ?? StoreError.sealBroken(file: file, reason: reason)
        }
        return try open(image: contents, of: url)
    }
}
