#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An address range in CIDR notation (`10.0.0.0/8`, `fd00::/8`, or one address).
public struct AddressRange: Sendable, Equatable, CustomStringConvertible {
    let bytes: [UInt8]
    let prefix: Int
    public let description: String

    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = AddressRange.parse(String(parts[0])) else { return nil }
        let bits = address.count * 8
        if parts.count == 2 {
            guard let p = Int(parts[1]), (0...bits).contains(p) else { return nil }
            prefix = p
        } else {
            prefix = bits
        }
        bytes = address
        description = text
    }

    public func contains(_ address: [UInt8]) -> Bool {
        guard address.count == bytes.count else { return false }
        var left = prefix
        for i in 0..<bytes.count where left > 0 {
            let mask: UInt8 = left >= 8 ? 0xFF : ~(0xFF >> UInt8(left))
            if address[i] & mask != bytes[i] & mask { return false }
            left -= 8
        }
        return true
    }

    /// The bytes of an IPv4 (4) or IPv6 (16) address in text; IPv4-mapped IPv6 reads as IPv4.
    public static func parse(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 { return withUnsafeBytes(of: &v4) { Array($0) } }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let b = withUnsafeBytes(of: &v6) { Array($0) }
        if b[0..<10].allSatisfy({ $0 == 0 }) && b[10] == 0xFF && b[11] == 0xFF { return Array(b[12...]) }
        return b
    }
}

/// Which address a request came from: the socket peer, or — when the peer is a trusted proxy —
/// the right-most address of `X-Forwarded-For` that is not itself a trusted proxy (the client
/// as the outermost trusted proxy saw it; addresses left of it are the client's own claims).
public struct ClientAddressRule: Sendable {
    public let trustedProxies: [AddressRange]

    public init(trustedProxies: [AddressRange]) {
        self.trustedProxies = trustedProxies
    }

    /// `forwardedFor` is read only when some proxy is trusted (not on most servers' requests).
    public func address(peer: String?, forwardedFor: @autoclosure () -> String?) -> String? {
        guard let peer else { return nil }
        guard !trustedProxies.isEmpty, let header = forwardedFor(), isTrusted(peer) else { return peer }
        var client = peer
        for part in header.split(separator: ",").reversed() {
            let candidate = String(part.trimmingBlanks())
            guard AddressRange.parse(candidate) != nil else { break }
            client = candidate
            if !isTrusted(candidate) { break }
        }
        return client
    }

    func isTrusted(_ address: String) -> Bool {
        guard let b = AddressRange.parse(address) else { return false }
        return trustedProxies.contains { $0.contains(b) }
    }
}

extension Substring {
    /// Without leading and trailing spaces and tabs (lists in settings, headers and data).
    func trimmingBlanks() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return s
    }
}
