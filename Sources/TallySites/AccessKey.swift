import Crypto
import TallyCore

/// A site's access keys: made here, stored only as their SHA-256, compared in constant time.
///
/// A key is `tally_r_` (read) or `tally_w_` (write) and 43 base64url characters (32 bytes from
/// the system's cryptographic generator), so it needs no escaping in a header, a URL or a
/// shell. A key of 256 random bits needs no salt or slow hash: nobody can guess one from its
/// SHA-256. The key id (`k` and 12 hexadecimal digits of the hash) names a key in lists and
/// revocations without revealing it.
public enum AccessKey {
    public static func generate(_ kind: SiteKeyRecord.Kind, at: Int64) -> (key: String, record: SiteKeyRecord) {
        var rng = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &rng) }
        let key = prefix(kind) + base64URL(bytes)
        let digest = hash(key)
        return (key, SiteKeyRecord(id: id(ofHash: digest), kind: kind, hash: digest, createdAt: at))
    }

    static func prefix(_ kind: SiteKeyRecord.Kind) -> String { kind == .read ? "tally_r_" : "tally_w_" }

    /// The stored form of a key: its SHA-256 in lower-case hexadecimal.
    public static func hash(_ key: some StringProtocol) -> String {
        hex(digest(key))
    }

    public static func digest(_ key: some StringProtocol) -> [UInt8] {
        Array(SHA256.hash(data: Array(key.utf8)))
    }

    public static func id(ofHash hash: String) -> String { "k" + hash.prefix(12) }

    /// Equal 32-byte digests, in a time that does not depend on where they differ.
    public static func equal(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        for i in a.indices { diff |= a[i] ^ b[i] }
        return diff == 0
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 15)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    static func bytes(hex: String) -> [UInt8]? {
        let u = Array(hex.utf8)
        guard u.count % 2 == 0 else { return nil }
        func v(_ c: UInt8) -> UInt8? {
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
            default: nil
            }
        }
        var out: [UInt8] = []
        for i in stride(from: 0, to: u.count, by: 2) {
            guard let hi = v(u[i]), let lo = v(u[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)
        var out: [UInt8] = []
        var i = 0
        while i < bytes.count {
            let n = min(3, bytes.count - i)
            var chunk = UInt32(bytes[i]) << 16
            if n > 1 { chunk |= UInt32(bytes[i + 1]) << 8 }
            if n > 2 { chunk |= UInt32(bytes[i + 2]) }
            for k in 0...n { out.append(alphabet[Int(chunk >> (18 - 6 * UInt32(k)) & 63)]) }
            i += 3
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The key of an `Authorization: Bearer <key>` header (scheme case-insensitive); nil for
    /// any other form.
    public static func bearer(_ authorization: String?) -> Substring? {
        guard let a = authorization else { return nil }
        let parts = a.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let key = parts[1].drop { $0 == " " }
        return key.isEmpty ? nil : key
    }
}

/// A token a request must present as `Authorization: Bearer` (the admin API's, the monitoring
/// routes'): kept as its SHA-256 and compared in constant time, as site keys are.
public struct BearerToken: Sendable {
    let digest: [UInt8]

    public init(_ token: String) {
        digest = AccessKey.digest(token)
    }

    public func admits(_ authorization: String?) -> Bool {
        guard let key = AccessKey.bearer(authorization) else { return false }
        return AccessKey.equal(AccessKey.digest(key), digest)
    }
}
