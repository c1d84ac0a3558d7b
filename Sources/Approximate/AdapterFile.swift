import Foundation
import Kernels
import Models
import Store

/// The unlearned adapter as a sealed HDF5 file (`HDF5Seal`; format `lethe-decoder-adapter`,
/// version 2: version 1, the same content, is read when sealed).
///
/// Layout: one float32 dataset per trainable tensor at `/adapter/<name>` with PEFT names
/// (`layers.L.q_proj.lora_A` [r, in], `lora_B` [out, r], or `layers.L.up_proj.weight` for a
/// fully trained matrix). Root attributes: `format`, `format_version`, `software_version`,
/// `method`, `learning_rate`, `steps`, `batch_size`, `lambda`, `seed`, `thread_count` (training
/// cuts each batch into that many groups of sequences: the same count gives the same bits),
/// `precision` (`fp32`/`bf16`, the frozen products' arithmetic; absent in older files: fp32),
/// `r`, `lora_alpha`, `use_rslora` (absent in older files: 0), `target_modules`, `full_modules`,
/// `base_model_sha256`, `beta` (NPO and SimNPO methods) and `gamma` (SimNPO methods), and
/// `<set>_sha256` / `<set>_path` for each data set used.
public enum AdapterFile {
    public static let format = "lethe-decoder-adapter"
    public static let version: Int64 = 2
    /// The versions this build reads (only behind a valid seal).
    public static let readableVersions: ClosedRange<Int64> = 1...2

    /// Writes `adapter` atomically to `url` with the run's record.
    public static func write(_ adapter: LlamaAdapter, to url: URL, method: String,
                             configuration: UnlearningConfiguration, threadCount: Int, baseModelSHA256: String,
                             dataSets: [String: TextCorpus], precision: Precision = .fp32) throws {
        try HDF5File.writeAtomically(to: url, sealed: true) { file in
            for p in adapter.parameters {
                try file.write(p.value.values, shape: p.value.shape, at: "adapter/\(p.name)")
            }
            let a = configuration.adapter
            let attributes: [(String, AttributeValue)] = [
                ("format", .string(format)), ("format_version", .int(version)),
                ("software_version", .string(letheVersion)), ("method", .string(method)),
                ("learning_rate", .double(Double(configuration.learningRate))),
                ("steps", .int(Int64(configuration.steps))), ("batch_size", .int(Int64(configuration.batchSize))),
                ("lambda", .double(Double(configuration.lambda))), ("seed", .int(Int64(bitPattern: configuration.seed))),
                ("thread_count", .int(Int64(threadCount))),
                ("r", .int(Int64(a.rank))), ("lora_alpha", .double(Double(a.lora?.alpha ?? 0))),
                ("use_rslora", .int(a.lora?.useRSLoRA == true ? 1 : 0)),
                ("target_modules", .strings(a.targets.map(\.rawValue))),
                ("full_modules", .strings(a.fullTargets.map(\.rawValue))),
                ("layers", .ints((a.layers ?? []).map(Int64.init))),
                ("base_model_sha256", .string(baseModelSHA256)),
                ("precision", .string(precision.rawValue)),
            ]
            for (name, value) in attributes { try file.setAttribute(value, named: name) }
            if let m = UnlearningMethod(rawValue: method), m.usesPreferenceLoss {
                try file.setAttribute(.double(Double(configuration.beta(for: m))), named: "beta")
                if m.forgetTerm == .simNPO { try file.setAttribute(.double(Double(configuration.gamma)), named: "gamma") }
            }
            for (set, corpus) in dataSets.sorted(by: { $0.key < $1.key }) {
                try file.setAttribute(.string(corpus.sha256), named: "\(set)_sha256")
                try file.setAttribute(.string(corpus.path), named: "\(set)_path")
            }
        }
    }

    /// The adapter file's name inside the directory `lethe unlearn --out DIR` writes.
    public static let fileName = "adapter.h5"

