import Crypto
import Foundation
import Support

/// The content hash of a slice: the lineage key of every checkpoint trained on it.
///
/// Encoding (also in docs/FORMAT.md): take the slice's member ids, sort them by their UTF-8
/// bytes, join them with a single newline byte 0x0A (no trailing newline), and hash those bytes
/// with SHA-256. The result is written as 64 lowercase hex digits. Ids never contain control
/// characters (the dataset reader refuses them), so the joined form is unambiguous. As in SISA,
/// a slice with the same members has the same hash, whatever run or order produced it.
public enum SliceHash {
    /// The hash of ids that are already sorted by UTF-8 bytes (the order plans keep them in).
    public static func of(sortedIDs ids: some Collection<String>) -> String {
        var hasher = SHA256()
        var first = true
        for id in ids {
            if !first { hasher.update(data: [UInt8(0x0A)]) }
            first = false
            var id = id
            id.withUTF8 { hasher.update(bufferPointer: UnsafeRawBufferPointer($0)) }
        }
        return Hex.encode(contiguous: hasher.finalize())
    }

    /// The hash of ids in any order.
    public static func of(ids: some Sequence<String>) -> String {
        of(sortedIDs: ids.sorted(by: UTF8Order.precedes))
    }
}
