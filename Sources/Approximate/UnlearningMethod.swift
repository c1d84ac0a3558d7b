/// The seven gradient-based unlearning methods of Yao et al. (ACL 2024), docs/DESIGN.md §2.
///
/// ℓ(θ; x, y) is the mean next-token NLL of a chunk; λ = 1; forget and retain/general chunks
/// are paired 1:1 (step k uses forget batch k and retain batch k, both cycled).
public enum UnlearningMethod: String, CaseIterable, Codable, Sendable {
    /// −ℓ(θ; x_f)
    case gradientAscent = "ga"
    /// ℓ(θ; x_f, ỹ), ỹ_t uniform over the vocabulary (drawn once per chunk from the seed).
    case randomLabel = "random-label"
    /// ℓ(θ; x_f, ỹ), ỹ_t = the most likely wrong next token under θ0 (computed once).
    case adversarial = "adversarial"
    /// −ℓ(θ; x_f) + λ·ℓ(θ; x_in)
    case ascentDescentInDistribution = "ga-gd-in"
    /// −ℓ(θ; x_f) + λ·ℓ(θ; x_gen)
    case ascentDescentGeneral = "ga-gd-gen"
    /// −ℓ(θ; x_f) + λ·KL(p_θ0 ‖ p_θ) on x_in, real tokens only
    case ascentKLInDistribution = "ga-kl-in"
    /// −ℓ(θ; x_f) + λ·KL(p_θ0 ‖ p_θ) on x_gen, real tokens only
    case ascentKLGeneral = "ga-kl-gen"

    /// Which data set the second term uses.
    public enum Companion: String, Sendable { case inDistribution = "retain", general = "general" }

    /// The data set of the second term (nil for the forget-only methods).
    public var companion: Companion? {
        switch self {
        case .gradientAscent, .randomLabel, .adversarial: return nil
        case .ascentDescentInDistribution, .ascentKLInDistribution: return .inDistribution
        case .ascentDescentGeneral, .ascentKLGeneral: return .general
        }
    }

    /// Whether the second term is KL to the frozen original model (else NLL descent).
    public var usesKL: Bool { self == .ascentKLInDistribution || self == .ascentKLGeneral }

    /// Whether the forget term is ascent on the true tokens (else descent on replaced labels).
    public var ascendsOnForget: Bool { self != .randomLabel && self != .adversarial }
}
