import Foundation
import Prometheus

/// The server's Prometheus metrics (`GET /metrics`, text exposition format): requests and
/// their latency per endpoint, batch sizes, the served generation, forgets and swaps.
public final class ServerMetrics: @unchecked Sendable {
    let registry = PrometheusCollectorRegistry()
    private let latencyBuckets: [Duration] = [
        .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5), .milliseconds(10),
        .milliseconds(20), .milliseconds(50), .milliseconds(100), .milliseconds(200), .milliseconds(500),
        .seconds(1), .seconds(2), .seconds(5),
    ]
    private let batchSizes: ValueHistogram
    private let generation: Gauge
    private let swaps: Counter
    private let swapSeconds: DurationHistogram
    private let failedLoads: Counter
    private let forgottenRequests: Counter

    init() {
        batchSizes = registry.makeValueHistogram(name: "lethe_batch_size", buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
                                                 help: "Texts per ensemble pass")
        generation = registry.makeGauge(name: "lethe_generation",
                                        help: "Ledger sequence number of the served composition")
        swaps = registry.makeCounter(name: "lethe_swaps_total", help: "Compositions swapped in")
        swapSeconds = registry.makeDurationHistogram(name: "lethe_swap_duration_seconds", buckets: latencyBuckets,
                                                     help: "Time to load a composition before swapping it in")
        failedLoads = registry.makeCounter(name: "lethe_failed_loads_total", help: "Published compositions refused")
        forgottenRequests = registry.makeCounter(name: "lethe_forget_requests_total",
                                                 help: "Deletion requests accepted through /v1/forget")
    }

    func request(endpoint: String, status: Int, seconds: Double) {
        registry.makeCounter(name: "lethe_requests_total", labels: [("endpoint", endpoint), ("status", "\(status)")],
                             help: "HTTP requests by endpoint and status").increment()
        registry.makeDurationHistogram(name: "lethe_request_duration_seconds", labels: [("endpoint", endpoint)],
                                       buckets: latencyBuckets, help: "Request latency by endpoint")
            .recordNanoseconds(Int64(seconds * 1e9))
    }

    func batch(size: Int) { batchSizes.record(Double(size)) }

    func swapped(to snapshot: ServedSnapshot) {
        generation.set(Double(snapshot.generation.sequenceNumber))
        swaps.increment()
        swapSeconds.recordNanoseconds(Int64(snapshot.loadSeconds * 1e9))
    }

    func failedLoad() { failedLoads.increment() }

    func forgot(requests: Int) { forgottenRequests.increment(by: Int64(requests)) }

    /// The exposition text.
    public func text() -> String { registry.emitToString() }
}
