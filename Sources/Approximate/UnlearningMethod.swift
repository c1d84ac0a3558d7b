/// The gradient-based unlearning methods: the seven of Yao et al. (ACL 2024), negative preference
/// optimisation (NPO, Zhang et al. 2024) and its reference-free variant SimNPO (Fan et al. 2024),
/// the last two alone and with descent on retain data (docs/DESIGN.md §2).
///
/// ℓ(θ; x, y) is the mean next-token NLL of a chunk; λ = 1 unless given; forget and retain/general
/// chunks are paired 1:1 (step k uses forget batch k and retain batch k, both cycled). For the
/// preference losses, log π(y) is the sum of a chunk's next-token log-probabilities, |y| its
/// number of predicted tokens, σ the logistic function, and the loss is the mean over the chunks
/// of the batch.
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
    /// −(2/β)·log σ(−β·(log π_θ(y) − log π_θ0(y))) on x_f; θ0 is the frozen model.
    case npo = "npo"
    /// −(2/β)·log σ(−(β/|y|)·log π_θ(y) − γ) on x_f; no reference model.
    case simNPO = "simnpo"
    /// npo + λ·ℓ(θ; x_in)
    case npoDescentInDistribution = "npo-gd"
    /// simnpo + λ·ℓ(θ; x_in)
    case simNPODescentInDistribution = "simnpo-gd"

    /// Which data set the second term uses.
    public enum Companion: String, Sendable { case inDistribution = "retain", general = "general" }

    /// The data set of the second term (nil for the forget-only methods).
    public var companion: Companion? {
        switch self {
        case .gradientAscent, .randomLabel, .adversarial, .npo, .simNPO: return nil
        case .ascentDescentInDistribution, .ascentKLInDistribution, .npoDescentInDistribution,
             .simNPODescentInDistribution: return .inDistribution
        case .ascentDescentGeneral, .ascentKLGeneral: return .general
        }
    }

    /// Whether the second term is KL to the frozen original model (else NLL descent).
    public var usesKL: Bool { self == .ascentKLInDistribution || self == .ascentKLGeneral }

    /// What the forget term does with the forget chunks.
    public enum ForgetTerm: Sendable, Equatable {
        /// Ascent on the true next tokens: −ℓ(θ; x_f).
        case ascent
        /// Descent on replaced next tokens (random or adversarial labels).
        case replacedLabels
        /// NPO against the frozen model.
        case npo
        /// SimNPO, reference-free and length-normalised.
        case simNPO
    }

    public var forgetTerm: ForgetTerm {
        switch self {
        case .randomLabel, .adversarial: return .replacedLabels
        case .npo, .npoDescentInDistribution: return .npo
        case .simNPO, .simNPODescentInDistribution: return .simNPO
        default: return .ascent
        }
    }

    /// Whether the companion term is the companion set's next-token loss (the gradient-descent
    /// variants), rather than a KL divergence to the base model or nothing.
    public var companionIsNextTokenLoss: Bool {
        switch self {
        case .ascentDescentInDistribution, .ascentDescentGeneral, .npoDescentInDistribution, .simNPODescentInDistribution:
            return true
        default: return false
        }
    }

    /// Whether the method reads β (and γ for SimNPO).
    public var usesPreferenceLoss: Bool { forgetTerm == .npo || forgetTerm == .simNPO }

    /// β when none is given: 0.1 for NPO (Zhang et al.), 2.5 for SimNPO (Fan et al.'s setting
    /// for TOFU-sized forget sets).
    public var defaultBeta: Float { forgetTerm == .simNPO ? 2.5 : 0.1 }
}
