import TallyCore

/// The write keys a wire sender presented in AUTH frames: for the rest of a TCP connection, or
/// of a UDP datagram. One key per site (a later key for the site replaces the earlier one), at
/// most ``capacity`` sites, so a connection cannot grow its keys without bound: a key for one
/// more site is refused (PROTOCOL.md §4.4).
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

    /// Looks `key` up among every registered site's write keys (``SiteRulesSource/writeKeyOwner(_:)``)
    /// and, when found, holds it for its site. Hashes the key once.
    public mutating func present(_ key: String, sites: SiteRulesSource) -> Presented {
        let digest = AccessKey.digest(key)
        guard let site = sites.writeKeyOwner(digest) else { return .unknown }
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
    /// Every registered site's write keys by their hash: the index AUTH frames are looked up
    /// in (``SiteRulesSource`` keeps it beside the rules, off the path of every request).
    var writeKeyOwners: [[UInt8]: ExactString] {
        var owners: [[UInt8]: ExactString] = [:]
        for (id, site) in sites {
            for k in site.writeKeys { owners[k] = id }
        }
        return owners
    }

    /// Whether a wire sender holding `keys` may send events of `siteID`, as HTTP decides for a
    /// request without `Origin` (origins do not apply on the wire):
    /// - a key the connection holds for the site must still be one of its write keys, needed
    ///   or not: a revoked key stops working even after the site's last key is revoked;
    /// - without one, a site with write keys is refused;
    /// - on a `--closed` collector an unregistered site is refused whatever the keys.
    public func checkWire(siteID: String, keys: WireKeys) -> WriteRefusal? {
        let id = ExactString(siteID)
        guard let site = sites[id] else { return closed ? .unregistered(site: siteID) : nil }
        if let d = keys.digest(for: id) { return Self.contains(site.writeKeys, d) ? nil : .keyRequired(site: siteID) }
        return site.hasWriteKeys ? .keyRequired(site: siteID) : nil
    }
}
