/// A field as it arrived from a sender, before validation.
public enum RawField: Sendable, Equatable {
    case absent
    case null
    case string(String)
    /// Present but of another JSON type; the payload names that type ("number", "object", ...).
    case wrongType(String)
}

/// The fields of an incoming event, exactly as received. `validate` turns it into an ``Event``
/// or lists every problem at once.
public struct RawEvent: Sendable, Equatable {
    public var siteID: RawField
    public var eventType: RawField
    public var path: RawField
    public var userID: RawField
    public var timestamp: RawField
    public var referrer: RawField
    public var utmSource: RawField
    public var utmMedium: RawField
    public var utmCampaign: RawField

    public init(siteID: RawField = .absent, eventType: RawField = .absent, path: RawField = .absent,
                userID: RawField = .absent, timestamp: RawField = .absent, referrer: RawField = .absent,
                utmSource: RawField = .absent, utmMedium: RawField = .absent, utmCampaign: RawField = .absent) {
        self.siteID = siteID
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
        self.referrer = referrer
        self.utmSource = utmSource
        self.utmMedium = utmMedium
        self.utmCampaign = utmCampaign
    }

    /// Validates every field; `receivedAt` (µs) stands in for a missing timestamp.
    public func validate(receivedAt: Int64) -> Result<Event, ValidationError> {
        var problems: [String] = []
        let site = Self.required("site_id", siteID, max: EventLimits.maxSiteIDBytes, &problems)
        let type = Self.required("event_type", eventType, max: EventLimits.maxEventTypeBytes, &problems)
        let path = Self.optional("path", path, max: EventLimits.maxPathBytes, &problems)
        let user = Self.optional("user_id", userID, max: EventLimits.maxUserIDBytes, &problems)
        var ts = receivedAt
        switch timestamp {
        case .absent, .null:
            break
        case .string(let s):
            if let parsed = Timestamp.parse(s) {
                if parsed < EventLimits.minTimestamp || parsed >= EventLimits.maxTimestamp {
                    problems.append("timestamp must be between 1970-01-01 and 2099-12-31")
                } else {
                    ts = parsed
                }
            } else {
                problems.append("timestamp must be a valid ISO 8601 date string")
            }
        case .wrongType:
            problems.append("timestamp must be a valid ISO 8601 date string")
        }
        let referrer = Self.optional("referrer", referrer, max: EventLimits.maxReferrerBytes, &problems)
        let source = Self.optional("utm_source", utmSource, max: EventLimits.maxUTMBytes, &problems)
        let medium = Self.optional("utm_medium", utmMedium, max: EventLimits.maxUTMBytes, &problems)
        let campaign = Self.optional("utm_campaign", utmCampaign, max: EventLimits.maxUTMBytes, &problems)
        guard problems.isEmpty, let site, let type else { return .failure(ValidationError(problems)) }
        return .success(Event(siteID: site, eventType: type, path: path, userID: user, timestamp: ts, referrer: referrer,
                              utmSource: source, utmMedium: medium, utmCampaign: campaign))
    }

    private static func required(_ name: String, _ field: RawField, max: Int, _ problems: inout [String]) -> String? {
        switch field {
        case .absent, .null:
            problems.append("\(name) is required")
        case .wrongType:
            problems.append("\(name) must be a string")
        case .string(let s):
            if s.isEmpty {
                problems.append("\(name) must be a non-empty string")
            } else if s.utf8.count > max {
                problems.append("\(name) must be at most \(max) bytes")
            } else {
                return s
            }
        }
        return nil
    }

    private static func optional(_ name: String, _ field: RawField, max: Int, _ problems: inout [String]) -> String? {
        switch field {
        case .absent, .null:
            return nil
        case .wrongType:
            problems.append("\(name) must be a string")
        case .string(let s):
            if s.utf8.count > max {
                problems.append("\(name) must be at most \(max) bytes")
            } else {
                // An empty optional field carries no information; store it as absent.
                return s.isEmpty ? nil : s
            }
        }
        return nil
    }
}

/// Every problem found in one event, in field order.
public struct ValidationError: Error, Sendable, Equatable {
    public var problems: [String]
    public init(_ problems: [String]) { self.problems = problems }
}

extension Event {
    /// Checks an event built by a decoder other than JSON (the wire protocol) against the same
    /// rules; returns the problems, empty when valid.
    public func problems() -> [String] {
        // The common case, a valid event, without building the problem list.
        if !siteID.isEmpty, siteID.utf8.count <= EventLimits.maxSiteIDBytes,
           !eventType.isEmpty, eventType.utf8.count <= EventLimits.maxEventTypeBytes,
           (path?.utf8.count ?? 0) <= EventLimits.maxPathBytes, (userID?.utf8.count ?? 0) <= EventLimits.maxUserIDBytes,
           (referrer?.utf8.count ?? 0) <= EventLimits.maxReferrerBytes, (utmSource?.utf8.count ?? 0) <= EventLimits.maxUTMBytes,
           (utmMedium?.utf8.count ?? 0) <= EventLimits.maxUTMBytes, (utmCampaign?.utf8.count ?? 0) <= EventLimits.maxUTMBytes,
           timestamp >= EventLimits.minTimestamp, timestamp < EventLimits.maxTimestamp {
            return []
        }
        func raw(_ s: String?) -> RawField { s.map(RawField.string) ?? .absent }
        let raw = RawEvent(siteID: .string(siteID), eventType: .string(eventType), path: raw(path), userID: raw(userID),
                           referrer: raw(referrer), utmSource: raw(utmSource), utmMedium: raw(utmMedium),
                           utmCampaign: raw(utmCampaign))
        var problems: [String]
        switch raw.validate(receivedAt: 0) {
        case .success: problems = []
        case .failure(let e): problems = e.problems
        }
        if timestamp < EventLimits.minTimestamp || timestamp >= EventLimits.maxTimestamp {
            problems.append("timestamp must be between 1970-01-01 and 2099-12-31")
        }
        return problems
    }
}
