import Synchronization
import TallyCore

/// The registry as ingest and reads consult it: compiled once per change (origins parsed, key
/// hashes decoded), then read by every request. With nothing registered and `--closed` off,
/// ``allOpen`` is true and requests skip every check: the seed API's zero set-up.
public struct SiteRules: Sendable {
    /// A class, so a request's lookup retains one object, not four arrays: every event loop
    /// reads the same rules, and each retain of shared storage is a write to a shared cache line.
    final class Site: Sendable {
        let origins: [OriginRule]
        let writeKeys: [[UInt8]]
        let readKeys: [[UInt8]]
        let rate: Int?
        /// Whether the stored site lists any origin, write key or read key, usable or not: a
        /// stored entry this collector cannot read (edited by hand, or written by a newer
        /// version) must close the site, not leave it as open as an empty list would.
        let listsOrigins: Bool
        let hasWriteKeys: Bool
        let hasReadKeys: Bool

        init(origins: [OriginRule], writeKeys: [[UInt8]], readKeys: [[UInt8]], rate: Int?, listsOrigins: Bool, hasWriteKeys: Bool,
             hasReadKeys: Bool) {
            self.origins = origins
            self.writeKeys = writeKeys
            self.readKeys = readKeys
            self.rate = rate
            self.listsOrigins = listsOrigins
            self.hasWriteKeys = hasWriteKeys
            self.hasReadKeys = hasReadKeys
        }
    }

    /// Events for unregistered sites are refused, and their numbers are not served.
    public let closed: Bool
    public let version: Int64
    let sites: [ExactString: Site]

    public var allOpen: Bool { !closed && sites.isEmpty }
    /// Some registered site has a rate limit of its own.
    public let anyRates: Bool

    /// The site's own rate limit (events per second), if registered with one.
    public func rate(of site: ExactString) -> Int? { sites[site]?.rate }

    public init(_ records: [SiteRecord] = [], closed: Bool = false, version: Int64 = 0) {
        self.closed = closed
        self.version = version
        var sites: [ExactString: Site] = [:]
        for r in records {
            // An entry that does not parse matches nothing; its presence still counts (Site).
            let origins = r.origins.compactMap { try? OriginRule.parse($0).get() }
            func keys(_ kind: SiteKeyRecord.Kind) -> [[UInt8]] {
                r.keys.filter { $0.kind == kind }.compactMap { AccessKey.bytes(hex: $0.hash) }.filter { $0.count == 32 }
            }
            sites[ExactString(r.id)] = Site(origins: origins, writeKeys: keys(.write), readKeys: keys(.read), rate: r.rate,
                                            listsOrigins: !r.origins.isEmpty, hasWriteKeys: r.keys.contains { $0.kind == .write },
                                            hasReadKeys: r.keys.contains { $0.kind == .read })
        }
        self.sites = sites
        anyRates = sites.values.contains { $0.rate != nil }
    }

    public enum WriteRefusal: Sendable, Equatable {
        /// `--closed`, and the site is not registered (403).
        case unregistered(site: String)
        /// A browser's request from a page the site does not list (403).
        case originNotAllowed(site: String, origin: String)
        /// The site has write keys, and the request carries none of them (401).
        case keyRequired(site: String)
    }

    /// Whether a request from `origin` (its `Origin` header) carrying `key` may send events of
    /// `siteID`:
    /// - a valid write key of the site always may, and any other key given may not (401);
    /// - a browser's request (an `Origin`) to a site that lists origins may when its origin is
    ///   listed (403 otherwise); to a site that lists none, it may unless the site has write keys;
    /// - a request without `Origin` may unless the site has write keys (401).
    public func checkWrite(siteID: String, origin: String?, key: inout PresentedKey) -> WriteRefusal? {
        guard let site = sites[ExactString(siteID)] else { return closed ? .unregistered(site: siteID) : nil }
        // A key given must be one of the site's write keys, needed or not: a revoked key stops
        // working even when the site no longer needs one, and a sender learns it has the wrong key.
        if let d = key.digest() { return Self.contains(site.writeKeys, d) ? nil : .keyRequired(site: siteID) }
        if let origin, site.listsOrigins {
            return site.origins.contains { $0.matches(origin) } ? nil : .originNotAllowed(site: siteID, origin: origin)
        }
        return site.hasWriteKeys ? .keyRequired(site: siteID) : nil
    }