    /// The adapter file that `path` names: the file itself, or `path/adapter.h5` for the
    /// directory `lethe unlearn --out` wrote. A path that is neither is a clear error.
    public static func locate(_ path: String) throws -> URL {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ApproximateError.adapterNotFound(path: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else { return URL(fileURLWithPath: path) }
        let file = URL(fileURLWithPath: path).appendingPathComponent(fileName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw ApproximateError.adapterNotFound(path: path, reason: "a directory without \(fileName)")
        }
        return file
    }

    /// The model an adapter is applied to, as the file records its base: the path names it in
    /// messages, the SHA-256 (hex) of its bytes is compared.
    public struct BaseModel: Sendable {
        public let path: String, sha256: String
        public init(path: String, sha256: String) { self.path = path; self.sha256 = sha256 }
    }

    /// Reads an adapter file back: rebuilds the adapter configuration and loads every tensor.
    /// Refuses layers `weights` lacks and, with `base`, a file trained from another base model;
    /// returns the precision its training used (fp32 in files older than the attribute).
    public static func read(_ url: URL, weights: LlamaWeights, base: BaseModel? = nil) throws
        -> (adapter: LlamaAdapter, method: String, precision: Precision) {
        // A value out of range in the file is the file's fault: named with its path.
        do {
            return try readChecked(url, weights: weights, base: base)
        } catch let ApproximateError.invalidValue(field, value, reason) {
            throw ApproximateError.invalidAdapter(path: url.path, reason: "\(field) = \(value): \(reason)")
        } catch let ModelsError.invalidValue(field, value, reason) {
            // The adapter configuration's own checks (rank, alpha, targets) speak of options.
            throw ApproximateError.invalidAdapter(path: url.path, reason: "\(field) = \(value): \(reason)")
        }
    }

    private static func readChecked(_ url: URL, weights: LlamaWeights, base: BaseModel?) throws
        -> (adapter: LlamaAdapter, method: String, precision: Precision) {
        let file = try HDF5File.openSealed(url) { ApproximateError.damagedAdapter(path: url.path, reason: $0) }
        defer { try? file.close() }
        let found = try file.stringAttribute(named: "format"), foundVersion = try file.intAttribute(named: "format_version")
        guard found == format, readableVersions.contains(foundVersion) else {
            throw ApproximateError.invalidValue(field: "format", value: "\(found) version \(foundVersion)",
                                                reason: "expected \(format) version \(readableVersions.lowerBound)…"
                                                    + "\(readableVersions.upperBound)")
        }
        func projections(_ name: String) throws -> [LlamaProjection] {
            try file.stringsAttribute(named: name).map {
                guard let p = LlamaProjection(rawValue: $0) else {
                    throw ApproximateError.invalidValue(field: name, value: $0, reason: "not a Llama projection")
                }
                return p
            }
        }
        let layers = try file.intsAttribute(named: "layers").map(Int.init)
        let layerCount = weights.configuration.layerCount
        if let bad = layers.first(where: { !(0 ..< layerCount).contains($0) }) {
            throw ApproximateError.adapterMismatch(path: url.path, reason: "its layers list names layer \(bad), but the "
                                                       + "model has \(layerCount) layers (0…\(layerCount - 1))")
        }
        if let base {
            let recorded = try file.stringAttribute(named: "base_model_sha256")
            guard recorded == base.sha256 else {
                throw ApproximateError.adapterMismatch(path: url.path, reason: "it was trained from a base model with "
                                                           + "SHA-256 \(recorded), but \(base.path) has SHA-256 \(base.sha256)")
            }
        }
        let precisionName = try file.hasAttribute(named: "precision") ? try file.stringAttribute(named: "precision") : "fp32"
        guard let precision = Precision(rawValue: precisionName) else {
            throw ApproximateError.invalidValue(field: "precision", value: precisionName,
                                                reason: "a precision other than fp32 or bf16")
        }
        // Bounded before the adapter allocates rank × width weights per module.
        let rank = try file.intAttribute(named: "r"), width = weights.configuration.hiddenSize
        guard (0...Int64(width)).contains(rank) else {
            throw ApproximateError.invalidValue(field: "r", value: "\(rank)",
                                                reason: "a rank outside 0…\(width), the model's width")
        }
        // Files written before rsLoRA was an option have no use_rslora: plain α/r.
        let rsLoRAFlag = try file.hasAttribute(named: "use_rslora") ? try file.intAttribute(named: "use_rslora") : 0
        guard rsLoRAFlag == 0 || rsLoRAFlag == 1 else {
            throw ApproximateError.invalidValue(field: "use_rslora", value: "\(rsLoRAFlag)", reason: "must be 0 or 1")
        }
        let rsLoRA = rsLoRAFlag == 1
        let configuration = try LlamaAdapterConfiguration(
            rank: Int(rank), alpha: Float(try file.doubleAttribute(named: "lora_alpha")),
            targets: try projections("target_modules"), fullTargets: try projections("full_modules"),
            layers: layers.isEmpty ? nil : layers, useRSLoRA: rsLoRA)
        let adapter = LlamaAdapter(configuration: configuration, weights: weights, seed: 0)
        for p in adapter.parameters {
            let (values, _) = try file.readFloats(at: "adapter/\(p.name)", expectedShape: p.value.shape)
            for j in 0 ..< values.count { p.value[j] = values[j] }
        }
        return (adapter, try file.stringAttribute(named: "method"), precision)
    }
}
