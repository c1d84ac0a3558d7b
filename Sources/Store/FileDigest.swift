import Crypto
import Foundation
import Support

/// SHA-256 of files, as lowercase hex.
public enum FileDigest {
    /// SHA-256 (lowercase hex) and length of the file's bytes from `offset` on, read in 1 MiB
    /// chunks.
    public static func sha256(of url: URL, from offset: Int = 0) throws -> (hex: String, byteCount: Int) {
        let descriptor = open(url.path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else {
            throw errno == ENOENT ? StoreError.fileNotFound(file: url.path)
                                  : StoreError.io(file: url.path, operation: "open", errno: errno)
        }
        defer { close(descriptor) }
        var hasher = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position = off_t(offset), total = 0
        while true {
            let count = buffer.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, position) }
            if count < 0 && errno == EINTR { continue }
            guard count >= 0 else { throw StoreError.io(file: url.path, operation: "read", errno: errno) }
            if count == 0 { break }
            buffer.withUnsafeBytes { hasher.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0.prefix(count))) }
            position += off_t(count); total += count
        }
        return (Hex.encode(contiguous: hasher.finalize()), total)
    }
}
