import TallyCore

/// The write keys a wire sender presented in AUTH frames: for the rest of a TCP connection, or
/// of a UDP datagram. One key per site (a later key for the site replaces the earlier one), at
/// most ``capacity`` sites, so a connection cannot grow its keys without bound.
///
/// Keys are kept as their hashes and the site they were found in; each EVENTS frame is checked
/// against the rules in force when it arrives (``SiteRules/checkWire(siteID:keys:)``), so a
/// revoked key stops working on connections that presented it before.
public struct WireKeys: Sendable {
    public static let capacity = 16
    private var held: [(site: ExactString, digest: [UInt8])] = []

    public init() {}

    public enum Presented: Sendable, Equatable {
        /// The key is a write key of `site`; `keyID` names it in AUTH_OK.
        case accepted(site: String, keyID: String)
        /// No registered site has this write key (wrong, revoked, or a read key).
        case unknown
        /// The key is good, but the connection holds keys for ``capacity`` other sites.
        case tooManySites
    }

    /// Looks `key` up among every registered site's write keys and, when found, holds it for
    /// its site. Hashes the key once; the comparisons take the same time whichever key matches.
    public mutating func present(_ key: String, rules: SiteRules) -> Presented {
        let digest = AccessKey.digest(key)
        guard let site = rules.writeKeyOwner(digest) else { return .unknown }
        if let i = held.firstIndex(where: { $0.site == site }) {
            held[i].digest = digest
        } else {
            guard held.count < Self.capacity else { return .tooManySites }
            held.append((site, digest))
        }
        return .accepted(site: site.string, keyID: AccessKey.id(ofHash: AccessKey.hex(digest)))
    }

    func digest(for site: ExactString) -> [UInt8]? {
        held.first { $0.site == site }?.digest
    }
}

extension SiteRules {
    /// The registered site whose write keys include `digest`. Runs once per AUTH frame, not per
    /// event, so it walks the sites rather than keeping an index every request would retain.
    func writeKeyOwner(_ digest: [UInt8]) -> ExactString? {
        var owner: ExactString?
        for (id, site) in sites where Self.contains(site.writeKeys, digest) { owner = id }
        return owner
    }

    /// Whether a wire sender holding `keys` may send events of `siteID`. The wire carries no
    /// `Origin`, so origins do not apply: a site with write keys needs one of them among
    /// `keys`; on a `--closed` collector an unregistered site is refused whatever the keys.
    public func checkWire(siteID: String, keys: WireKeys) -> WriteRefusal? {
        let id = ExactString(siteID)
        guard let site = sites[id] else { return closed ? .unregistered(site: siteID) : nil }
        guard site.hasWriteKeys else { return nil }
        guard let d = keys.digest(for: id), Self.contains(site.writeKeys, d) else { return .keyRequired(site: siteID) }
        return nil
    }
}
