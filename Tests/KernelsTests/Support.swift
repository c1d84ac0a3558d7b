import Foundation
import Kernels
import Support
import Testing

/// Deterministic normal samples for test inputs (SplitMix64 + Box–Muller).
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
    mutating func normal() -> Float {
        let u1 = max(uniform(), 1e-300), u2 = uniform()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
    }
    mutating func tensor(_ shape: [Int], scale: Float = 1) -> Tensor {
        let t = Tensor(shape: shape)
        for i in 0..<t.count { t[i] = normal() * scale }
        return t
    }
}

/// Σ y·w in Double: the scalar loss whose gradient w.r.t. y is w.
func weightedSum(_ y: Tensor, _ w: Tensor) -> Double {
    precondition(y.count == w.count)
    var s = 0.0
    for i in 0..<y.count { s += Double(y[i]) * Double(w[i]) }
    return s
}

/// Compares an analytic gradient with central finite differences of `loss` w.r.t. every
/// element of `parameter` (perturbed in place and restored).
/// Pass criterion per element: |a − n| ≤ atol + rtol·max(|a|, |n|).
func expectGradient(_ name: String, parameter: Tensor, analytic: Tensor,
                    step h: Float = 1e-2, rtol: Double = 2e-2, atol: Double = 2e-3,
                    loss: () -> Double, sourceLocation: SourceLocation = #_sourceLocation) {
    precondition(parameter.count == analytic.count)
    var worst = 0.0, worstIndex = -1, failures = 0
    for i in 0..<parameter.count {
        let saved = parameter[i]
        parameter[i] = saved + h
        let plus = loss()
        parameter[i] = saved - h
        let minus = loss()
        parameter[i] = saved
        // Divide by the step actually represented in float32.
        let numeric = (plus - minus) / (Double(saved + h) - Double(saved - h))
        let a = Double(analytic[i])
        let err = abs(a - numeric)
        let bound = atol + rtol * max(abs(a), abs(numeric))
        if err > bound { failures += 1 }
        if err / bound > worst { worst = err / bound; worstIndex = i }
    }
    #expect(failures == 0, "\(name): \(failures) of \(parameter.count) gradient elements off; worst index \(worstIndex) at \(worst)× the tolerance", sourceLocation: sourceLocation)
}

/// Largest |a − b| over all elements.
func maxAbsDifference(_ a: [Float], _ b: [Float]) -> Float {
    precondition(a.count == b.count, "\(a.count) vs \(b.count)")
    return zip(a, b).map { abs($0 - $1) }.max() ?? 0
}

/// Bit patterns, for bit-for-bit comparisons.
func bits(_ t: Tensor) -> [UInt32] { t.values.map(\.bitPattern) }

/// The reference cases produced by Tools/make_kernel_fixtures.py.
struct KernelFixtures {
    let cases: [String: [String: Any]]

    static func load() throws -> KernelFixtures {
        let url = try #require(Bundle.module.url(forResource: "kernels", withExtension: "json",
                                                 subdirectory: "Fixtures"))
        let root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        return KernelFixtures(cases: try #require(root["cases"] as? [String: [String: Any]]))
    }

    func tensor(_ c: String, _ field: String) throws -> Tensor {
        let entry = try #require(cases[c]?[field] as? [String: Any], "missing \(c).\(field)")
        return try Self.tensor(entry)
    }

    static func tensor(_ entry: [String: Any]) throws -> Tensor {
        let shape = try #require(entry["shape"] as? [Int])
        let data = try #require(entry["data"] as? [Double])
        return Tensor(shape: shape, values: data.map { Float($0) })
    }

    func ints(_ c: String, _ field: String) throws -> [Int32] {
        let entry = try #require(cases[c]?[field] as? [String: Any], "missing \(c).\(field)")
        return try #require(entry["data"] as? [Int]).map { Int32($0) }
    }

    func number(_ c: String, _ field: String) throws -> Double {
        try #require(cases[c]?[field] as? Double, "missing \(c).\(field)")
    }

    func numbers(_ c: String, _ field: String) throws -> [Double] {
        try #require(cases[c]?[field] as? [Double], "missing \(c).\(field)")
    }
}

/// Expects every |a − b| ≤ tolerance and reports the largest difference.
func expectClose(_ a: [Float], _ b: [Float], tolerance: Float, _ what: String = "",
                 sourceLocation: SourceLocation = #_sourceLocation) {
    let d = maxAbsDifference(a, b)
    #expect(d <= tolerance, "\(what) max |Δ| = \(d) > \(tolerance)", sourceLocation: sourceLocation)
}
