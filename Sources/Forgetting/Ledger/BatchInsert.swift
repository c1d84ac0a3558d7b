import GRDB
import GRDBSQLite

/// A prepared INSERT driven through SQLite's C API, for the ledger's large batches.
///
/// GRDB's `execute(arguments:)` boxes every argument and does per-statement bookkeeping that
/// costs more than SQLite's own insert; a 100,000-request batch executes ~300,000 inserts in one
/// transaction, so the ledger binds and steps the statement GRDB prepared directly. Text is
/// bound with SQLITE_TRANSIENT (SQLite copies it), so no Swift buffer must outlive a call.
struct BatchInsert {
    private let statement: Statement
    private let connection: OpaquePointer?

    /// `sqlite3_destructor_type` -1: SQLite copies the bytes before `bind` returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    init(_ db: Database, sql: String) throws {
        statement = try db.makeStatement(sql: sql)
        connection = db.sqliteConnection
    }

    /// Binds `values` (Int64 or String) to the parameters in order, runs the insert, resets it.
    func run(_ values: BatchValue...) throws {
        let handle = statement.sqliteStatement
        for (offset, value) in values.enumerated() {
            let index = Int32(offset + 1)
            switch value {
            case .integer(let number):
                sqlite3_bind_int64(handle, index, number)
            case .text(var text):
                text.withUTF8 { utf8 in
                    if let base = utf8.baseAddress, utf8.count > 0 {
                        let pointer = UnsafeRawPointer(base).assumingMemoryBound(to: CChar.self)
                        _ = sqlite3_bind_text(handle, index, pointer, Int32(utf8.count), Self.transient)
                    } else {
                        // An empty buffer may have no address: bind "" explicitly, never NULL.
                        _ = sqlite3_bind_text(handle, index, "", 0, Self.transient)
                    }
                }
            }
        }
        let status = sqlite3_step(handle)
        sqlite3_reset(handle)
        guard status == SQLITE_DONE else {
            let message = connection.map { String(cString: sqlite3_errmsg($0)) } ?? "no connection"
            throw DatabaseError(resultCode: ResultCode(rawValue: status), message: message,
                                sql: statement.sql)
        }
    }
}

/// A value bound by `BatchInsert`.
enum BatchValue {
    case integer(Int64)
    case text(String)
}
