import CommandSupport
import Foundation

/// An SVG line chart of ensemble test accuracy against the number of random deletions, one
/// series per strategy (S3T B = 3, SISA B = 1); a point where every shard is dead is drawn as
/// a hollow marker on the x axis labelled "dead".
struct ForgetAccuracyChart {
    let title: String
    let points: [ForgetAccuracyExperiment.Point]

    private let width = 720.0, height = 440.0
    private let left = 70.0, right = 190.0, top = 50.0, bottom = 70.0

    func svg() -> String {
        let deletions = Array(Set(points.map(\.deletions))).sorted()
        let plotWidth = width - left - right, plotHeight = height - top - bottom
        func x(_ count: Int) -> Double {
            let index = Double(deletions.firstIndex(of: count) ?? 0)
            return left + plotWidth * (deletions.count > 1 ? index / Double(deletions.count - 1) : 0.5)
        }
        func y(_ accuracy: Double) -> Double { top + plotHeight * (1 - accuracy) }
        func f(_ value: Double) -> String { String(format: "\"%.1f\"", value) }

        var out = """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(Int(width))" height="\(Int(height))" \
            viewBox="0 0 \(Int(width)) \(Int(height))" font-family="sans-serif" font-size="13">
            <rect width="100%" height="100%" fill="white"/>
            <text x=\(f(left + plotWidth / 2)) y="26" text-anchor="middle" font-size="16" font-weight="bold">\(title)</text>

            """
        for percent in stride(from: 0, through: 100, by: 20) {
            let value = Double(percent) / 100
            out += "<line x1=\(f(left)) y1=\(f(y(value))) x2=\(f(left + plotWidth)) y2=\(f(y(value))) stroke=\"#e4e4e4\"/>\n"
            out += "<text x=\(f(left - 8)) y=\(f(y(value) + 4)) text-anchor=\"end\">\(percent)%</text>\n"
        }
        for count in deletions {
            out += "<line x1=\(f(x(count))) y1=\(f(top + plotHeight)) x2=\(f(x(count))) y2=\(f(top + plotHeight + 5)) stroke=\"black\"/>\n"
            out += "<text x=\(f(x(count))) y=\(f(top + plotHeight + 20)) text-anchor=\"middle\">\(count)</text>\n"
        }
        out += "<line x1=\(f(left)) y1=\(f(top)) x2=\(f(left)) y2=\(f(top + plotHeight)) stroke=\"black\"/>\n"
        out += "<line x1=\(f(left)) y1=\(f(top + plotHeight)) x2=\(f(left + plotWidth)) y2=\(f(top + plotHeight)) stroke=\"black\"/>\n"
        out += "<text x=\(f(left + plotWidth / 2)) y=\(f(height - 22)) text-anchor=\"middle\">random deletions (no retraining)</text>\n"
        out += "<text transform=\"translate(20 \(top + plotHeight / 2)) rotate(-90)\" text-anchor=\"middle\">"
            + "ensemble accuracy on the test split</text>\n"

        let series = Dictionary(grouping: points) { "\($0.strategy.uppercased()) (B = \($0.budget))" }
        let names = series.keys.sorted()
        for (index, name) in names.enumerated() {
            let color = ["#1f77b4", "#d95f02", "#2ca02c"][index % 3]
            let rows = (series[name] ?? []).sorted { $0.deletions < $1.deletions }
            let coordinates = rows.map { (x($0.deletions), y($0.accuracy ?? 0)) }
            // The line joins served points only: a dead ensemble is no accuracy, not a decline to 0.
            let live = zip(rows, coordinates).filter { $0.0.accuracy != nil }.map(\.1)
            out += "<polyline points=\"" + live.map { String(format: "%.1f,%.1f", $0.0, $0.1) }.joined(separator: " ")
                + "\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            for (row, (cx, cy)) in zip(rows, coordinates) {
                let label = row.accuracy.map { String(format: "%.1f%%", $0 * 100) } ?? "dead"
                out += "<circle cx=\(f(cx)) cy=\(f(cy)) r=\"5\" fill=\"\(row.accuracy == nil ? "white" : color)\" "
                    + "stroke=\"\(color)\" stroke-width=\"2\"><title>\(name), \(row.deletions) deletions: \(label), "
                    + "\(row.liveShards) live shard(s)</title></circle>\n"
                out += "<text x=\(f(cx + 7)) y=\(f(cy - 8 - Double(index) * 14)) font-size=\"11\" fill=\"\(color)\">\(label)</text>\n"
            }
            let legendY = top + 10 + Double(index) * 22
            out += "<line x1=\(f(left + plotWidth + 20)) y1=\(f(legendY)) x2=\(f(left + plotWidth + 44)) y2=\(f(legendY)) "
                + "stroke=\"\(color)\" stroke-width=\"2\"/>\n"
            out += "<text x=\(f(left + plotWidth + 50)) y=\(f(legendY + 4))>\(name)</text>\n"
        }
        let noteY = top + 20 + Double(names.count) * 22
        out += "<text x=\(f(left + plotWidth + 20)) y=\(f(noteY)) font-size=\"11\">hollow marker on the axis:</text>\n"
        out += "<text x=\(f(left + plotWidth + 20)) y=\(f(noteY + 14)) font-size=\"11\">every shard dead</text>\n"
        out += "</svg>\n"
        return out
    }
}
