import GRDB

/// The ledger's SQL schema (format `lethe-ledger` version 1), created on first open and
/// checked on every open.
///
///     ledger_meta(key TEXT PRIMARY KEY, value TEXT)          -- format, version
///     ledger_entries(seq INTEGER PRIMARY KEY, timestamp_ms INTEGER, kind TEXT,
///                    payload TEXT, keys TEXT, previous_hash TEXT, hash TEXT)
///     ledger_keys(field TEXT, value TEXT, seq INTEGER,        -- the lookup index
///                 PRIMARY KEY (field, value, seq)) WITHOUT ROWID
///
/// An entry row is self-contained: its `keys` column holds its sorted index keys as
/// netstrings (`10:example_id5:bbc-7`), covered by the hash. `ledger_keys` repeats them as one
/// B-tree ordered by (field, value, seq) — the audit's lookups are a range scan of it, and
/// each entry costs one B-tree insert per key. Triggers abort UPDATE and DELETE on both
/// tables: the ledger is append-only for any code going through SQLite normally.
extension Ledger {
    func prepareSchema() throws {
        try write("create or check the schema") { db in
            try db.inTransaction(.immediate) {
                let hasMeta = try db.tableExists("ledger_meta")
                if !hasMeta {
                    let existing = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
                    if !existing.isEmpty {
                        throw ForgettingError.ledgerFormat(
                            file: url.path, expected: "\(Self.formatName) v\(Self.formatVersion)",
                            found: "an SQLite database with tables \(existing.sorted())")
                    }
                    try createSchema(db)
                    return .commit
                }
                try checkFormat(db)
                return .commit
            }
        }
    }

    /// Throws `ledgerFormat` unless `ledger_meta` names this format and version.
    func checkFormat(_ db: Database) throws {
        guard try db.tableExists("ledger_meta") else {
            let existing = try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'")
            throw ForgettingError.ledgerFormat(file: url.path, expected: "\(Self.formatName) v\(Self.formatVersion)",
                                               found: existing.isEmpty ? "an empty SQLite database"
                                                   : "an SQLite database with tables \(existing.sorted())")
        }
        let meta = try Row.fetchAll(db, sql: "SELECT key, value FROM ledger_meta")
        var values: [String: String] = [:]
        for row in meta { values[row[0]] = row[1] }
        let found = "\(values["format"] ?? "no format") v\(values["version"] ?? "?")"
        guard values["format"] == Self.formatName, values["version"] == String(Self.formatVersion) else {
            throw ForgettingError.ledgerFormat(file: url.path, expected: "\(Self.formatName) v\(Self.formatVersion)",
                                               found: found)
        }
    }

    private func createSchema(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE ledger_meta (key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL);
            CREATE TABLE ledger_entries (
                seq INTEGER PRIMARY KEY NOT NULL,
                timestamp_ms INTEGER NOT NULL,
                kind TEXT NOT NULL,
                payload TEXT NOT NULL,
                keys TEXT NOT NULL,
                previous_hash TEXT NOT NULL,
                hash TEXT NOT NULL
            );
            CREATE TABLE ledger_keys (
                field TEXT NOT NULL,
                value TEXT NOT NULL,
                seq INTEGER NOT NULL,
                PRIMARY KEY (field, value, seq)
            ) WITHOUT ROWID;
            CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries
                BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
            CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries
                BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
            CREATE TRIGGER ledger_keys_no_update BEFORE UPDATE ON ledger_keys
                BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
            CREATE TRIGGER ledger_keys_no_delete BEFORE DELETE ON ledger_keys
                BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
            """)
        try db.execute(sql: "INSERT INTO ledger_meta (key, value) VALUES ('format', ?), ('version', ?)",
                       arguments: [Self.formatName, String(Self.formatVersion)])
    }
}
