import Foundation
import Support

/// A read-only memory mapping of a whole file, unmapped when the last reference goes away.
///
/// Mapping (instead of reading) lets a 90 MB weight file be indexed instantly and paged in only
/// where tensors are actually read.
final class MappedFile: @unchecked Sendable {
    // Immutable after init and never written through: safe to share across threads.
    let bytes: UnsafePointer<UInt8>
    let byteCount: Int
    private let mappedAddress: UnsafeMutableRawPointer?

    /// Throws unless `path` (links followed) is a regular file or does not exist (the read that
    /// follows names that), without opening it: a FIFO is refused, not waited on.
    static func requireRegular(_ path: String) throws {
        if let kind = FileKind.irregular(atPath: path) {
            throw ModelsError.fileUnreadable(path: path, reason: kind + ", not a regular file")
        }
    }

    init(path: String) throws {
        // O_NONBLOCK: opening a FIFO would otherwise wait for a writer; it is then refused below.
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw ModelsError.fileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        defer { close(fd) }
        var status = stat()
        guard fstat(fd, &status) == 0 else {
            throw ModelsError.fileUnreadable(path: path, reason: String(cString: strerror(errno)))
        }
        if let kind = FileKind.irregular(status.st_mode) {
            throw ModelsError.fileUnreadable(path: path, reason: kind + ", not a regular file")
        }
        byteCount = Int(status.st_size)
        if byteCount == 0 {
            // mmap rejects length 0; an empty file has no bytes to point at.
            mappedAddress = nil
            bytes = UnsafePointer(UnsafeMutablePointer<UInt8>.allocate(capacity: 1))
            return
        }
        guard let address = mmap(nil, byteCount, PROT_READ, MAP_PRIVATE, fd, 0), address != MAP_FAILED else {
            throw ModelsError.fileUnreadable(path: path, reason: "mmap failed: \(String(cString: strerror(errno)))")
        }
        mappedAddress = address
        bytes = UnsafePointer(address.assumingMemoryBound(to: UInt8.self))
    }

    deinit {
        if let mappedAddress {
            munmap(mappedAddress, byteCount)
        } else {
            UnsafeMutablePointer(mutating: bytes).deallocate()
        }
    }
}
