/// One allowed origin of a site: exact (`https://shop.example`, `http://localhost:8080`) or a
/// wildcard over subdomains (`https://*.example.com`, or `*.example.com` for http and https).
/// A wildcard does not match the domain itself: list `https://example.com` too if its pages
/// send events. Origins compare case-insensitively, with the scheme's default port implied.
public struct OriginRule: Sendable, Equatable, CustomStringConvertible {
    public let scheme: String?
    public let host: String
    public let port: Int?
    public let wildcard: Bool

    /// Parses a rule; nil with a reason when it is not an origin or a wildcard of one.
    public static func parse(_ text: String) -> Result<OriginRule, OriginRuleError> {
        let lower = text.lowercased()
        var rest = Substring(lower)
        var scheme: String?
        if let r = rest.firstRange(of: "://") {
            scheme = String(rest[..<r.lowerBound])
            guard scheme == "http" || scheme == "https" else { return .failure(.init(text, "the scheme must be http or https")) }
            rest = rest[r.upperBound...]
        }
        let wildcard = rest.hasPrefix("*.")
        if wildcard { rest = rest.dropFirst(2) }
        if scheme == nil && !wildcard { return .failure(.init(text, "an exact origin needs its scheme, as in https://shop.example")) }
        var port: Int?
        // An IPv6 literal is bracketed; a port may follow the bracket.
        let hostEnd = rest.hasPrefix("[") ? rest.firstIndex(of: "]").map { rest.index(after: $0) } : rest.startIndex
        if let hostEnd, let colon = rest[hostEnd...].lastIndex(of: ":") {
            guard let p = Int(rest[rest.index(after: colon)...]), (1...65535).contains(p) else {
                return .failure(.init(text, "the port must be a number from 1 to 65535"))
            }
            port = p
            rest = rest[..<colon]
        }
        let allowed = Set(rest.hasPrefix("[") ? "0123456789abcdef:.[]" : "abcdefghijklmnopqrstuvwxyz0123456789-.")
        guard !rest.isEmpty, rest.allSatisfy({ allowed.contains($0) }), !rest.hasPrefix("."), !rest.hasSuffix("."),
              !rest.hasPrefix("[") || (rest.hasSuffix("]") && !wildcard) else {
            return .failure(.init(text, "an origin is scheme://host[:port] with no path, as in https://shop.example"))
        }
        if let scheme, port == Self.defaultPort(scheme) { port = nil }
        return .success(OriginRule(scheme: scheme, host: String(rest), port: port, wildcard: wildcard))
    }

    static func defaultPort(_ scheme: String) -> Int { scheme == "https" ? 443 : 80 }

    /// Whether an `Origin` header value matches.
    public func matches(_ origin: String) -> Bool {
        guard case .success(let o) = Self.parse(origin), !o.wildcard, let s = o.scheme else { return false }
        if let scheme, scheme != s { return false }
        if scheme == nil && !(s == "http" || s == "https") { return false }
        guard (o.port ?? Self.defaultPort(s)) == (port ?? Self.defaultPort(s)) else { return false }
        return wildcard ? o.host.hasSuffix("." + host) : o.host == host
    }

    public var description: String {
        (scheme.map { $0 + "://" } ?? "") + (wildcard ? "*." : "") + host + (port.map { ":\($0)" } ?? "")
    }
}

public struct OriginRuleError: Error, Sendable, Equatable, CustomStringConvertible {
    public let text: String
    public let reason: String
    init(_ text: String, _ reason: String) {
        self.text = text
        self.reason = reason
    }
    public var description: String { "origin \"\(text)\": \(reason)" }
}
