import Foundation
import TallyCore

/// What one site should show in `/stats` (all time) given the events the server accepted.
public struct SiteTally: Sendable, Equatable {
    public var views: Int64 = 0
    public var users: Set<String> = []
    public var pathViews: [String: Int64] = [:]
    public init() {}
}

/// Accepted events, summed per site, to compare against `/stats` after a run.
public struct Ledger: Sendable {
    public var sites: [String: SiteTally] = [:]
    public var events: Int = 0

    public init() {}

    public mutating func add(_ e: Event) {
        events += 1
        // In place: copying the tally out and back would copy its sets on every event.
        if let u = e.userID, !u.isEmpty { sites[e.siteID, default: SiteTally()].users.insert(u) }
        if e.isPageView {
            sites[e.siteID, default: SiteTally()].views += 1
            if let p = e.path { sites[e.siteID, default: SiteTally()].pathViews[p, default: 0] += 1 }
        } else if sites[e.siteID] == nil {
            sites[e.siteID] = SiteTally()
        }
    }

    public mutating func merge(_ other: Ledger) {
        events += other.events
        for (site, o) in other.sites {
            sites[site, default: SiteTally()].views += o.views
            sites[site, default: SiteTally()].users.formUnion(o.users)
            for (p, v) in o.pathViews { sites[site, default: SiteTally()].pathViews[p, default: 0] += v }
        }
    }
}

/// One `/stats` answer.
public struct StatsAnswer: Sendable, Equatable, Decodable {
    public struct Path: Sendable, Equatable, Decodable {
        public var path: String
        public var views: Int64
    }
    public var site_id: String
    public var total_views: Int64
    public var unique_users: Int64
    public var top_paths: [Path]

    public init(site_id: String, total_views: Int64, unique_users: Int64, top_paths: [Path]) {
        self.site_id = site_id
        self.total_views = total_views
        self.unique_users = unique_users
        self.top_paths = top_paths
    }
}

public enum Verification {
    /// Differences between what was accepted and what the server reports; empty when exact.
    /// `limit` is how many top paths the answer holds.
    public static func compare(_ expected: SiteTally, _ actual: StatsAnswer, limit: Int) -> [String] {
        var problems: [String] = []
        if actual.total_views != expected.views {
            problems.append("\(actual.site_id): total_views \(actual.total_views), expected \(expected.views)")
        }
        if actual.unique_users != Int64(expected.users.count) {
            problems.append("\(actual.site_id): unique_users \(actual.unique_users), expected \(expected.users.count)")
        }
        let want = expected.pathViews.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit)
        let got = actual.top_paths.map { ($0.path, $0.views) }
        if want.count != got.count || zip(want, got).contains(where: { $0.key != $1.0 || $0.value != $1.1 }) {
            let firstDiff = zip(want, got).first { $0.key != $1.0 || $0.value != $1.1 }
            let detail = firstDiff.map { "first difference: expected \($0.0.key)=\($0.0.value), got \($0.1.0)=\($0.1.1)" }
                ?? "expected \(want.count) paths, got \(got.count)"
            problems.append("\(actual.site_id): top_paths differ (\(detail))")
        }
        return problems
    }
}
