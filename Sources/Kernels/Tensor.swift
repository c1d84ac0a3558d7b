import Synchronization

/// A float32 buffer with a row-major shape, owned by the caller of the kernels.
///
/// The kernels themselves work on pointers with explicit shapes; `Tensor` only owns memory
/// (64-byte aligned; zero-filled unless made by `scratch(shape:)`) so callers need not manage
/// allocation by hand.
/// Not thread-safe for concurrent writes; copy semantics are reference semantics.
/// Lifetime: `data` is valid while the tensor is alive. Keep the tensor in a named variable
/// while a kernel uses its pointer; `makeTensor().data` passed straight to a call can dangle.
public final class Tensor: @unchecked Sendable {
    /// Row-major dimensions, outermost first.
    public let shape: [Int]
    /// Number of elements, the product of `shape`.
    public let count: Int
    /// The elements; valid for the lifetime of the tensor.
    public let data: UnsafeMutablePointer<Float>

    /// A zero-filled tensor of the given shape.
    public convenience init(shape: [Int]) { self.init(shape: shape, fill: 0) }

    /// A tensor whose elements are left as the allocator hands them over: for buffers that a
    /// kernel overwrites entirely before anything reads them (saved activations, scratch), so
    /// no time goes into a zero fill that is never read. When `scratchPoison` is set the
    /// elements are filled with it instead, so a test can show that no element is read unwritten.
    public static func scratch(shape: [Int]) -> Tensor {
        Tensor(shape: shape, fill: scratchPoison)
    }

    /// What `scratch(shape:)` fills its elements with (nil: nothing). Tests set NaN.
    public static var scratchPoison: Float? {
        get {
            let bits = poisonBits.load(ordering: .relaxed)
            return bits == 0 ? nil : Float(bitPattern: UInt32(truncatingIfNeeded: bits))
        }
        set { poisonBits.store(newValue.map { 1 << 32 | UInt64($0.bitPattern) } ?? 0, ordering: .relaxed) }
    }
    /// 0, or 2³² + the poison's bit pattern.
    private static let poisonBits = Atomic<UInt64>(0)

    private init(shape: [Int], fill: Float?) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        if let fill { data.initialize(repeating: fill, count: max(count, 1)) }
    }

    /// A tensor holding `values` (count must match the shape).
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape, fill: nil)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { source in
            if let base = source.baseAddress { data.update(from: base, count: count) }
        }
    }

    deinit { data.deinitialize(count: max(count, 1)); UnsafeMutableRawPointer(data).deallocate() }

    /// The elements as a read-only pointer.
    public var pointer: UnsafePointer<Float> { UnsafePointer(data) }

    /// A view of the elements as a buffer.
    public var buffer: UnsafeMutableBufferPointer<Float> {
        UnsafeMutableBufferPointer(start: data, count: count)
    }

    /// The elements copied into an array.
    public var values: [Float] { Array(buffer) }

    /// Sets every element to zero (gradients are accumulated, so callers zero them).
    public func zero() { data.update(repeating: 0, count: count) }

    /// Adds the elements of `other`, which must have the same count, element by element
    /// (gradient replicas are summed into their original this way).
    public func add(_ other: Tensor) {
        precondition(other.count == count, "sum of \(other.count) elements into \(count)")
        for i in 0..<count { data[i] += other.data[i] }
    }

    /// Copies the elements of `other`, which must have the same count.
    public func copy(from other: Tensor) {
        precondition(other.count == count, "copy of \(other.count) elements into \(count)")
        data.update(from: other.data, count: count)
    }

    public subscript(index: Int) -> Float {
        get { data[index] }
        set { data[index] = newValue }
    }
}
