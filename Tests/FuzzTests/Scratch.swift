import Foundation

/// A fresh temporary directory for one test's files, removed by `remove()`.
///
/// Fuzzing a file parser writes one file per mutant, tens of thousands per test: the directory
/// is made in /dev/shm (memory) when the system has it, so the writes cost no disk I/O (on a
/// busy disk they took minutes instead of seconds), else in the temporary directory.
struct Scratch {
    let url: URL

    init(_ label: String = #function) throws {
        var isDirectory: ObjCBool = false
        let memory = FileManager.default.fileExists(atPath: "/dev/shm", isDirectory: &isDirectory) && isDirectory.boolValue
            && FileManager.default.isWritableFile(atPath: "/dev/shm")
        let parent = memory ? URL(fileURLWithPath: "/dev/shm") : FileManager.default.temporaryDirectory
        url = parent.appendingPathComponent("lethe-fuzz-\(label.filter(\.isLetter))-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }
    func remove() { try? FileManager.default.removeItem(at: url) }
}
