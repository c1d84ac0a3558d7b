/// A float32 buffer with a row-major shape, owned by the caller of the kernels.
///
/// The kernels themselves work on pointers with explicit shapes; `Tensor` only owns memory
/// (zero-initialised, 64-byte aligned) so callers need not manage allocation by hand.
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
    public init(shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        self.count = shape.reduce(1, *)
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        self.data = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        data.initialize(repeating: 0, count: max(count, 1))
    }

    /// A tensor holding `values` (count must match the shape).
    public convenience init(shape: [Int], values: [Float]) {
        self.init(shape: shape)
        precondition(values.count == count, "\(values.count) values for shape \(shape)")
        values.withUnsafeBufferPointer { data.update(from: $0.baseAddress!, count: count) }
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
