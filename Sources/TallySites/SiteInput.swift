import TallyCore

/// What a site may be registered with, checked once for every way in (the CLI and the admin
/// API): each check returns the problems found, all of them, in words.
public enum SiteInput {
    /// Both stores hold it (PostgreSQL as `integer`).
    public static let maxRate = 1_000_000_000

    public static func idProblems(_ id: String) -> [String] {
        id.isEmpty || id.utf8.count > EventLimits.maxSiteIDBytes ? ["a site id is 1 to \(EventLimits.maxSiteIDBytes) bytes"] : []
    }

    /// The origins in their normal spelling, or every bad one named.
    public static func origins(_ texts: [String]) -> Result<[String], SiteInputError> {
        var good: [String] = [], bad: [String] = []
        for t in texts {
            switch OriginRule.parse(t) {
            case .success(let rule): good.append(rule.description)
            case .failure(let e): bad.append(e.description)
            }
        }
        return bad.isEmpty ? .success(good) : .failure(SiteInputError(problems: bad))
    }

    public static func rateProblems(_ rate: Int) -> [String] {
        (1...maxRate).contains(rate) ? [] : ["rate must be from 1 to \(maxRate) events per second"]
    }

    public static func retentionProblems(_ days: Int) -> [String] {
        (1...SiteRecord.maxRetentionDays).contains(days) ? [] : ["raw_retention_days must be from 1 to \(SiteRecord.maxRetentionDays)"]
    }
}

public struct SiteInputError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [String]
    public var description: String { problems.joined(separator: "; ") }
}

/// A registered site as JSON (the CLI's `--json` and the admin API): never a key, only key ids.
public enum SiteJSON {
    public static func render(_ s: SiteRecord) -> String {
        let keys = s.keys.map { "{\"id\":\(JSONText.quote($0.id)),\"kind\":\"\($0.kind.rawValue)\",\"created_at\":\(JSONText.quote(Timestamp.format($0.createdAt)))}" }
        return "{\"id\":\(JSONText.quote(s.id)),\"origins\":[\(s.origins.map(JSONText.quote).joined(separator: ","))],"
            + "\"rate\":\(s.rate.map(String.init) ?? "null"),\"raw_retention_days\":\(s.rawRetentionDays.map(String.init) ?? "null"),\"keys\":[\(keys.joined(separator: ","))],"
            + "\"created_at\":\(JSONText.quote(Timestamp.format(s.createdAt))),\"updated_at\":\(JSONText.quote(Timestamp.format(s.updatedAt)))}"
    }
}
