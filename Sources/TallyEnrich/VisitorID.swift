import Crypto
import Synchronization
import TallyCore

/// The daily salts of cookieless visitor ids. A salt is random, belongs to one UTC day, and is
/// kept for that day and the next (then dropped), so a visitor id cannot be recomputed later
/// from an address and a User-Agent. Collectors that share a PostgreSQL store share the salts
/// through it (``SaltKeeper`` in TallyServer keeps this in step with the store).
public final class VisitorSalts: Sendable {
    private let salts = Mutex<[Int32: SymmetricKey]>([:])

    public init() {}

    /// Sets the salt of `day` (the store's, which wins over one made here).
    public func set(_ salt: [UInt8], for day: UTCDay) {
        salts.withLock { $0[day.number] = SymmetricKey(data: salt) }
    }

    /// The salt of `day`; made here (random) when the store has not given one yet, so ingest
    /// never waits for the store. The keeper offers it to the store, which keeps the first one.
    public func key(for day: UTCDay) -> SymmetricKey {
        salts.withLock { s in
            if let k = s[day.number] { return k }
            let k = SymmetricKey(size: .bits256)
            s[day.number] = k
            return k
        }
    }

    /// The salt bytes of `day`, if any (to offer to the store).
    public func bytes(for day: UTCDay) -> [UInt8]? {
        salts.withLock { $0[day.number].map { $0.withUnsafeBytes { Array($0) } } }
    }

    /// Forgets the salts of days before `day`.
    public func drop(before day: UTCDay) {
        salts.withLock { s in s = s.filter { $0.key >= day.number } }
    }

    public var days: [Int32] { salts.withLock { $0.keys.sorted() } }
}

/// Anonymous visitor ids: 64 bits of HMAC-SHA256 (swift-crypto). Events with a `user_id` need
/// none: their visitor is the user (counted through the stores' user sets), so the number of
/// visitors is the distinct users plus the distinct anonymous ids, and the two never overlap.
public enum VisitorID {
    /// An anonymous visitor: the day's salt over site, address and User-Agent.
    public static func anonymous(key: SymmetricKey, site: String, address: String, userAgent: String) -> UInt64 {
        var message: [UInt8] = []
        message.reserveCapacity(site.utf8.count + address.utf8.count + userAgent.utf8.count + 3)
        message += site.utf8
        message.append(0)
        message += address.utf8
        message.append(0)
        message += userAgent.utf8
        return id(HMAC<SHA256>.authenticationCode(for: message, using: key))
    }

    private static func id(_ mac: HMAC<SHA256>.MAC) -> UInt64 {
        let v = mac.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
        return v == 0 ? 1 : v  // 0 means "no visitor"
    }
}
