import NIOCore
import TallyCore

/// Constants of the Tally wire protocol, version 1 (see proto/PROTOCOL.md).
public enum Wire {
    public static let magic: UInt16 = 0x5459  // "TY"
    public static let version: UInt8 = 1
    public static let headerSize = 8
    /// Largest payload a frame may declare; larger lengths are rejected before any allocation.
    public static let maxPayload = 1 << 20
}

/// Frame types. Values with the high bit set travel from the server to the sender.
public enum FrameType: UInt8, Sendable {
    case events = 0x01
    case ack = 0x81
    case error = 0x82
}

/// Per-event presence flags.
enum EventFlag {
    static let path: UInt8 = 0x01
    static let user: UInt8 = 0x02
    static let timestamp: UInt8 = 0x04
    static let sameType: UInt8 = 0x08
    static let known: UInt8 = 0x0F
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
    public func resolved(receivedAt: Int64) -> [Event] {
        events.map {
            Event(siteID: siteID, eventType: $0.eventType, path: $0.path, userID: $0.userID,
                  timestamp: $0.timestamp ?? receivedAt)
        }
    }
}

/// One event inside an EVENTS frame (the site is the frame's).
public struct WireEvent: Sendable, Equatable {
    public var eventType: String
    public var path: String?
    public var userID: String?
    public var timestamp: Int64?

    public init(eventType: String, path: String? = nil, userID: String? = nil, timestamp: Int64? = nil) {
        self.eventType = eventType
        self.path = path
        self.userID = userID
        self.timestamp = timestamp
    }

    public init(_ event: Event) {
        self.init(eventType: event.eventType, path: event.path, userID: event.userID, timestamp: event.timestamp)
    }
}

/// Any frame the protocol defines.
public enum Frame: Sendable, Equatable {
    case events(EventsFrame)
    case ack(sequence: UInt64)
    case error(code: WireError, message: String)
}
