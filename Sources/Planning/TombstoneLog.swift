import Foundation
import Store

/// The append-only tombstone log of a plan (plan format version 3, or 4 with `tombstone_log` =
/// 1; docs/FORMAT.md "Tombstone log"): `plan.tombstones` beside `plan.h5`, one deleted example id per line after
/// a header line. A plan's tombstones are the union of its `tombstones` dataset and this log,
/// so a forget appends a few bytes and fsyncs them instead of rewriting `plan.h5`; the plan file
/// itself changes only when a retrain rebuilds slices.
///
/// Only complete lines count: a line cut short by a crash (no final newline) is ignored by
/// readers and overwritten by the next append, which writes at the end of the last complete
/// line. Writers must hold the run lock (`.run.lock`).
public enum TombstoneLog {
    /// The first line of every log.
    public static let header = "lethe-tombstones 1\n"

    /// The log of the plan stored at `planURL`: same directory, same name, extension `tombstones`.
    public static func url(forPlanAt planURL: URL) -> URL {
        planURL.deletingPathExtension().appendingPathExtension("tombstones")
    }

    /// The ids in the log's complete lines from byte `offset` on (0: the whole log, header
    /// checked) and the byte offset just after the last complete line.
    public static func read(_ url: URL, from offset: Int = 0) throws -> (ids: [String], end: Int) {
        let descriptor = try RegularFile.openForReading(url.path)
        guard descriptor >= 0 else {
            throw PlanningError.unreadableFile(file: url.path, reason: "the tombstone log of the plan cannot be "
                                               + "opened (\(String(cString: strerror(errno))), errno \(errno)); it must be kept beside plan.h5")
        }
        defer { close(descriptor) }
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure(url, "fstat") }
        let size = Int(status.st_size)
        if offset > 0 && size == offset { return ([], offset) }  // nothing new (the common case)
        guard size >= offset else {
            throw PlanningError.invariantViolated(file: url.path, invariant: "tombstones",
                                                  detail: "the log is shorter (\(size) bytes) than when it was read "
                                                      + "(\(offset) bytes): it was truncated or replaced, and deleted ids "
                                                      + "may be missing; restore it from a backup and run lethe verify")
        }
        var data = Data(count: max(0, size - offset))
        let count = data.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, $0.count, off_t(offset)) }
        guard count >= 0 else { throw failure(url, "read") }
        data = data.prefix(count)
        let base = offset
        var start = 0
        if offset == 0 {
            guard data.starts(with: Data(header.utf8)) else {
                // Name what an editor does to a text file, which is how a log usually gets here.
                let bom = data.starts(with: Data([0xEF, 0xBB, 0xBF])), crlf = data.contains(0x0D)
                let found = bom ? "a file starting with a byte-order mark (saved by an editor?)"
                    : crlf ? "a file with CRLF line ends (saved by an editor?)"
                    : "a file not starting with \"lethe-tombstones 1\""
                throw PlanningError.unsupportedFormat(file: url.path, found: found, expected: "a Lethe tombstone log")
            }
            start = header.utf8.count
        }
        var ids: [String] = []
        var end = start
        data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var lineStart = start
            for index in start..<bytes.count where bytes[index] == 0x0A {
                ids.append(String(decoding: UnsafeRawBufferPointer(rebasing: bytes[lineStart..<index]), as: UTF8.self))
                lineStart = index + 1
                end = lineStart
            }
        }
        // An id no plan holds (empty, longer than a plan accepts, with a control character) is damage.
        if let bad = ids.firstIndex(where: { $0.isEmpty || $0.utf8.count > Example.maxNameBytes
                                             || $0.unicodeScalars.contains { $0.value < 0x20 || $0.value == 0x7F } }) {
            throw PlanningError.invariantViolated(file: url.path, invariant: "tombstones",
                                                  detail: (offset == 0 ? "line \(bad + 2)" : "entry \(bad + 1) after byte \(offset)")
                                                      + " is not an example id")
        }
        return (ids, base + end)
    }

    /// Creates an empty log (just the header), durably (`AtomicFile`: temporary file, fsync,
    /// rename, directory fsync). A log that already starts with the header is left as it is;
    /// one cut short while being created is replaced.
    static func create(_ url: URL) throws {
        if let existing = FileManager.default.contents(atPath: url.path), existing.starts(with: Data(header.utf8)) { return }
        try AtomicFile.write(Data(header.utf8), to: url)
    }

    /// Appends `ids` (one line each) at byte `end` — the end of the last complete line, where
    /// a cut-short line is overwritten — fsyncs the data and returns the new end.
    static func append(_ ids: [String], to url: URL, at end: Int) throws -> Int {
        var bytes: [UInt8] = []
        for id in ids { bytes += id.utf8; bytes.append(0x0A) }
        let descriptor = open(url.path, O_WRONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw failure(url, "open") }
        defer { close(descriptor) }
        try write(bytes, to: descriptor, at: end, url: url)
        var status = stat()
        guard fstat(descriptor, &status) == 0 else { throw failure(url, "fstat") }
        if Int(status.st_size) > end + bytes.count, ftruncate(descriptor, off_t(end + bytes.count)) != 0 {
            throw failure(url, "truncate a cut-short line")
        }
        guard fdatasync(descriptor) == 0 else { throw failure(url, "fdatasync") }
        return end + bytes.count
    }

    private static func write(_ bytes: [UInt8], to descriptor: Int32, at offset: Int, url: URL) throws {
        var written = 0
        while written < bytes.count {
            let count = bytes.withUnsafeBytes { buffer in
                pwrite(descriptor, buffer.baseAddress! + written, buffer.count - written, off_t(offset + written))
            }
            if count < 0 && errno == EINTR { continue }
            guard count > 0 else { throw failure(url, "write") }
            written += count
        }
    }

    private static func failure(_ url: URL, _ operation: String) -> PlanningError {
        .unreadableFile(file: url.path, reason: "cannot \(operation) the tombstone log (errno \(errno): "
                        + String(cString: strerror(errno)) + ")")
    }
}

