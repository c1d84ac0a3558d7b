import Dispatch

/// Fixed work partitions run on a given number of threads.
///
/// Work is cut into chunks whose boundaries depend only on the problem size, never on the
/// thread count; each chunk is computed by exactly one thread and any reduction across chunks
/// is done afterwards in chunk order. So a kernel built on this gives the same bits for any
/// thread count (the determinism contract of the kernels).
public enum Parallel {
    /// Calls `body(chunkIndex, range)` for each chunk of `0..<count` of `chunkSize` items,
    /// distributing contiguous runs of chunks over `threads` threads.
    static func forEachChunk(count: Int, chunkSize: Int, threads: Int,
                             _ body: (Int, Range<Int>) -> Void) {
        precondition(chunkSize >= 1 && threads >= 1, "chunk size and thread count must be positive")
        guard count > 0 else { return }
        let chunkCount = (count + chunkSize - 1) / chunkSize
        let workerCount = min(threads, chunkCount)
        if workerCount == 1 {
            for c in 0..<chunkCount { body(c, c * chunkSize..<min(count, (c + 1) * chunkSize)) }
            return
        }
        withoutActuallyEscaping(body) { escaping in
            let box = UncheckedSendable(escaping)
            DispatchQueue.concurrentPerform(iterations: workerCount) { worker in
                let first = worker * chunkCount / workerCount
                let last = (worker + 1) * chunkCount / workerCount
                for c in first..<last {
                    box.value(c, c * chunkSize..<min(count, (c + 1) * chunkSize))
                }
            }
        }
    }

    /// Number of chunks `forEachChunk` makes for `count` items.
    static func chunkCount(_ count: Int, chunkSize: Int) -> Int {
        (count + chunkSize - 1) / chunkSize
    }

    /// `body(i)` for every i in `0..<count`, item i on worker i mod `threads`, with products on
    /// one thread meanwhile: for items that are whole jobs of their own (a group of sequences, a
    /// batch), each run single-threaded. Returns the results in item order; an error is
    /// rethrown for the first failing item once every item has run.
    public static func mapSingleThreaded<T>(count: Int, threads: Int, _ body: (Int) throws -> T) throws -> [T] {
        precondition(threads >= 1, "thread count must be positive")
        let results = UnsafeMutableBufferPointer<Result<T, Error>?>.allocate(capacity: count)
        results.initialize(repeating: nil)
        defer { results.deinitialize(); results.deallocate() }
        withoutActuallyEscaping(body) { escaping in
            let shared = UncheckedSendable((escaping, results))
            BLASRuntime.withSingleThreadedProducts {
                DispatchQueue.concurrentPerform(iterations: min(threads, count)) { worker in
                    let (body, results) = shared.value
                    for i in stride(from: worker, to: count, by: threads) { results[i] = Result { try body(i) } }
                }
            }
        }
        return try results.map { try $0!.get() }
    }
}

/// Carries a value into a `@Sendable` closure when the caller guarantees that concurrent
/// uses touch disjoint memory (the kernels' fixed partitions).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
