import Foundation
import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text exposition format): requests and
/// their latency per endpoint, batch sizes and waits, the served generation, forgets and swaps.
public final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5),
    ]
    private let batchSizes: ValueHistogram
    private let passSeconds: DurationHistogram
    private let batchWaitSeconds: DurationHistogram
    private let generation: Gauge
    private let swaps: Counter
    private let swapSeconds: DurationHistogram
    private let failedLoads: Counter
    private let forgottenRequests: Counter
    private let abandonedTexts: Counter

    init() {
        batchSizes = registry.makeValueHistogram(descriptor: Self.name("lethe_batch_size", "Texts per ensemble pass"),
                                                 buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256])
        passSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("lethe_pass_duration_seconds", "Time of one ensemble pass over a batch"),
            buckets: latencyBuckets)
        batchWaitSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("lethe_batch_wait_seconds",
                                  "Time the inference worker waited for more texts before starting a pass"),
            buckets: latencyBuckets)
        generation = registry.makeGauge(descriptor: Self.name("lethe_generation",
                                                              "Ledger sequence number of the served composition"))
        swaps = registry.makeCounter(descriptor: Self.name("lethe_swaps_total", "Compositions swapped in"))
        swapSeconds = registry.makeDurationHistogram(
            descriptor: Self.name("lethe_swap_duration_seconds", "Time to load a composition before swapping it in"),
            buckets: latencyBuckets)
        failedLoads = registry.makeCounter(descriptor: Self.name("lethe_failed_loads_total", "Published compositions refused"))
        forgottenRequests = registry.makeCounter(
            descriptor: Self.name("lethe_forget_requests_total", "Deletion requests accepted through /v1/forget"))
        abandonedTexts = registry.makeCounter(
            descriptor: Self.name("lethe_abandoned_texts_total",
                                  "Queued texts dropped unanswered because their client had disconnected"))
    }

    /// A metric named exactly `name` (no namespace or unit parts appended) with its help line.
    private static func name(_ name: String, _ help: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: help)
    }

    func request(endpoint: String, status: Int, seconds: Double) {
        registry.makeCounter(descriptor: Self.name("lethe_requests_total", "HTTP requests by endpoint and status"),
                             labels: [("endpoint", endpoint), ("status", "\(status)")]).increment()
        registry.makeDurationHistogram(descriptor: Self.name("lethe_request_duration_seconds", "Request latency by endpoint"),
                                       labels: [("endpoint", endpoint)], buckets: latencyBuckets)
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func batch(size: Int) { batchSizes.record(Double(size)) }

    func pass(seconds: Double) { passSeconds.recordNanoseconds(Int64(seconds * 1e9)) }

    func batchWait(seconds: Double) { batchWaitSeconds.recordNanoseconds(Int64(seconds * 1e9)) }

    func swapped(to snapshot: ServedSnapshot) {
        generation.set(Double(snapshot.generation.sequenceNumber))
        swaps.increment()
        swapSeconds.recordNanoseconds(Int64(snapshot.loadSeconds * 1e9))
    }

    func failedLoad() { failedLoads.increment() }

    func forgot(requests: Int) { forgottenRequests.increment(by: Int64(requests)) }

    func abandoned(texts: Int) { abandonedTexts.increment(by: Int64(texts)) }

    /// The exposition text.
    public func text() -> String { registry.emitToString() }
}
