import CommandSupport
import Foundation
import Planning

/// An SVG chart of the deletion rate δ against the budget B: simulated points with 95% interval
/// bars (one series per selection) and the closed form m·L·H_{m·min(B,L)} as a dashed line.
public struct DeletionRateChart {
    let shardCount: Int
    let sliceCount: Int
    let trialCount: Int
    /// True when requests were uniform, so the closed form applies.
    let uniform: Bool
    let series: [(SequenceSelection, [SimulationRow])]

    public init(shardCount: Int, sliceCount: Int, trialCount: Int, uniform: Bool,
                series: [(SequenceSelection, [SimulationRow])]) {
        self.shardCount = shardCount; self.sliceCount = sliceCount; self.trialCount = trialCount
        self.uniform = uniform; self.series = series
    }

    // Canvas in SVG user units: plot area inside the margins, legend on the right.
    private let width = 760.0, height = 460.0
    private let left = 80.0, right = 200.0, top = 50.0, bottom = 70.0

    public func svg() -> String {
        let budgets = series.first?.1.map(\.budget) ?? []
        let maxBudget = budgets.max() ?? 1
        let highest = series.flatMap { $0.1.flatMap { [$0.upper95, $0.theory] } }.max() ?? 1
        let (yMax, yStep) = Self.niceAxis(highest)
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ budget: Int) -> Double {
            maxBudget == 1 ? left + plotWidth / 2 : left + plotWidth * Double(budget - 1) / Double(maxBudget - 1)
        }
        func y(_ value: Double) -> Double { top + plotHeight * (1 - value / yMax) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x="\(left + plotWidth / 2)" y="26" text-anchor="middle" font-size="16" font-weight="bold">\
            Deletion rate δ against budget B (m = \(shardCount), L = \(sliceCount))</text>

            """
        // Horizontal grid and y tick labels.
        var tick = 0.0
        while tick <= yMax + yStep / 2 {
            out += "<line x1=\"\(left)\" y1=\(q(y(tick))) x2=\"\(left + plotWidth)\" y2=\(q(y(tick))) stroke=\"#e4e4e4\"/>\n"
            out += "<text x=\"\(left - 8)\" y=\(q(y(tick) + 4)) text-anchor=\"end\">\(Self.format(tick))</text>\n"
            tick += yStep
        }
        // x ticks: every budget when few, otherwise about ten.
        let xStep = max(1, Int((Double(maxBudget) / 10).rounded(.up)))
        for budget in budgets where (budget - 1) % xStep == 0 || budget == maxBudget {
            out += "<line x1=\(q(x(budget))) y1=\"\(top + plotHeight)\" x2=\(q(x(budget))) y2=\"\(top + plotHeight + 5)\" stroke=\"black\"/>\n"
            out += "<text x=\(q(x(budget))) y=\"\(top + plotHeight + 20)\" text-anchor=\"middle\">\(budget)</text>\n"
        }
        // Axes and their labels.
        out += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<line x1=\"\(left)\" y1=\"\(top + plotHeight)\" x2=\"\(left + plotWidth)\" y2=\"\(top + plotHeight)\" stroke=\"black\"/>\n"
        out += "<text x=\"\(left + plotWidth / 2)\" y=\"\(height - 22)\" text-anchor=\"middle\">budget B (sequences per shard)</text>\n"
        out += "<text transform=\"translate(22 \(top + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">"
            + "δ (deletion requests absorbed)</text>\n"
        // The closed form, a dashed polyline through every budget.
        if uniform, let rows = series.first?.1 {
            let points = rows.map { "\(Self.format(x($0.budget), 1)),\(Self.format(y($0.theory), 1))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#555\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
        }
        // Simulated means with 95% interval bars.
        for (selection, rows) in series {
            let color = Self.color(selection)
            let points = rows.map { "\(Self.format(x($0.budget), 1)),\(Self.format(y($0.mean), 1))" }.joined(separator: " ")
            out += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"1\" opacity=\"0.6\"/>\n"
            for row in rows {
                let cx = x(row.budget)
                out += "<line x1=\(q(cx)) y1=\(q(y(row.lower95))) x2=\(q(cx)) y2=\(q(y(row.upper95))) stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                out += "<line x1=\(q(cx - 5)) y1=\(q(y(row.lower95))) x2=\(q(cx + 5)) y2=\(q(y(row.lower95))) stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                out += "<line x1=\(q(cx - 5)) y1=\(q(y(row.upper95))) x2=\(q(cx + 5)) y2=\(q(y(row.upper95))) stroke=\"\(color)\" stroke-width=\"2\"/>\n"
                out += "<circle cx=\(q(cx)) cy=\(q(y(row.mean))) r=\"4\" fill=\"\(color)\">"
                    + "<title>B = \(row.budget): δ = \(Self.format(row.mean, 1)) [\(Self.format(row.lower95, 1)) … \(Self.format(row.upper95, 1))]</title></circle>\n"
            }
        }
        // Legend.
        let legendX = left + plotWidth + 20
        var legendY = top + 10
        for (selection, _) in series {
            out += "<circle cx=\"\(legendX + 10)\" cy=\(q(legendY)) r=\"4\" fill=\"\(Self.color(selection))\"/>\n"
            out += "<text x=\"\(legendX + 24)\" y=\(q(legendY + 4))>simulated, \(selection.rawValue)</text>\n"
            legendY += 20
        }
        out += "<text x=\"\(legendX + 24)\" y=\(q(legendY + 4)) font-size=\"11\">bars: 95% interval,</text>\n"
        out += "<text x=\"\(legendX + 24)\" y=\(q(legendY + 18)) font-size=\"11\">\(trialCount) trials per point</text>\n"
        legendY += 40
        if uniform {
            out += "<line x1=\"\(legendX)\" y1=\(q(legendY)) x2=\"\(legendX + 20)\" y2=\(q(legendY)) stroke=\"#555\" stroke-width=\"2\" stroke-dasharray=\"6 4\"/>\n"
            out += "<text x=\"\(legendX + 24)\" y=\(q(legendY + 4))>theory</text>\n"
            out += "<text x=\"\(legendX + 24)\" y=\(q(legendY + 18)) font-size=\"11\">m·L·H(m·min(B, L))</text>\n"
        } else {
            out += "<text x=\"\(legendX)\" y=\(q(legendY + 4)) font-size=\"11\">requests follow --prior;</text>\n"
            out += "<text x=\"\(legendX)\" y=\(q(legendY + 18)) font-size=\"11\">no closed form drawn</text>\n"
        }
        out += "</svg>\n"
        return out
    }

    /// A quoted attribute value with one decimal.
    private func q(_ value: Double) -> String { "\"\(Self.format(value, 1))\"" }

    private static func format(_ value: Double, _ decimals: Int = 0) -> String {
        String(format: "%.\(decimals)f", value)
    }

    private static func color(_ selection: SequenceSelection) -> String {
        selection == .cyclic ? "#1f77b4" : "#d95f02"
    }

    /// An axis maximum ≥ `value` and a step of 1, 2 or 5 × 10^k giving 4–10 ticks.
    static func niceAxis(_ value: Double) -> (maximum: Double, step: Double) {
        let target = max(value, 1) / 5
        let magnitude = pow(10, floor(log10(target)))
        let step = [1.0, 2.0, 5.0, 10.0].map { $0 * magnitude }.first { $0 >= target } ?? 10 * magnitude
        return ((max(value, 1) / step).rounded(.up) * step, step)
    }
}
