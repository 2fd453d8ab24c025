/// The host of a referrer, as Tally stores it: lower-cased, without `www.`, a port or user
/// info; nil when there is none, or when it is the page's own site (a same-site referrer is a
/// direct visit).
public enum Referrer {
    public static func host(_ referrer: String?, pageHost: String? = nil) -> String? {
        host(referrer, ownHost: pageHost.flatMap(hostPart))
    }

    /// `ownHost` is the page's host as ``hostPart(_:)`` gives it (worked out once per sender).
    static func host(_ referrer: String?, ownHost: String?) -> String? {
        guard let referrer, let host = hostPart(referrer) else { return nil }
        if let ownHost, ownHost.utf8Equals(host) { return nil }
        return host
    }

    /// `scheme://[user@]host[:port][/…]`, or a bare `host[/…]`. On the UTF-8 bytes in place:
    /// it runs for every browser event, and `Character` iteration or a copy into an array
    /// costs several times as much.
    static func hostPart(_ s: String) -> String? {
        var s = s
        return s.withUTF8 { b -> String? in
            var lo = 0, hi = b.count
            func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x09 }
            while lo < hi && isSpace(b[lo]) { lo += 1 }
            while hi > lo && isSpace(b[hi - 1]) { hi -= 1 }
            // A scheme ends at the first ":" before any "/", when "//" follows it.
            var i = lo
            while i < hi {
                if b[i] == UInt8(ascii: ":") {
                    if i + 2 < hi && b[i + 1] == UInt8(ascii: "/") && b[i + 2] == UInt8(ascii: "/") { lo = i + 3 }
                    break
                }
                if b[i] == UInt8(ascii: "/") {
                    if i == lo && i + 1 < hi && b[i + 1] == UInt8(ascii: "/") { lo = i + 2 }
                    break
                }
                i += 1
            }
            var end = lo
            while end < hi && b[end] != UInt8(ascii: "/") && b[end] != UInt8(ascii: "?") && b[end] != UInt8(ascii: "#") { end += 1 }
            if let at = b[lo..<end].lastIndex(of: UInt8(ascii: "@")) { lo = at + 1 }
            if lo < end && b[lo] == UInt8(ascii: "[") {
                // An IPv6 literal keeps its brackets; only a port after them goes.
                if let close = b[lo..<end].firstIndex(of: UInt8(ascii: "]")) { end = close + 1 }
            } else if let colon = b[lo..<end].firstIndex(of: UInt8(ascii: ":")) {
                end = colon
            }
            while end > lo && b[end - 1] == UInt8(ascii: ".") { end -= 1 }
            func lower(_ c: UInt8) -> UInt8 { c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c + 32 : c }
            if b[lo..<end].contains(where: isSpace) { return nil }
            if end - lo > 4 && lower(b[lo]) == UInt8(ascii: "w") && lower(b[lo + 1]) == UInt8(ascii: "w")
                && lower(b[lo + 2]) == UInt8(ascii: "w") && b[lo + 3] == UInt8(ascii: ".") {
                lo += 4
            }
            guard lo < end else { return nil }
            return String(unsafeUninitializedCapacity: end - lo) { out in
                for k in lo..<end { out[k - lo] = lower(b[k]) }
                return end - lo
            }
        }
    }
}
