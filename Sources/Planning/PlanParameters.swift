/// The choices that define a plan: m, L, B, how sequences are selected and how examples are dealt.
public struct PlanParameters: Sendable, Equatable {
    public var shardCount: Int
    public var sliceCount: Int
    public var budget: Int
    public var selection: SequenceSelection
    /// Per-slice deletion prior for BMS (nil: uniform). Ignored by cyclic selection.
    public var prior: [Double]?
    /// The exponent t of the BMS score.
    public var bmsExponent: Double
    public var assignment: Assignment
    public var seed: UInt64

    public init(shardCount: Int, sliceCount: Int, budget: Int, selection: SequenceSelection = .cyclic,
                prior: [Double]? = nil, bmsExponent: Double = SequenceScore.defaultExponent,
                assignment: Assignment = .random, seed: UInt64 = 0) {
        self.shardCount = shardCount
        self.sliceCount = sliceCount
        self.budget = budget
        self.selection = selection
        self.prior = prior
        self.bmsExponent = bmsExponent
        self.assignment = assignment
        self.seed = seed
    }

    /// Refuses values no plan can have, naming the command-line flag; data-dependent limits
    /// (enough examples or groups) are checked by `Planner`.
    /// Upper bounds checked before anything is planned (a plan stores shards × budget × slices entries).
    public static let shardLimit = 4_096
    public static let sliceLimit = 64
    public static let budgetLimit = 1_024

    public func validate() throws {
        guard shardCount <= Self.shardLimit, sliceCount <= Self.sliceLimit, budget <= Self.budgetLimit else {
            throw PlanningError.invalidValue(flag: "--shards/--slices/--budget", value: "\(shardCount)/\(sliceCount)/\(budget)",
                                             reason: "the limits are \(Self.shardLimit) shards, \(Self.sliceLimit) slices and "
                                                 + "a budget of \(Self.budgetLimit) sequences")
        }
        guard shardCount >= 1 else {
            throw PlanningError.invalidValue(flag: "--shards", value: "\(shardCount)", reason: "needs at least 1 shard")
        }
        guard sliceCount >= 1 else {
            throw PlanningError.invalidValue(flag: "--slices", value: "\(sliceCount)", reason: "needs at least 1 slice per shard")
        }
        guard budget >= 1 else {
            throw PlanningError.invalidValue(flag: "--budget", value: "\(budget)", reason: "needs at least 1 sequence per shard")
        }
        let permutations = SequenceSelection.permutationCount(sliceCount: sliceCount)
        guard budget <= permutations else {
            throw PlanningError.budgetExceedsPermutations(budget: budget, sliceCount: sliceCount, permutationCount: permutations)
        }
        guard bmsExponent.isFinite && bmsExponent > 0 else {
            throw PlanningError.invalidValue(flag: "--exponent", value: "\(bmsExponent)", reason: "must be a positive number")
        }
        if let prior {
            try Prior.validate(prior, sliceCount: sliceCount, source: "prior")
        }
    }
}
