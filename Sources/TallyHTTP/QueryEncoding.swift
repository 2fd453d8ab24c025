/// Percent-encoding checks for query strings. Hummingbird's query parser keeps a value whose
/// `%` escape is broken as it was sent (`%zz` stays `%zz`); Tally refuses such a request
/// instead of silently reading something else than the sender meant.
public enum QueryEncoding {
    /// The name of the first parameter (as sent) whose name or value has a `%` not followed by
    /// two hexadecimal digits; nil when every escape is sound.
    public static func firstBadParameter(_ query: Substring) -> String? {
        for pair in query.split(separator: "&", omittingEmptySubsequences: true) where !isSound(pair.utf8) {
            return String(pair.prefix { $0 != "=" })
        }
        return nil
    }

    static func isSound(_ bytes: Substring.UTF8View) -> Bool {
        var i = bytes.startIndex
        while i < bytes.endIndex {
            if bytes[i] == UInt8(ascii: "%") {
                let a = bytes.index(after: i)
                guard a < bytes.endIndex, isHex(bytes[a]) else { return false }
                let b = bytes.index(after: a)
                guard b < bytes.endIndex, isHex(bytes[b]) else { return false }
                i = bytes.index(after: b)
            } else {
                i = bytes.index(after: i)
            }
        }
        return true
    }

    static func isHex(_ c: UInt8) -> Bool {
        (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102)
    }
}
