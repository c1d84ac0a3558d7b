/// The arithmetic of the products on frozen base weights.
///
/// - `fp32`: float32 everywhere (frozen products through oneDNN, the rest through OpenBLAS).
/// - `bf16`: the frozen weights are rounded to bfloat16 once per process; each product
///   rounds its float32 input to bfloat16 at the boundary and accumulates in float32 (oneDNN,
///   AVX512-BF16 where the CPU has it). Everything else — adapters, gradients, optimiser
///   state, norms, softmax, losses — stays float32.
public enum Precision: String, Sendable, Codable, CaseIterable, CustomStringConvertible {
    case fp32
    case bf16

    public var description: String { rawValue }
}
