import Foundation
import GRDB

/// What an attacker with write access does to a ledger: SQL through a separate connection,
/// with the append-only triggers dropped first.
public enum LedgerTampering {
    public static func execute(_ sql: String, onLedgerAt url: URL) throws {
        let db = try DatabaseQueue(path: url.path)
        try db.write { db in
            for trigger in ["ledger_entries_no_update", "ledger_entries_no_delete",
                            "ledger_keys_no_update", "ledger_keys_no_delete"] {
                try db.execute(sql: "DROP TRIGGER \(trigger)")
            }
            try db.execute(sql: sql)
        }
        try db.close()
    }
}
