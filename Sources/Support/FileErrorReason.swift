import Foundation

/// A few words on why a file could not be read or written — "no such file", "permission
/// denied", "is a directory" — for a message that already names the file, instead of
/// Foundation's sentence or its error domain and code.
public func fileErrorReason(_ error: Error) -> String {
    let ns = error as NSError
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    // Foundation refuses anything but a regular file as "permission denied": name what it is.
    if let path, let kind = FileKind.irregular(atPath: path), kind != "a directory" {
        return "it is \(kind), not a regular file"
    }
    if ns.domain == NSCocoaErrorDomain {
        switch ns.code {
        case NSFileReadNoSuchFileError, NSFileNoSuchFileError: return "no such file"
        case NSFileReadNoPermissionError, NSFileWriteNoPermissionError: return "permission denied"
        case NSFileReadInapplicableStringEncodingError: return "not UTF-8 text"
        case NSFileReadCorruptFileError: return "not in the expected format"
        case NSFileWriteOutOfSpaceError: return "the disk is full"
        case NSFileWriteFileExistsError: return "a file of that name is in the way"
        default: break
        }
        // On Linux the underlying error is a POSIXError value, which `as? NSError` does not match.
        if let underlying = (ns.userInfo[NSUnderlyingErrorKey] as? Error).map({ $0 as NSError }),
           underlying.domain == NSPOSIXErrorDomain {
            return posixReason(underlying.code)
        }
        // Reading a directory fails with a bare "unknown" read error.
        var isDirectory: ObjCBool = false
        if let path, FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            return "is a directory, not a file"
        }
    }
    if ns.domain == NSPOSIXErrorDomain { return posixReason(ns.code) }
    return ns.localizedDescription
}

/// strerror's text, lower-cased to sit inside a sentence ("is a directory").
private func posixReason(_ code: Int) -> String {
    String(cString: strerror(Int32(code))).lowercased()
}
