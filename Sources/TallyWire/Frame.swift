import NIOCore
import TallyCore

/// Constants of the Tally wire protocol (see proto/PROTOCOL.md).
public enum Wire {
    public static let magic: UInt16 = 0x5459  // "TY"
    /// The seed's fields. Frames that need nothing more are written as version 1, so they stay
    /// readable by version-1 servers.
    public static let version: UInt8 = 1
    /// Adds attribution (referrer, UTM) and client facts (address, User-Agent) per event.
    public static let version2: UInt8 = 2
    /// Client facts: an IPv4 or IPv6 address in text, and a User-Agent.
    public static let maxClientAddressBytes = 64
    public static let maxUserAgentBytes = 1024
    public static let headerSize = 8
    /// Largest payload a frame may declare; larger lengths are rejected before any allocation.
    public static let maxPayload = 1 << 20
}

/// Frame types. Values with the high bit set travel from the server to the sender.
public enum FrameType: UInt8, Sendable {
    case events = 0x01
    /// Version 2: a site's write key, for the rest of the connection (TCP) or datagram (UDP).
    case auth = 0x02
    case ack = 0x81
    case error = 0x82
    /// Version 2: the server's answer to AUTH, naming the key's site and key id.
    case authOK = 0x83

    /// The version that brought the type; older frames may not carry it.
    var since: UInt8 {
        switch self {
        case .events, .ack, .error: Wire.version
        case .auth, .authOK: Wire.version2
        }
    }
}

/// Per-event presence flags.
enum EventFlag {
    static let path: UInt8 = 0x01
    static let user: UInt8 = 0x02
    static let timestamp: UInt8 = 0x04
    static let sameType: UInt8 = 0x08
    /// Version 2: referrer, utm_source, utm_medium, utm_campaign (empty = absent).
    static let attribution: UInt8 = 0x10
    /// Version 2: the client's address and User-Agent, for the visitor id and device; never stored.
    static let client: UInt8 = 0x20
    /// Version 2, spool files only: what the server derived (visitor, device, bot, browser, os).
    static let visit: UInt8 = 0x40

    static func known(version: UInt8, trusted: Bool) -> UInt8 {
        version == Wire.version ? 0x0F : trusted ? 0x7F : 0x3F
    }
}

/// Frame-level flags of an EVENTS frame.
public enum FrameFlag {
    /// The sender wants an ACK once these events are durable (TCP only).
    public static let ackRequested: UInt8 = 0x01
    static let known: UInt8 = 0x01
}

/// A decoded EVENTS frame: one site, one or more events. Events without a timestamp carry
/// `nil` until the receiver stamps them.
public struct EventsFrame: Sendable, Equatable {
    public var sequence: UInt64
    public var ackRequested: Bool
    public var siteID: String
    public var events: [WireEvent]

    public init(sequence: UInt64 = 0, ackRequested: Bool = false, siteID: String, events: [WireEvent]) {
        self.sequence = sequence
        self.ackRequested = ackRequested
        self.siteID = siteID
        self.events = events
    }

    /// The events as ``Event`` values, stamping those without a timestamp with `receivedAt`.
    /// Client facts are not part of an ``Event``: ingest reads them from ``events``.
    public func resolved(receivedAt: Int64) -> [Event] {
        events.map {
            guard $0.hasExtra else {
                return Event(siteID: siteID, eventType: $0.eventType, path: $0.path, userID: $0.userID,
                             timestamp: $0.timestamp ?? receivedAt)
            }
            return Event(siteID: siteID, eventType: $0.eventType, path: $0.path, userID: $0.userID,
                         timestamp: $0.timestamp ?? receivedAt, referrer: $0.referrer, utmSource: $0.utmSource,
                         utmMedium: $0.utmMedium, utmCampaign: $0.utmCampaign, visit: $0.visit ?? Visit())
        }
    }
}

/// One event inside an EVENTS frame (the site is the frame's).
public struct WireEvent: Sendable, Equatable {
    public var eventType: String
    public var path: String?
    public var userID: String?
    public var timestamp: Int64?
    /// Version-2 fields, behind one reference: frames of plain events (nearly all spool and
    /// edge traffic) copy small values.
    private var extra: WireExtra?

