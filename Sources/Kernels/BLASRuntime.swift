import CBLAS
import CKernels
import Synchronization

/// What the loaded OpenBLAS is doing (which CPU kernels it chose) and how many threads the
/// products use.
///
/// Benchmarks print both, because `OPENBLAS_CORETYPE` in the environment can force slower
/// kernels and OpenBLAS reads it only when the library loads.
///
/// OpenBLAS itself always runs on the calling thread: its worker threads wait for work by
/// spinning on sched_yield, and between the hundreds of small products of a training step they
/// kept taking a core from the threads doing the work (12% of a two-thread training's samples
/// were in sched_yield; all-layer LoRA training rose from 60% to 70% of the peak without them).
/// The thread count here is Lethe's own: `PackedMatrix` and `MatMul` split large products over
/// that many threads in fixed parts. It is process-wide. Kernels that run many small products
/// on their own threads (`Attention`, thread groups) hold products to one thread for that region
/// through `withSingleThreadedProducts`; regions may nest and overlap across threads: one counter
/// under a lock makes the first region switch and the last one restore the configured count.
public enum BLASRuntime {
    /// The OpenBLAS core name, e.g. `Cooperlake` (AVX-512) or `Haswell` (AVX2).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The kernels this process's products run on, which a product's bits depend on: OpenBLAS's
    /// core and the instruction set of the frozen products, e.g. `OpenBLAS Cooperlake, AVX-512
    /// with BF16 (oneDNN)`. Recorded in stage files, so a replay on another CPU can say why its
    /// bits differ.
    public static var kernelDescription: String {
        let frozen = !PackedMatrix.usesOneDNN ? "AVX2 (panel kernels)"
            : lethe_cpu_has_avx512_bf16() != 0 ? "AVX-512 with BF16 (oneDNN)" : "AVX-512 (oneDNN)"
        return "OpenBLAS \(coreName), \(frozen)"
    }

    /// The number of threads one product uses outside single-threaded regions.
    public static var threadCount: Int {
        regions.withLock { $0.openRegions > 0 ? $0.configured : activeThreadCount }
    }

    /// The count products use right now (1 inside a single-threaded region).
    static var activeThreadCount: Int { active.load(ordering: .relaxed) }

    /// Sets the number of threads one product uses (at least 1); inside a single-threaded
    /// region it takes effect when the last region ends.
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
        regions.withLock { r in
            if let n = r.configure(count) { active.store(n, ordering: .relaxed) }
        }
    }

    /// Runs `body` with products on one thread, for kernels that multiply from their own
    /// threads. Products give the same bits either way: they are split in parts that depend on
    /// their shapes alone, never along the summed dimension.
    public static func withSingleThreadedProducts(_ body: () -> Void) {
        regions.withLock { r in
            if let n = r.open(current: activeThreadCount) { active.store(n, ordering: .relaxed) }
        }
        body()
        regions.withLock { r in
            if let n = r.close() { active.store(n, ordering: .relaxed) }
        }
    }

    /// Puts OpenBLAS on one thread, once per process, before its first product (`MatMul` calls
    /// this, so nothing multiplies through OpenBLAS's own threads).
    static func keepOpenBLASOnCallingThread() { _ = initialCount }

    /// OpenBLAS's own count when the process started (the cores, or OPENBLAS_NUM_THREADS): the
    /// products' count until `setThreadCount`. Reading it puts OpenBLAS on one thread.
    private static let initialCount: Int = {
        let count = Int(openblas_get_num_threads())
        openblas_set_num_threads(1)
        return max(1, count)
    }()

    private static let regions = Mutex(SingleThreadedRegions())
    private static let active = Atomic<Int>(initialCount)
}

/// The bookkeeping of `BLASRuntime`'s single-threaded regions: each transition returns the
/// thread count products use from then on, or nil when it stays.
struct SingleThreadedRegions {
    /// The count outside regions (what `setThreadCount` asked for last).
    var configured = 1
    var openRegions = 0

    /// A region opens while products use `current` threads.
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
