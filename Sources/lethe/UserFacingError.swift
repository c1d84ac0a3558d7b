import ArgumentParser
import Foundation
import Support
import Training

/// Turns errors that carry no message of ours — Foundation's file and coding errors — into a
/// sentence that names the file or field and says what to do, so no `NSCocoaErrorDomain` code
/// or coding-path dump reaches the user. Lethe's own errors already read that way and pass
/// through unchanged, as do ArgumentParser's exits.
struct UserFacingError: Error, CustomStringConvertible {
    let description: String

    static func translate(_ error: Error) -> Error {
        switch error {
        case is ExitCode, is CleanExit, is ValidationError:
            return error
        case let error as TrainingError:
            // An option that contradicts the run's saved settings is a usage error (exit 64),
            // found before any work, as `retrain` reports a --threads that differs from the run's.
            guard case .settingsConflict = error else { return error }
            return ValidationError(error.description)
        case let error as EncodingError:
            guard case .invalidValue(let value, let context) = error else { return error }
            let field = context.codingPath.map(\.stringValue).joined(separator: ".")
            return UserFacingError(description: "cannot write \(field.isEmpty ? "a value" : "field \"\(field)\"") as JSON: "
                                   + "\(value) is not a finite number. A computation diverged; check the inputs "
                                   + "(a lower --lr, for training) and run again.")
        case is DecodingError:
            return UserFacingError(description: "cannot read a JSON document: \(DecodingError.fieldDescription(error)). "
                                   + "Check the file the command reads.")
        default:
            let ns = error as NSError
            guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return error }
            // JSONSerialization refuses NaN and infinity with a debug description and no file.
            if let debug = ns.userInfo["NSDebugDescription"] as? String, debug.contains("JSON write") {
                return UserFacingError(description: "cannot write the JSON output: \(debug). A computation gave NaN or "
                                       + "infinity; check the inputs (the model, an adapter, a lower --lr) and run again.")
            }
            let file = (ns.userInfo[NSFilePathErrorKey] as? String)
                ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path ?? "a file"
            return UserFacingError(description: "\(file): \(fileErrorReason(error)). Check the path, that it is the "
                                   + "right file and its permissions, then run again.")
        }
    }
}
