import Foundation

/// Paths of the real model and data that `make setup` places in the repository.
enum TestAssets {
    /// The repository root, found from this source file's location (Tests/ModelsTests/…).
    static let repositoryRoot: String = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let miniLMDirectory = repositoryRoot + "/Checkpoints/base/all-MiniLM-L6-v2"

    /// A fixture file committed under Tests/ModelsTests/Fixtures.
    static func fixture(_ name: String) -> URL? {
        Bundle.module.url(forResource: "Fixtures/\(name)", withExtension: nil)
    }
}
