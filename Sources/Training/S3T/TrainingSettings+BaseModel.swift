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
        let directory = baseModelDirectory(run: run)
        try checkBaseModel(directory)
        return try MiniLMEncoder(directory: directory.path, precision: precision ?? self.precision)
    }

    /// Throws unless `directory/model.safetensors` hashes to `baseModelSHA256`.
    public func checkBaseModel(_ directory: URL) throws {
        let weights = directory.appendingPathComponent("model.safetensors")
        let found: String
        do { found = try FileDigest.sha256(of: weights).hex } catch {
            throw TrainingError.baseModelMismatch(file: weights.path, expected: baseModelSHA256,
                                                  found: "no readable file (\(error))")
        }
        guard found == baseModelSHA256 else {
            throw TrainingError.baseModelMismatch(file: weights.path, expected: baseModelSHA256, found: found)
        }
    }
}
