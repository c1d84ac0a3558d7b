/// Minimum-cost perfect assignment on a square cost matrix (the Hungarian algorithm), O(n³).
///
/// The shortest-augmenting-path form with row and column potentials (Kuhn 1955, Munkres 1957;
/// Jonker–Volgenant's formulation): rows are added one at a time; for each, a Dijkstra-like
/// search over reduced costs c[i][j] − u[i] − v[j] ≥ 0 finds the cheapest augmenting path, and
/// the potentials are shifted by the search distances so reduced costs stay non-negative. Each
/// row costs O(n²), hence O(n³) in all. Ties are resolved deterministically.
public enum Hungarian {
    /// The column assigned to each row (`result[row] = column`), minimising Σ cost[row][column].
    ///
    /// Precondition: `cost` is square (n × n, n ≥ 0) and every entry is finite.
    public static func minimumCostAssignment(_ cost: [[Double]]) -> [Int] {
        let n = cost.count
        precondition(cost.allSatisfy { $0.count == n }, "cost matrix must be square")
        precondition(cost.allSatisfy { $0.allSatisfy(\.isFinite) }, "costs must be finite")
        guard n > 0 else { return [] }
        // 1-based internally; column 0 is a virtual column holding the row being inserted.
        var rowPotential = [Double](repeating: 0, count: n + 1)
        var columnPotential = [Double](repeating: 0, count: n + 1)
        var rowOfColumn = [Int](repeating: 0, count: n + 1)
        var previousColumn = [Int](repeating: 0, count: n + 1)
        for row in 1...n {
            rowOfColumn[0] = row
            var current = 0
            var distance = [Double](repeating: .infinity, count: n + 1)
            var visited = [Bool](repeating: false, count: n + 1)
            repeat {
                visited[current] = true
                let i = rowOfColumn[current]
                var delta = Double.infinity
                var next = 0
                for j in 1...n where !visited[j] {
                    let reduced = cost[i - 1][j - 1] - rowPotential[i] - columnPotential[j]
                    if reduced < distance[j] {
                        distance[j] = reduced
                        previousColumn[j] = current
                    }
                    if distance[j] < delta {
                        delta = distance[j]
                        next = j
                    }
                }
                for j in 0...n {
                    if visited[j] {
                        rowPotential[rowOfColumn[j]] += delta
                        columnPotential[j] -= delta
                    } else {
                        distance[j] -= delta
                    }
                }
                current = next
            } while rowOfColumn[current] != 0
            // Flip the augmenting path back to the virtual column.
            repeat {
                let previous = previousColumn[current]
                rowOfColumn[current] = rowOfColumn[previous]
                current = previous
            } while current != 0
        }
        var columnOfRow = [Int](repeating: 0, count: n)
        for j in 1...n { columnOfRow[rowOfColumn[j] - 1] = j - 1 }
        return columnOfRow
    }

    /// The assignment maximising Σ weight[row][column], with `allowed[row][column] == false`
    /// edges excluded; nil when no perfect assignment avoids every excluded edge.
    public static func maximumWeightAssignment(_ weight: [[Double]], allowed: [[Bool]]) -> [Int]? {
        let n = weight.count
        guard n > 0 else { return [] }
        let largest = weight.joined().map(abs).max() ?? 0
        // Cost −w keeps tiny weights distinct (largest − w would round them away). Any assignment
        // using an excluded edge costs more than every assignment avoiding them.
        let excluded = (largest * 2 + 1) * Double(n + 1)
        let cost = (0..<n).map { i in
            (0..<n).map { j in allowed[i][j] ? -weight[i][j] : excluded }
        }
        let assignment = minimumCostAssignment(cost)
        for (row, column) in assignment.enumerated() where !allowed[row][column] { return nil }
        return assignment
    }
}
