import Testing
@testable import Benchmarks

/// wrk's report as `bench serve` reads it: a row where wrk gave up on requests (timeouts,
/// socket errors) is not a clean row.
@Suite struct WrkOutputTests {
    static let stalled = """
    Running 10s test @ http://127.0.0.1:18181/v2/models/lethe/infer
      2 threads and 64 connections
      Thread Stats   Avg      Stdev     Max   +/- Stdev
        Latency     0.00us    0.00us   0.00us    -nan%
      Latency Distribution
         50%    0.00us
         99%    0.00us
      1 requests in 10.04s, 0.91KB read
      Socket errors: connect 0, read 2, write 0, timeout 64
      Non-2xx or 3xx responses: 3
    Requests/sec:      0.10
    """

    @Test func socketErrorsAndTimeoutsCountAsErrors() throws {
        let run = try WrkRun.parse(Self.stalled, connections: 64, seconds: 10)
        #expect(run.requests == 1 && run.errors == 3 + 2 + 64)
        let clean = Self.stalled.replacingOccurrences(of: "  Socket errors: connect 0, read 2, write 0, timeout 64\n", with: "")
            .replacingOccurrences(of: "  Non-2xx or 3xx responses: 3\n", with: "")
        #expect(try WrkRun.parse(clean, connections: 64, seconds: 10).errors == 0)
    }
}
