import CBLAS

/// What the loaded OpenBLAS is doing: which CPU kernels it chose and how many threads it uses.
///
/// Benchmarks print both, because `OPENBLAS_CORETYPE` in the environment can force slower
/// kernels and OpenBLAS reads it only when the library loads.
public enum BLASRuntime {
    /// The OpenBLAS core name, e.g. `Cooperlake` (AVX-512) or `Haswell` (AVX2).
    public static var coreName: String {
        guard let name = openblas_get_corename() else { return "unknown" }
        return String(cString: name)
    }

    /// The number of threads OpenBLAS uses for one call.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// Sets the number of threads OpenBLAS uses for one call (at least 1).
    public static func setThreadCount(_ count: Int) {
        precondition(count >= 1, "thread count must be at least 1")
        openblas_set_num_threads(Int32(count))
    }
}