    public init(eventType: String, path: String? = nil, userID: String? = nil, timestamp: Int64? = nil,
                referrer: String? = nil, utmSource: String? = nil, utmMedium: String? = nil, utmCampaign: String? = nil,
                clientAddress: String? = nil, userAgent: String? = nil, visit: Visit? = nil) {
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
        let f = WireExtra.Fields(referrer: referrer, utmSource: utmSource, utmMedium: utmMedium, utmCampaign: utmCampaign,
                                 clientAddress: clientAddress, userAgent: userAgent, visit: visit)
        extra = f.isEmpty ? nil : WireExtra(f)
    }

    /// A stored event as the spool writes it (with what the server derived, if anything).
    public init(_ event: Event) {
        self.eventType = event.eventType
        self.path = event.path
        self.userID = event.userID
        self.timestamp = event.timestamp
        extra = event.extraFields.map(WireExtra.init)
    }

    public var referrer: String? { get { extra?.fields.referrer } set { update { $0.referrer = newValue } } }
    public var utmSource: String? { get { extra?.fields.utmSource } set { update { $0.utmSource = newValue } } }
    public var utmMedium: String? { get { extra?.fields.utmMedium } set { update { $0.utmMedium = newValue } } }
    public var utmCampaign: String? { get { extra?.fields.utmCampaign } set { update { $0.utmCampaign = newValue } } }
    /// The visitor's address as text, when an edge proxy forwards it.
    public var clientAddress: String? { get { extra?.fields.clientAddress } set { update { $0.clientAddress = newValue } } }
    public var userAgent: String? { get { extra?.fields.userAgent } set { update { $0.userAgent = newValue } } }
    /// Spool files only: what the server derived.
    public var visit: Visit? { get { extra?.fields.visit } set { update { $0.visit = newValue } } }

    /// Carries a version-2 field: something the server derives from (a referrer, client
    /// facts), or what it derived (spool). Frames with such events are written as version 2.
    public var hasExtra: Bool { extra != nil }
    var extraFields: WireExtra.Fields? { extra?.fields }
    var frameTimestamp: Int64? { timestamp }

    private mutating func update(_ change: (inout WireExtra.Fields) -> Void) {
        var f = extra?.fields ?? WireExtra.Fields()
        change(&f)
        extra = f.isEmpty ? nil : WireExtra(f)
    }

    public static func == (a: WireEvent, b: WireEvent) -> Bool {
        a.eventType == b.eventType && a.path == b.path && a.userID == b.userID && a.timestamp == b.timestamp
            && a.referrer == b.referrer && a.utmSource == b.utmSource && a.utmMedium == b.utmMedium
            && a.utmCampaign == b.utmCampaign && a.clientAddress == b.clientAddress && a.userAgent == b.userAgent
            && a.visit == b.visit
    }
}

/// Immutable; a change makes a new one.
final class WireExtra: Sendable {
    struct Fields: Sendable {
        var referrer: String?
        var utmSource: String?
        var utmMedium: String?
        var utmCampaign: String?
        var clientAddress: String?
        var userAgent: String?
        var visit: Visit?

        var hasAttribution: Bool { referrer != nil || utmSource != nil || utmMedium != nil || utmCampaign != nil }
        var hasClient: Bool { clientAddress != nil || userAgent != nil }
        var isEmpty: Bool { !hasAttribution && clientAddress == nil && userAgent == nil && visit == nil }
    }

    let fields: Fields
    init(_ fields: Fields) { self.fields = fields }
}

/// What the encoder reads of an event: a ``WireEvent`` a sender built, or an ``Event`` the
/// spool writes as it is (its timestamp always set, no client facts, what the server derived).
protocol FrameEvent {
    var eventType: String { get }
    var path: String? { get }
    var userID: String? { get }
    var frameTimestamp: Int64? { get }
    /// Cheap: whether ``extraFields`` has anything (most events have nothing).
    var hasExtra: Bool { get }
    var extraFields: WireExtra.Fields? { get }
}

extension WireEvent: FrameEvent {}

extension Event: FrameEvent {
    var frameTimestamp: Int64? { timestamp }
    var extraFields: WireExtra.Fields? {
        guard hasExtra else { return nil }
        let visit = self.visit
        let f = WireExtra.Fields(referrer: referrer, utmSource: utmSource, utmMedium: utmMedium, utmCampaign: utmCampaign,
                                 visit: visit.isEmpty ? nil : visit)
        return f.isEmpty ? nil : f
    }
}

/// Any frame the protocol defines.
public enum Frame: Sendable, Equatable {
    case events(EventsFrame)
    case ack(sequence: UInt64)
    case error(code: WireError, message: String)
    /// A write key as the sender holds it; the server looks it up (the codec does not judge it).
    case auth(key: String)
    case authOK(siteID: String, keyID: String)
}
