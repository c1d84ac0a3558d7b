import Crypto
import Foundation
import Testing
@testable import Store

/// Files written by Lethe read identically in h5py, and files written by h5py read
/// identically in Lethe. h5py runs from .cache/venv-h5py, created on first use by
/// Tools/h5py_venv.sh (pinned in Tools/requirements-h5py.txt, about a minute); the test is
/// cancelled (skipped) with a printed reason only if pip cannot reach the package registry.
@Suite(.serialized) struct H5pyInteropTests {
    private static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    @Test func h5pyReadsWhatLetheWrites() throws {
        let python = try h5pyPython()
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("lethe-written.h5")
        let floats = (0..<384 * 8).map { Float(sin(Double($0))) }
        // Sealed, as plans and checkpoints are: h5py skips the user block that holds the seal.
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            try file.write(floats, shape: [8, 384], at: "stage/1/layer.5.query/lora_A")
            try file.write(floats, shape: [384, 8], at: "stage/1/layer.5.query/lora_B",
                           storage: .float16)
            try file.write(floats, shape: [3072], at: "packed", options: .gzip(level: 5, checksum: true))
            try file.write([Int64.min, -7, 0, 9, .max], shape: [5], at: "plan/shard_of_slice")
            try file.write((0...255).map(UInt8.init), shape: [2, 128], at: "blob")
            try file.write(["bbc-0002", "bbc-0010", "ä-ö", "映画"], at: "plan/slices/0/member_ids")
            try file.write([Float(3.25)], shape: [], at: "scalar")
            try file.createGroup("empty/group")
            try file.setAttribute("lethe-stage", named: "format")
            try file.setAttribute(1, named: "format_version")
            try file.setAttribute(0.1, named: "learning_rate")
            try file.setAttribute(.ints([4, -2]), named: "shape", at: "stage")
            try file.setAttribute(.doubles([1.5, -2e-9]), named: "alphas", at: "stage")
            try file.setAttribute(.strings(["s0", "s2", "ß"]), named: "prefix", at: "stage/1")
            try file.setAttribute("tensor", named: "role", at: "packed")
        }
        try HDF5Seal.check(fileAt: url)
        let pythonDigest = try runInterop(python, "digest", url)
        let ours = try Digest(of: HDF5File.openSealed(url))
        #expect(pythonDigest.groups == ours.groups)
        #expect(pythonDigest.datasets == ours.datasets)
        #expect(pythonDigest.attributes == ours.attributes)
        #expect(pythonDigest.datasets["/packed"]?.compression == "gzip")
        #expect(pythonDigest.datasets["/packed"]?.fletcher32 == true)
        #expect(pythonDigest.datasets.count == 7)
    }

    @Test func letheReadsWhatH5pyWrites() throws {
        let python = try h5pyPython()
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("h5py-written.h5")
        let pythonDigest = try runInterop(python, "write", url)
        let file = try HDF5File.open(url)
        let ours = try Digest(of: file)
        #expect(pythonDigest.groups == ours.groups)
        #expect(pythonDigest.datasets == ours.datasets)
        #expect(pythonDigest.attributes == ours.attributes)
        // Spot values, so equal digests cannot come from two equally wrong readers.
        let floats = try file.readFloats(at: "tensors/floats")
        #expect(floats.shape == [2, 3, 4])
        #expect(floats.values == (0..<24).map { Float($0) * 0.25 - 3 })
        #expect(try file.readFloats(at: "tensors/halves").values == [-2, -1.5, -1, -0.5, 0, 0.5, 1, 1.5, 2])
        #expect(try file.readStrings(at: "ids") == ["ex-001", "ex-002", "dokument-ä", "映画"])
        #expect(try file.readInt64s(at: "tensors/ints").values == [-(1 << 62), -1, 0, 1, 7, 1 << 62])
        #expect(try file.readFloats(at: "a/b/c/packed").values.prefix(3) == [0, 1, 2])
        #expect(try file.doubleAttribute(named: "learning_rate") == 0.1)
        #expect(try file.stringsAttribute(named: "names") == ["alpha", "βeta", ""])
        #expect(try file.stringAttribute(named: "note", at: "a/b/c/packed") == "gzip level 6")
    }

    /// A dataset whose header claims 10^12 elements (a few kB on disk: nothing was written) is
    /// refused before anything is allocated; its shape can still be asked.
    @Test func datasetsClaiming10To12ElementsAreRefusedBeforeAllocating() throws {
        let python = try h5pyPython()
        let scratch = try ScratchDirectory()
        defer { scratch.remove() }
        let url = scratch.file("huge.h5")
        let script = Self.repositoryRoot.appendingPathComponent("Tools/h5py_interop.py").path
        let result = try Self.run(python, [script, "huge", url.path])
        try #require(result.status == 0, "h5py_interop.py huge failed: \(result.stderr)")
        let file = try HDF5File.open(url)
        defer { try? file.close() }
        #expect(try file.shape(of: "huge") == [1_000_000_000_000])
        for (path, shape) in [("huge", [1_000_000_000_000]), ("square", [1_000_000, 1_000_000])] {
            #expect(throws: StoreError.tooLarge(file: url.path, path: "/" + path, elementCount: shape.reduce(1, *),
                                                elementByteCount: 4)) {
                _ = try file.readFloats(at: path)
            }
        }
    }

    // MARK: - Digest, computed the same way as Tools/h5py_interop.py

    struct DatasetDigest: Equatable {
        var dtype: String
        var shape: [Int]
        var sha256: String
        var compression: String?
        var fletcher32: Bool?

        static func == (a: Self, b: Self) -> Bool {
            // Filter facts are known only on the h5py side; compare the content.
            a.dtype == b.dtype && a.shape == b.shape && a.sha256 == b.sha256
        }
    }

    struct Digest {
        var groups: [String] = []
        var datasets: [String: DatasetDigest] = [:]
        var attributes: [String: [String: AttributeValue]] = [:]

        init(json: Data) throws {
            let parsed = try JSONSerialization.jsonObject(with: json)
            let root = try #require(parsed as? [String: Any])
            groups = try #require(root["groups"] as? [String])
            let sets = try #require(root["datasets"] as? [String: [String: Any]])
            for (path, entry) in sets {
                datasets[path] = DatasetDigest(
                    dtype: try #require(entry["dtype"] as? String),
                    shape: try #require(entry["shape"] as? [Int]),
                    sha256: try #require(entry["sha256"] as? String),
                    compression: entry["compression"] as? String,
                    fletcher32: entry["fletcher32"] as? Bool)
            }
            let attrs = try #require(root["attributes"] as? [String: [String: [String: Any]]])
            for (path, named) in attrs {
                var values: [String: AttributeValue] = [:]
                for (name, entry) in named {
                    values[name] = try Self.attribute(entry)
                }
                attributes[path] = values
            }
        }

        init(of file: HDF5File) throws {
            try walk(file, path: "/")
            groups.sort()
        }

        private mutating func walk(_ file: HDF5File, path: String) throws {
            groups.append(path)
            try collectAttributes(file, path)
            for child in try file.children(of: path) {
                let childPath = path == "/" ? "/" + child : path + "/" + child
                switch try file.kind(of: childPath) {
                case .group: try walk(file, path: childPath)
                case .dataset:
                    datasets[childPath] = try Self.datasetDigest(file, childPath)
                    try collectAttributes(file, childPath)
                case nil: Issue.record("listed child \(childPath) does not exist")
                }
            }
        }

        private mutating func collectAttributes(_ file: HDF5File, _ path: String) throws {
            let names = try file.attributeNames(at: path)
            guard !names.isEmpty else { return }
            var values: [String: AttributeValue] = [:]
            for name in names { values[name] = try file.attribute(named: name, at: path) }
            attributes[path] = values
        }

        private static func datasetDigest(_ file: HDF5File, _ path: String) throws -> DatasetDigest {
            let info = try file.info(at: path)
            var raw = Data()
            switch info.elementType {
            case .float32:
                try file.readFloats(at: path).values.forEach { withUnsafeBytes(of: $0.bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
            case .float16:
                try file.readFloats(at: path).values.forEach { withUnsafeBytes(of: Float16($0).bitPattern.littleEndian) { raw.append(contentsOf: $0) } }
            case .int64:
                try file.readInt64s(at: path).values.forEach { withUnsafeBytes(of: $0.littleEndian) { raw.append(contentsOf: $0) } }
            case .uint8:
                raw.append(contentsOf: try file.readBytes(at: path).values)
            case .string:
                for string in try file.readStrings(at: path) { raw.append(contentsOf: Array(string.utf8) + [0]) }
            case .unsupported(let what):
                Issue.record("\(path) has unsupported type \(what)")
            }
            let hash = SHA256.hash(data: raw).map { String(format: "%02x", $0) }.joined()
            return DatasetDigest(dtype: info.elementType.description, shape: info.shape, sha256: hash)
        }

        private static func attribute(_ entry: [String: Any]) throws -> AttributeValue {
            let kind = try #require(entry["kind"] as? String)
            let value = entry["value"]
            func double(_ hex: Any?) throws -> Double {
                let text = try #require(hex as? String)
                return try #require(Double(text))
            }
            switch kind {
            case "string": return .string(try #require(value as? String))
            case "strings": return .strings(try #require(value as? [String]))
            case "int": return .int(try #require((value as? NSNumber)?.int64Value))
            case "ints": return .ints(try #require(value as? [NSNumber]).map(\.int64Value))
            case "double": return .double(try double(value))
            case "doubles": return .doubles(try #require(value as? [Any]).map(double))
            default:
                Issue.record("unknown attribute kind \(kind)")
                return .string("?")
            }
        }
    }

    // MARK: - Running h5py

    /// The venv's python, created on first use; cancels the test if the registry is unreachable.
    private func h5pyPython() throws -> URL {
        let result = try Self.run(URL(fileURLWithPath: "/bin/bash"),
                                  [Self.repositoryRoot.appendingPathComponent("Tools/h5py_venv.sh").path])
        if result.status == 3 {
            let reason = "h5py interop skipped: pip cannot reach the package registry (\(result.stderr))"
            print(reason)
            try Test.cancel(Comment(rawValue: reason))
        }
        try #require(result.status == 0, "Tools/h5py_venv.sh failed: \(result.stderr)")
        let path = result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        return URL(fileURLWithPath: path)
    }

    private func runInterop(_ python: URL, _ command: String, _ file: URL) throws -> Digest {
        let script = Self.repositoryRoot.appendingPathComponent("Tools/h5py_interop.py").path
        let result = try Self.run(python, [script, command, file.path])
        try #require(result.status == 0, "h5py_interop.py \(command) failed: \(result.stderr)")
        return try Digest(json: Data(result.stdout.utf8))
    }

    private static func run(_ executable: URL,
                            _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        // Read both pipes before waiting, so a chatty child cannot block on a full pipe.
        let errorData = LockedData()
        let reader = Thread { errorData.set(err.fileHandleForReading.readDataToEndOfFile()) }
        reader.start()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let stderr = errorData.waitForValue()
        return (process.terminationStatus, String(decoding: outData, as: UTF8.self),
                String(decoding: stderr, as: UTF8.self))
    }
}

/// Hands the stderr bytes from the reader thread to the test.
private final class LockedData: @unchecked Sendable {
    private let condition = NSCondition()
    private var value: Data?

    func set(_ data: Data) {
        condition.lock()
        value = data
        condition.signal()
        condition.unlock()
    }

    func waitForValue() -> Data {
        condition.lock()
        defer { condition.unlock() }
        while value == nil { condition.wait() }
        return value ?? Data()
    }
}
