/// The host of a referrer, as Tally stores it: lower-cased, without `www.`, a port or user
/// info; nil when there is none, or when it is the page's own site (a same-site referrer is a
/// direct visit).
public enum Referrer {
    public static func host(_ referrer: String?, pageHost: String? = nil) -> String? {
        guard let referrer, let host = hostPart(referrer) else { return nil }
        if let page = pageHost.flatMap(hostPart), page == host { return nil }
        return host
    }

    /// `scheme://[user@]host[:port][/…]`, or a bare `host[/…]`. On the UTF-8 bytes: it runs
    /// for every browser event, and `Character` iteration costs several times as much.
    static func hostPart(_ s: String) -> String? {
        var b = Array(s.utf8)
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
        for k in lo..<end {
            if b[k] >= UInt8(ascii: "A") && b[k] <= UInt8(ascii: "Z") { b[k] += 32 }
            if isSpace(b[k]) { return nil }
        }
        if end - lo > 4 && b[lo] == UInt8(ascii: "w") && b[lo + 1] == UInt8(ascii: "w") && b[lo + 2] == UInt8(ascii: "w")
            && b[lo + 3] == UInt8(ascii: ".") {
            lo += 4
        }
        guard lo < end else { return nil }
        return String(decoding: b[lo..<end], as: UTF8.self)
    }
}

