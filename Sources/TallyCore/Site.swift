/// A registered site as the store keeps it: who may send its events (origins, write keys), who
/// may read its numbers (read keys) and how fast it may send. Sites that are not registered
/// keep the seed API's open behaviour unless the server runs `--closed`.
public struct SiteRecord: Sendable, Equatable, Codable {
    public var id: String
    /// Exact origins (`https://shop.example`) and wildcards (`https://*.example.com`,
    /// `*.example.com`); empty: any origin.
    public var origins: [String]
    /// Events per second (with a burst of the same size); nil: no limit of its own.
    public var rate: Int?
    /// Days of raw rows kept besides today, over the server's `--raw-retention-days`; nil:
    /// the server's.
    public var rawRetentionDays: Int?
    /// A hundred years: both stores hold it, and no cut-off day goes far before 1970.
    public static let maxRetentionDays = 36_500
    public var keys: [SiteKeyRecord]
    /// Microseconds since 1970.
    public var createdAt: Int64
    public var updatedAt: Int64

    public init(id: String, origins: [String] = [], rate: Int? = nil, rawRetentionDays: Int? = nil, keys: [SiteKeyRecord] = [],
                createdAt: Int64, updatedAt: Int64) {
        self.id = id
        self.origins = origins
        self.rate = rate
        self.rawRetentionDays = rawRetentionDays
        self.keys = keys
        self.createdAt = createdAt
        self.updatedAt = updatedAt
    }
}

/// A key of a site, stored without the key itself: the SHA-256 of the key (hex) and a short id
/// derived from that hash, which lists and revocations name.
public struct SiteKeyRecord: Sendable, Equatable, Codable {
    public enum Kind: String, Sendable, CaseIterable, Codable {
        case read, write
    }

    public var id: String
    public var kind: Kind
    public var hash: String
    public var createdAt: Int64

    public init(id: String, kind: Kind, hash: String, createdAt: Int64) {
        self.id = id
        self.kind = kind
        self.hash = hash
        self.createdAt = createdAt
    }
}

/// A change to the registry. Every change is one transaction that also advances the
/// registry's version, which running collectors poll to pick the change up.
public enum SiteRegistryChange: Sendable, Equatable {
    case add(SiteRecord)
    /// New origins, rate and/or raw-row retention for a site (nil: unchanged; `.some(nil)`
    /// removes the site's own rate limit or retention).
    case update(id: String, origins: [String]?, rate: Int??, rawRetentionDays: Int?? = nil, at: Int64)
    case remove(id: String)
    case addKey(siteID: String, SiteKeyRecord)
    /// A key named by its id or by the hash of the key itself.
    case revokeKey(siteID: String, idOrHash: String)
}
