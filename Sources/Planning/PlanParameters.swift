import Support

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

    /// The documented bounds, checked before anything is planned (a plan stores shards × budget
    /// × slices entries); `lethe plan --help` prints them.
    public static let shardLimit = 1...4_096
    public static let sliceLimit = 1...64
    public static let budgetLimit = 1...1_024
    /// The exponent t of the BMS score: positive; beyond 1e6 every score underflows alike.
    public static let exponentLimit: ClosedRange<Double> = 1e-3...1e6

    /// Refuses values no plan can have, naming the command-line flag, the value and its range;
    /// data-dependent limits (enough examples or groups) are checked by `Planner`.
    public func validate() throws {
        func within<T: Comparable>(_ value: T, _ range: ClosedRange<T>, _ flag: String) throws {
            try requireWithin(value, range) { PlanningError.invalidValue(flag: flag, value: "\($0)", reason: "give \($1)") }
        }
        try within(shardCount, Self.shardLimit, "--shards")
        try within(sliceCount, Self.sliceLimit, "--slices")
        try within(budget, Self.budgetLimit, "--budget")
        let permutations = SequenceSelection.permutationCount(sliceCount: sliceCount)
        guard budget <= permutations else {
            throw PlanningError.budgetExceedsPermutations(budget: budget, sliceCount: sliceCount, permutationCount: permutations)
        }
        try within(bmsExponent, Self.exponentLimit, "--exponent")
        if let prior {
            try Prior.validate(prior, sliceCount: sliceCount, source: "prior")
        }
    }
}