extension Plan {
    /// Records deleted examples durably for the plan stored at `url` and returns true when
    /// `plan.h5` itself was rewritten. A plan with a tombstone log appends the new ids to it
    /// (one fsync); a plan without one gets one: its log is created, then the plan is rewritten
    /// once with these tombstones in it. Ids already tombstoned are skipped; unknown
    /// ids are refused before anything is written. The caller holds the run lock.
    @discardableResult
    public mutating func recordTombstones(_ ids: some Sequence<String>, savedAt url: URL) throws -> Bool {
        var fresh: [String] = []
        var seen = Set<String>()
        for id in ids where !tombstoneSet.contains(id) && seen.insert(id).inserted {
            guard positionByID[id] != nil else {
                throw PlanningError.invalidValue(flag: "--id", value: id, reason: "the plan has no example with this id")
            }
            fresh.append(id)
        }
        guard !fresh.isEmpty else { return false }
        if let end = tombstoneLogEnd {
            let newEnd = try TombstoneLog.append(fresh.sorted(by: UTF8Order.precedes), to: TombstoneLog.url(forPlanAt: url),
                                                 at: end)
            try addTombstones(fresh)
            tombstoneLogEnd = newEnd
            return false
        }
        var upgraded = self
        try upgraded.addTombstones(fresh)
        upgraded.tombstoneLogEnd = TombstoneLog.header.utf8.count
        try upgraded.save(to: url)  // creates the log first
        self = upgraded
        return true
    }

    /// Reads the ids appended to the tombstone log (stored beside `url`) since this plan last
    /// read it — by another process, for instance. Nothing to do for a plan without a log.
    public mutating func readNewTombstones(savedAt url: URL) throws {
        guard let end = tombstoneLogEnd else { return }
        let log = TombstoneLog.url(forPlanAt: url)
        let (ids, newEnd) = try TombstoneLog.read(log, from: end)
        try addTombstones(ids) { id in
            PlanningError.invariantViolated(file: log.path, invariant: "tombstones", detail: "deleted id \"\(id)\" is not in the plan")
        }
        tombstoneLogEnd = newEnd
    }
}
