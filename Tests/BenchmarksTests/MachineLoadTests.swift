import Benchmarks
import Testing

/// What a benchmark says beside its numbers about the machine's load.
@Suite struct MachineLoadTests {
    @Test func aShareAbovePeakIsFlaggedAsAMeasurementUnderLoad() {
        #expect(MachineLoad.caveat(share: 0.75).isEmpty)
        #expect(MachineLoad.caveat(share: 1.0).isEmpty)
        #expect(MachineLoad.caveat(share: 1.19).contains("idle machine"))
    }

    @Test func theLoadIsReadAndWarnedAboutAboveAQuarterOfTheCPUs() {
        var load = MachineLoad()
        #expect(load.averages.count == 3 && load.logicalCPUs >= 1)
        load.averages = [0.1 * Double(load.logicalCPUs), 0, 0]
        #expect(load.warning == nil)
        load.averages = [0.5 * Double(load.logicalCPUs), 0, 0]
        #expect(load.warning?.contains("load average") == true)
        #expect(load.text.hasPrefix("load "))
    }
}
