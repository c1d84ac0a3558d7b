import Approximate
import CommandSupport
import Foundation
import Models

extension DecoderOptions {
    /// The adapter `path` names (the directory `lethe unlearn --out` wrote, or the file in it),
    /// for `model` loaded from --model: refused when it records another base model (compared by
    /// SHA-256) or layers the model lacks. One trained with the other --precision is measured as
    /// asked, which changes nothing on disk; a note on stderr says how to measure it as trained.
    func loadAdapter(_ path: String, for model: LlamaModel) throws -> LlamaAdapter {
        let url = try AdapterFile.locate(path)
        let base = AdapterFile.BaseModel(path: self.model, sha256: try TextCorpus.fileSHA256(path: self.model))
        let read = try AdapterFile.read(url, weights: model.weights, base: base)
        if read.precision != precision {
            StandardError.write(Data(("note: \(url.path) was trained with --precision \(read.precision.rawValue); "
                + "this measures it with --precision \(precision.rawValue). Pass --precision \(read.precision.rawValue) "
                + "to measure it as trained.\n").utf8))
        }
        return read.adapter
    }
}