    /// Whether `siteID`'s numbers may be read with `key`: an unregistered site's when not
    /// `--closed`; a registered site's without read keys; otherwise with one of its read keys.
    public func mayRead(siteID: String, key: inout PresentedKey) -> Bool {
        // A key given is hashed whatever the site, so the time taken does not tell a
        // registered site from another.
        let d = key.digest()
        guard let site = sites[ExactString(siteID)] else { return !closed }
        if !site.hasReadKeys { return true }
        guard let d else { return false }
        return Self.contains(site.readKeys, d)
    }

    /// Compares with every key, so the time taken does not say which key (or byte) differed.
    static func contains(_ keys: [[UInt8]], _ digest: [UInt8]) -> Bool {
        var found = false
        for k in keys { found = AccessKey.equal(k, digest) || found }
        return found
    }
}

/// The key a request presented (`Authorization: Bearer`, or `?key=` on reads), hashed at most
/// once and only when a rule needs it.
public struct PresentedKey: Sendable {
    let text: Substring?
    /// The header it came from: a connection's requests repeat it, and a match reuses the hash.
    public let authorization: String?
    private var cached: [UInt8]??

    public init(authorization: String?, query: Substring? = nil) {
        self.authorization = authorization
        text = AccessKey.bearer(authorization) ?? query.flatMap { $0.isEmpty ? nil : $0 }
    }



    public var isPresent: Bool { text != nil }
    /// Its hash was computed (and is kept with it).
    var isHashed: Bool { cached != nil }

    mutating func digest() -> [UInt8]? {
        if let cached { return cached }
        let d = text.map { AccessKey.digest($0) }
        cached = .some(d)
        return d
    }
}

/// A connection's recent keys with their hashes: a sender that writes to several sites sends
/// each site's key in turn, and hashing one costs about as much as the rest of the checks.
public struct PresentedKeys: Sendable {
    static let capacity = 16
    private var recent: [PresentedKey] = []

    public init() {}

    /// The key of `authorization`, with its hash if it was kept, else a new one.
    public mutating func take(_ authorization: String?) -> PresentedKey {
        if let i = recent.firstIndex(where: { $0.authorization.utf8Equals(authorization) }) { return recent.remove(at: i) }
        return PresentedKey(authorization: authorization)
    }

    /// Keeps `key` as the most recent, dropping the oldest past ``capacity``.
    public mutating func keep(_ key: PresentedKey) {
        guard key.authorization != nil else { return }
        if recent.count == Self.capacity { recent.removeFirst() }
        recent.append(key)
    }
}

/// The rules in force, replaced whole when the registry changes; requests read a snapshot.
public final class SiteRulesSource: Sendable {
    private let current: Mutex<SiteRules>
    /// ``SiteRules/writeKeyOwners`` of the rules in force: kept here rather than in the rules,
    /// so that the snapshot every request takes retains nothing more.
    private let owners: Mutex<[[UInt8]: ExactString]>

    public init(_ rules: SiteRules = SiteRules()) {
        current = Mutex(rules)
        owners = Mutex(rules.writeKeyOwners)
    }

    public var rules: SiteRules { current.withLock { $0 } }

    public func replace(_ rules: SiteRules) {
        let index = rules.writeKeyOwners
        current.withLock { $0 = rules }
        owners.withLock { $0 = index }
    }

    /// The registered site one of whose write keys has this SHA-256. One hash lookup (whose
    /// timing can tell only about hashes of keys, which reveal nothing of the keys).
    public func writeKeyOwner(_ digest: [UInt8]) -> ExactString? {
        owners.withLock { $0[digest] }
    }
}
