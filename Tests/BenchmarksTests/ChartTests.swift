import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import Approximate
import Models
import Planning
import Testing
@testable import Benchmarks
import CommandSupport

/// The SVG charts of the benchmarks: well-formed XML, the closed form drawn exactly where the
/// theory puts it, one marker per simulated point.
@Suite struct ChartTests {
    /// Counts elements by name while checking that the document parses.
    final class Census: NSObject, XMLParserDelegate {
        var counts: [String: Int] = [:]
        var polylinePoints: [String] = []
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?,
                    qualifiedName: String?, attributes: [String: String] = [:]) {
            counts[name, default: 0] += 1
            if name == "polyline", let points = attributes["points"] { polylinePoints.append(points) }
        }
    }

    static func census(_ svg: String) throws -> Census {
        let parser = XMLParser(data: Data(svg.utf8))
        let census = Census()
        parser.delegate = census
        #expect(parser.parse(), "the SVG is well-formed XML: \(parser.parserError.map { "\($0)" } ?? "")")
        return census
    }

    @Test func deletionRateChartDrawsEveryPointAndTheClosedForm() throws {
        let budgets = [1, 2, 3, 4]
        func rows(_ selection: String, offset: Double) -> [SimulationRow] {
            budgets.map { b in
                let theory = DeletionRateTheory.s3t(shardCount: 5, sliceCount: 4, budget: b)
                return SimulationRow(selection: selection, budget: b, mean: theory + offset, lower95: theory + offset - 1,
                                     upper95: theory + offset + 1, standardDeviation: 2, theory: theory)
            }
        }
        let chart = DeletionRateChart(shardCount: 5, sliceCount: 4, trialCount: 100, uniform: true,
                                      series: [(.cyclic, rows("cyclic", offset: 0.5)), (.bms, rows("bms", offset: -0.5))])
        let svg = chart.svg()
        let census = try Self.census(svg)
        #expect(census.counts["svg"] == 1)
        #expect((census.counts["circle"] ?? 0) >= 2 * budgets.count, "a marker per simulated point")
        // The dashed closed form passes through one point per budget.
        let theoryLine = try #require(census.polylinePoints.first)
        #expect(theoryLine.split(separator: " ").count == budgets.count)
        // Higher δ is drawn higher: the theory's y coordinates fall as B grows (45.7 … 72.0 for m = 5, L = 4).
        let ys = theoryLine.split(separator: " ").compactMap { Double($0.split(separator: ",")[1]) }
        #expect(ys.count == budgets.count && zip(ys, ys.dropFirst()).allSatisfy { $0 > $1 })
    }

    /// The exact-vs-approximate chart: one bar per row, the ±0.05 line, and the bar heights
    /// ordered as the rows' largest gaps to the oracle.
    @Test func exactChartDrawsOneBarPerRow() throws {
        // Scores whose mean log-probability is `level` for every member and `-1` for non-members.
        func evaluation(_ level: Float) throws -> ForgetEvaluation {
            try ForgetEvaluation(forget: [[0, 1], [0, 2]], unseen: [[1, 0], [2, 0]], retain: [[3, 3]]) { chunks in
                chunks.map { c in TokenScores(logProbabilities: [c[0] == 0 ? level : -1], correct: [true]) }
            }
        }
        let oracle = try evaluation(-1), near = try evaluation(-1), far = try evaluation(0)
        #expect(near.largestGap(to: oracle) == 0 && far.largestGap(to: oracle) == 0.5)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("lethe-chart-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        var command = try BenchUnlearnCommand.parse(["--out", directory.path])
        command.exact = true
        try command.writeExactChart(rows: [("θ0", far), ("oracle", oracle), ("s3t-exact", near)], reference: far, oracle: oracle)
        let svg = try String(contentsOf: directory.appendingPathComponent("exact-vs-approximate.svg"), encoding: .utf8)
        let census = try Self.census(svg)
        #expect(census.counts["rect"] == 3 && census.counts["line"] == 1)
        #expect(svg.contains(">s3t-exact<") && svg.contains("×1.00"))
    }
}
