import Foundation

/// One simulated point.
public struct SimulationRow: Encodable, Sendable {
    public var selection: String
    public var budget: Int
    public var mean: Double
    public var lower95: Double
    public var upper95: Double
    public var standardDeviation: Double
    /// The closed form for uniform requests at this budget.
    public var theory: Double

    public init(selection: String, budget: Int, mean: Double, lower95: Double, upper95: Double,
                standardDeviation: Double, theory: Double) {
        self.selection = selection; self.budget = budget; self.mean = mean; self.lower95 = lower95
        self.upper95 = upper95; self.standardDeviation = standardDeviation; self.theory = theory
    }
}
