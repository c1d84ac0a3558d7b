import CHDF5
import Foundation

/// The most a single read may allocate: the machine's physical memory.
///
/// Shapes and counts come from the file, so a damaged or hostile header can claim 10¹²
/// elements, or dimensions whose product overflows an Int. Such a read is refused with
/// `StoreError.tooLarge` or `.corrupt` before anything is allocated, instead of ending the
/// process with a failed allocation or an overflow trap.
enum ReadLimit {
    /// Bytes one read may allocate.
    static let byteCount = Int(clamping: ProcessInfo.processInfo.physicalMemory)

    /// The shape `dims` as Ints, or nil when a dimension or their product exceeds `Int.max`.
    static func shape(_ dims: [hsize_t]) -> [Int]? {
        var product = 1
        var shape: [Int] = []
        for dimension in dims {
            guard let size = Int(exactly: dimension) else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: size)
            guard !overflow else { return nil }
            product = next
            shape.append(size)
        }
        return shape
    }

    /// Whether `count` elements of `elementByteCount` bytes each fit in `byteCount`.
    static func allows(_ count: Int, elementByteCount: Int) -> Bool {
        let (total, overflow) = count.multipliedReportingOverflow(by: elementByteCount)
        return count >= 0 && !overflow && total <= byteCount
    }
}
