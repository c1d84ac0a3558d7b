import Foundation
@testable import Store

/// A fresh directory under the system temporary directory, removed by `remove()`.
struct ScratchDirectory {
    let url: URL

    init(_ label: String = #function) throws {
        let name = "lethe-store-\(label.filter { $0.isLetter || $0.isNumber })-\(UUID().uuidString)"
        url = FileManager.default.temporaryDirectory.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Names in the directory (hidden temporary files included).
    func contents() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: url.path).sorted()
    }

    func remove() { try? FileManager.default.removeItem(at: url) }
}

/// Runs `body` and returns the `StoreError` it threw, or nil if it threw nothing (or another error).
func storeError(_ body: () throws -> Void) -> StoreError? {
    do {
        try body()
        return nil
    } catch let error as StoreError {
        return error
    } catch {
        return nil
    }
}
