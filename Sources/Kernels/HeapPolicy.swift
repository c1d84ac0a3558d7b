import CMalloc

/// How the process's allocator treats freed memory.
///
/// A training step allocates its activations afresh (hundreds of MB for a decoder batch) and
/// frees them at its end. By default glibc serves blocks over 32 MB with `mmap` and returns
/// freed heap tops to the system, so every step faults those pages back in and the kernel
/// zeroes them: 7% of a decoder step's time on two threads. `retainFreedMemory()` keeps freed
/// memory in the heap for the next step instead; the process then stays at its peak size.
public enum HeapPolicy {
    /// Serves every allocation from the heap and never trims it (call once, at start-up).
    /// Returns false if glibc refused a setting (the process then runs with the defaults).
    @discardableResult
    public static func retainFreedMemory() -> Bool {
        mallopt(M_MMAP_MAX, 0) == 1 && mallopt(M_TRIM_THRESHOLD, Int32.max) == 1
    }

    /// Serves every block of 1 MB or more with its own mapping, returned to the system when it
    /// is freed (call once, at start-up). By default glibc raises that threshold to the size of
    /// each large block freed, and then serves such blocks from the heap, where the small
    /// allocations made between one batch's blocks and the next split the freed space: a
    /// process scoring batch after batch grew by gigabytes. Returns false if glibc refused.
    @discardableResult
    public static func mapLargeBlocks() -> Bool {
        mallopt(M_MMAP_THRESHOLD, 1 << 20) == 1
    }
}
