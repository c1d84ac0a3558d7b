import Foundation
import Kernels
import Models
import Store

extension TrainingSettings {
    /// Loads the run's base encoder after checking that its `model.safetensors` is the file
    /// the run was trained on (SHA-256 against `baseModelSHA256`): stage adapters only make
    /// sense on the exact weights they were trained with.
    /// - Parameters:
    ///   - run: the run directory, which a relative `baseModel` is resolved against.
    ///   - precision: the frozen products' arithmetic; the run's own when nil (training and
    ///     replay always use the run's; inference may choose another).
    public func loadBaseEncoder(run: URL, precision: Precision? = nil) throws -> MiniLMEncoder {
        guard modelKind == .encoder else {
            throw TrainingError.wrongModelKind(run: run.path, expected: .encoder, found: modelKind)
        }
        let directory = baseModelDirectory(run: run)
        try checkBaseModel(directory)
        return try MiniLMEncoder(directory: directory.path, precision: precision ?? self.precision)
    }

    /// Loads a decoder run's base model and tokenizer after checking the GGUF file's SHA-256.
    public func loadBaseDecoder(run: URL, precision: Precision? = nil) throws -> (model: LlamaModel, tokenizer: BPETokenizer) {
        guard modelKind == .decoder else {
            throw TrainingError.wrongModelKind(run: run.path, expected: .decoder, found: modelKind)
        }
        let file = baseModelDirectory(run: run)
        try checkBaseModel(file)
        return try LlamaModel.load(path: file.path, precision: precision ?? self.precision)
    }

    /// The number of transformer layers of the base model (from its config.json or GGUF header).
    public func baseLayerCount(run: URL) throws -> Int {
        let location = baseModelDirectory(run: run)
        switch modelKind {
        case .encoder:
            return try BertConfiguration(contentsOf: location.appendingPathComponent("config.json").path).layerCount
        case .decoder:
            return try LlamaConfiguration(gguf: try GGUFFile(contentsOf: location.path)).layerCount
        }
    }

    /// Throws unless the base model's weights file (`directory/model.safetensors`, or the GGUF
    /// file itself for a decoder) hashes to `baseModelSHA256`, and an encoder's config.json and
    /// vocab.txt to the hashes the run recorded for them.
    public func checkBaseModel(_ directory: URL) throws {
        let weights = modelKind == .decoder ? directory : directory.appendingPathComponent("model.safetensors")
        var pinned = [(weights, baseModelSHA256)]
        if modelKind == .encoder {
            if let config = baseModelConfigSHA256 { pinned.append((directory.appendingPathComponent("config.json"), config)) }
            if let vocabulary = baseModelVocabularySHA256 {
                pinned.append((directory.appendingPathComponent("vocab.txt"), vocabulary))
            }
        }
        for (file, expected) in pinned {
            let found: String
            do { found = try FileDigest.sha256(of: file).hex } catch {
                if !baseModel.hasPrefix("/"), !FileManager.default.fileExists(atPath: directory.path) {
                    // Relative to the run: a run moved on its own (to another depth) looks elsewhere.
                    throw TrainingError.fileInvalid(file: directory.path, reason: "the run's train.json names its base "
                        + "model `\(baseModel)`, relative to the run directory, and nothing is there (a run moved "
                        + "without its base model looks for it beside its new place). Put the model there, or a "
                        + "symbolic link to it: `mkdir -p \(directory.deletingLastPathComponent().path) && ln -s "
                        + "<the model> \(directory.path)`, or write the model's path in train.json's base_model; its "
                        + "\(weights.lastPathComponent) must hash to SHA-256 \(expected)")
                }
                throw TrainingError.baseModelMismatch(file: file.path, expected: expected, found: "no readable file (\(error))")
            }
            guard found == expected else {
                throw TrainingError.baseModelMismatch(file: file.path, expected: expected, found: found)
            }
        }
    }

    /// Records the hashes of an encoder's config.json and vocab.txt in `directory` (a new run).
    public mutating func pinBaseModelFiles(_ directory: URL) throws {
        guard modelKind == .encoder else { return }
        baseModelConfigSHA256 = try FileDigest.sha256(of: directory.appendingPathComponent("config.json")).hex
        baseModelVocabularySHA256 = try FileDigest.sha256(of: directory.appendingPathComponent("vocab.txt")).hex
    }
}

extension TrainingSettings {
    /// Throws when a stage already trained in the run records other settings or another
    /// precision than these (read from train.json): the file was edited, and training on would
    /// serve stages of mixed settings side by side. The stages say what trained them.
    public func requireMatchingStages(_ layout: RunLayout) throws {
        guard let url = layout.anyStageFile() else { return }
        let stage = try StageCheckpoint.load(from: url)
        if let (field, recorded, saved) = firstDifference(from: stage.record) {
            throw TrainingError.fileInvalid(file: layout.settingsURL.path,
                                            reason: "\(field) is \(saved), but \(url.path) was trained with \(recorded). The "
                                                + "file was edited after training; put back the value the stages record, "
                                                + "or train a new run with the new settings")
        }
    }

    /// The first way a stage's record contradicts these settings, its precision and then its
    /// hyperparameters, as (field, recorded value, value here); nil when none does.
    public func firstDifference(from record: StageRecord) -> (String, String, String)? {
        record.precision != precision ? ("precision", record.precision.rawValue, precision.rawValue)
            : firstDifference(fromRecorded: record.hyperparametersJSON)
    }
}
