/// The host of a referrer, as Tally stores it: lower-cased, without `www.`, a port or user
/// info; nil when there is none, or when it is the page's own site (a same-site referrer is a
/// direct visit).
public enum Referrer {
    public static func host(_ referrer: String?, pageHost: String? = nil) -> String? {
        guard let referrer, let host = hostPart(referrer) else { return nil }
        if let page = pageHost.flatMap(hostPart), page == host { return nil }
        return host
    }

    /// Where the part after `scheme://` starts, if there is a scheme.
    static func schemeEnd(_ s: Substring) -> Substring.Index? {
        var i = s.startIndex
        while i < s.endIndex, s[i] != "/" {
            if s[i] == ":" {
                let rest = s[s.index(after: i)...]
                return rest.hasPrefix("//") ? rest.index(rest.startIndex, offsetBy: 2) : nil
            }
            i = s.index(after: i)
        }
        return nil
    }

    /// `scheme://[user@]host[:port][/…]`, or a bare `host[/…]`.
    static func hostPart(_ s: String) -> String? {
        var rest = Substring(s.trimmingSpaces())
        if let r = schemeEnd(rest) { rest = rest[r...] } else if rest.hasPrefix("//") { rest = rest.dropFirst(2) }
        if let end = rest.firstIndex(where: { $0 == "/" || $0 == "?" || $0 == "#" }) { rest = rest[..<end] }
        if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
        if rest.hasPrefix("[") {
            // An IPv6 literal keeps its brackets; only a port after them goes.
            if let close = rest.firstIndex(of: "]") { rest = rest[...close] }
        } else if let colon = rest.firstIndex(of: ":") {
            rest = rest[..<colon]
        }
        var host = rest.lowercased()
        while host.hasSuffix(".") { host.removeLast() }
        if host.hasPrefix("www.") { host.removeFirst(4) }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "\t" }) else { return nil }
        return host
    }
}

extension String {
    fileprivate func trimmingSpaces() -> Substring {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
