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
}
