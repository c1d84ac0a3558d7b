import CBLAS
import Synchronization

/// What the loaded OpenBLAS is doing: which CPU kernels it chose and how many threads it uses.
///
/// Benchmarks print both, because `OPENBLAS_CORETYPE` in the environment can force slower
/// kernels and OpenBLAS reads it only when the library loads.
///
/// The thread count is process-wide (OpenBLAS 0.3.21 has no per-thread setting). Kernels that
/// run many small products on their own threads (`Attention`) switch OpenBLAS to one thread
/// for that region through `withSingleThreadedBLAS`; regions may nest and overlap across
/// threads: one counter under a lock makes the first region switch and the last one restore
/// the configured count, so concurrent regions can never leave OpenBLAS on the wrong count.
public enum BLASRuntime {
    /// The OpenBLAS core name, e.g. `Cooperlake` (AVX-512) or `Haswell` (AVX2).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The number of threads OpenBLAS uses for one call outside single-threaded regions.
    public static var threadCount: Int {
        regions.withLock { $0.openRegions > 0 ? $0.configured : Int(openblas_get_num_threads()) }
    }

    /// The count OpenBLAS uses right now (1 inside a single-threaded region).
    static var activeThreadCount: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of threads OpenBLAS uses for one call (at least 1); inside a
    /// single-threaded region it takes effect when the last region ends.
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
        regions.withLock { r in
            if let n = r.configure(count) { openblas_set_num_threads(Int32(n)) }
        }
    }

    /// Runs `body` with OpenBLAS on one thread, for kernels that call BLAS from their own
    /// threads (two threaded OpenBLAS calls at once serialise on its internal lock).
    /// Products give the same bits either way: OpenBLAS splits a product by output blocks,
    /// never along the summed dimension.
    public static func withSingleThreadedBLAS(_ body: () -> Void) {
        regions.withLock { r in
            if let n = r.open(current: Int(openblas_get_num_threads())) { openblas_set_num_threads(Int32(n)) }
        }
        body()
        regions.withLock { r in
            if let n = r.close() { openblas_set_num_threads(Int32(n)) }
        }
    }

    private static let regions = Mutex(SingleThreadedRegions())
}

/// The bookkeeping of `BLASRuntime`'s single-threaded regions: each transition returns the
/// thread count to hand to OpenBLAS, or nil when OpenBLAS must be left alone.
struct SingleThreadedRegions {
    /// The count outside regions (what `setThreadCount` asked for last).
    var configured = 1
    var openRegions = 0

    /// A region opens while OpenBLAS runs `current` threads.
    mutating func open(current: Int) -> Int? {
        defer { openRegions += 1 }
        guard openRegions == 0 else { return nil }
        configured = current
        return current == 1 ? nil : 1
    }

    /// A region ends; the last one restores the configured count.
    mutating func close() -> Int? {
        precondition(openRegions > 0, "closing a single-threaded BLAS region that is not open")
        openRegions -= 1
        return openRegions == 0 && configured != 1 ? configured : nil
    }

    /// The caller asks for `count` threads: applied now outside regions, at the end inside.
    mutating func configure(_ count: Int) -> Int? {
        configured = count
        return openRegions == 0 ? count : nil
    }
}
