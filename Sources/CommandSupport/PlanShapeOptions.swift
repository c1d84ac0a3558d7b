import ArgumentParser
import Planning
import Support

extension SequenceSelection: ExpressibleByArgument {}

/// The shape of a plan — shards, slices, budget, how sequences are chosen — as `lethe plan`
/// and `lethe simulate` both take it, with the bounds of `PlanParameters`.
public struct PlanShapeOptions: ParsableArguments {
    public init() {}

    @Option(help: "Number of shards m, \(rangeText(PlanParameters.shardLimit)).")
    public var shards: Int

    @Option(help: "Number of slices L per shard (= adapter blocks per sequence), \(rangeText(PlanParameters.sliceLimit)).")
    public var slices: Int

    @Option(help: "Number of sequences B per shard, \(rangeText(PlanParameters.budgetLimit)) and at most L!.")
    public var budget: Int

    @Option(help: "How sequences are chosen: cyclic or bms.")
    public var selection: SequenceSelection = .cyclic

    @Option(help: "Exponent t of the BMS score Σ i·(1 − Σ_{j≤i} p)^t, \(rangeText(PlanParameters.exponentLimit)).")
    public var exponent: Double = 100

    /// The plan parameters of this shape (assignment and seed as given).
    public func parameters(assignment: Assignment = .random, seed: UInt64 = 0) -> PlanParameters {
        PlanParameters(shardCount: shards, sliceCount: slices, budget: budget, selection: selection,
                       bmsExponent: exponent, assignment: assignment, seed: seed)
    }

    /// Checks the bounds and feasibility of the shape before any work.
    public func validate() throws {
        do { try parameters().validate() } catch { throw ValidationError("\(error)") }
    }
}
