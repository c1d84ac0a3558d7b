/// How a documented range is printed in help texts and error messages: "1…256", "1e-08…1",
/// "0.001…10000" (a whole floating-point bound without its ".0").
public func rangeText<Bound: Comparable>(_ range: ClosedRange<Bound>) -> String {
    func text(_ value: Bound) -> String {
        let written = "\(value)"
        return value is any BinaryFloatingPoint && written.hasSuffix(".0") ? String(written.dropLast(2)) : written
    }
    return text(range.lowerBound) + "…" + text(range.upperBound)
}

/// Throws `refusal(value, rangeText(range))` when `value` lies outside `range` (a NaN lies
/// outside every range), so each module refuses with its own typed error and the same words.
public func requireWithin<Bound: Comparable>(_ value: Bound, _ range: ClosedRange<Bound>,
                                             _ refusal: (Bound, String) -> Error) throws {
    guard range.contains(value) else { throw refusal(value, rangeText(range)) }
}
