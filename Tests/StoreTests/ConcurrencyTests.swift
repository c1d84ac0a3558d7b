import Foundation
import Testing
@testable import Store

/// The store from several threads at once: HDF5's global lock serialises the calls, each
/// thread using its own handles; results must equal the single-threaded ones.
@Suite struct ConcurrencyTests {
    @Test func threadsWriteTheirOwnFilesAndReadASharedOne() throws {
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let shared = scratch.file("shared.h5")
        let values = (0..<10_000).map { Float($0) * 0.001 }
        try HDF5File.writeAtomically(to: shared) { file in
            try file.write(values, shape: [100, 100], at: "w")
            try file.write(["a", "b", "c"], at: "ids")
        }
        let failures = ThreadFailures()
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            do {
                let own = scratch.file("thread-\(thread).h5")
                try HDF5File.writeAtomically(to: own) { file in
                    for step in 0..<20 {
                        try file.write(values.map { $0 + Float(thread) }, shape: [10_000],
                                       at: "t\(thread)/step\(step)", storage: step % 2 == 0 ? .float32 : .float16)
                        try file.setAttribute(.int(Int64(step)), named: "step", at: "t\(thread)/step\(step)")
                    }
                }
                let mine = try HDF5File.open(own)
                for step in 0..<20 {
                    let read = try mine.readFloats(at: "t\(thread)/step\(step)").values
                    let expected = values.map { $0 + Float(thread) }
                    let matches = step % 2 == 0 ? read == expected
                        : read == expected.map { Float(Float16($0)) }
                    if !matches { failures.add("thread \(thread) step \(step) read different values") }
                    if try mine.intAttribute(named: "step", at: "t\(thread)/step\(step)") != Int64(step) {
                        failures.add("thread \(thread) step \(step) attribute differs")
                    }
                }
                for _ in 0..<20 {
                    let file = try HDF5File.open(shared)
                    if try file.readFloats(at: "w").values != values { failures.add("shared floats differ") }
                    if try file.readStrings(at: "ids") != ["a", "b", "c"] { failures.add("shared ids differ") }
                    if try file.exists("missing") { failures.add("phantom path") }
                }
            } catch {
                failures.add("thread \(thread): \(error)")
            }
        }
        #expect(failures.all.isEmpty, "\(failures.all)")
        #expect(try scratch.contents() == ["shared.h5", "thread-0.h5", "thread-1.h5", "thread-2.h5", "thread-3.h5"])
    }
}

/// Failure messages collected from worker threads.
final class ThreadFailures: @unchecked Sendable {
    private let lock = NSLock()
    private var messages: [String] = []
    func add(_ message: String) { lock.lock(); messages.append(message); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return messages }
}
