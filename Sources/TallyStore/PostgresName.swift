/// How a name is spelled in PostgreSQL `text`, which cannot hold U+0000 (SQLite can): U+0000
/// is stored as U+FFFF followed by `0`, and U+FFFF itself as U+FFFF U+FFFF. The mapping is
/// one-to-one, so names that differ stay different, and it is the identity for every name
/// without U+0000 or U+FFFF (a noncharacter) — what other readers of the shared database see
/// for nearly all data.
enum PostgresName {
    static let escape: Character = "\u{FFFF}"

    /// The stored spelling of `name`.
    static func stored(_ name: String) -> String {
        // U+FFFF is EF BF BF in UTF-8: names without 0x00 or 0xEF bytes are stored as they are.
        guard name.utf8.contains(where: { $0 == 0 || $0 == 0xEF }) else { return name }
        var out = ""
        out.reserveCapacity(name.utf8.count + 4)
        for scalar in name.unicodeScalars {
            switch scalar {
            case "\u{0}": out.unicodeScalars.append(contentsOf: ["\u{FFFF}", "0"])
            case "\u{FFFF}": out.unicodeScalars.append(contentsOf: ["\u{FFFF}", "\u{FFFF}"])
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    /// The name whose stored spelling is `stored`.
    static func name(_ stored: String) -> String {
        guard stored.utf8.contains(0xEF) else { return stored }
        var out = ""
        var escaped = false
        for scalar in stored.unicodeScalars {
            if escaped {
                out.unicodeScalars.append(scalar == "0" ? "\u{0}" : scalar)
                escaped = false
            } else if scalar == "\u{FFFF}" {
                escaped = true
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }
}
