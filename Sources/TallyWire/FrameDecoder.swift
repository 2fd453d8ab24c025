import NIOCore
import TallyCore

/// Decodes frames from a buffer. Decoding reads each byte once; the only allocations are the
/// final strings and the event array.
public enum FrameDecoder {
    /// Outcome of looking at the start of a buffer.
    public enum Step: Sendable, Equatable {
        /// Not enough bytes for a whole frame yet (TCP: wait for more; UDP: truncated).
        case needMoreData
        case frame(Frame)
    }

    /// Decodes one frame from the front of `buffer`, consuming it. On `needMoreData` nothing is
    /// consumed. On a rejection whose header was sound, the bad frame is consumed so the caller
    /// may go on with the next one. `trusted`: the bytes are the server's own spool, which may
    /// carry what the server derived about each event (never accepted from a sender).
    public static func decode(_ buffer: inout ByteBuffer, trusted: Bool = false) throws(FrameRejection) -> Step {
        guard buffer.readableBytes >= Wire.headerSize else {
            // Reject garbage as early as possible instead of waiting for 8 bytes of it.
            if let m0 = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), m0 != UInt8(Wire.magic >> 8) {
                throw FrameRejection(.badMagic)
            }
            return .needMoreData
        }
        let start = buffer.readerIndex
        let magic = buffer.getInteger(at: start, as: UInt16.self)!
        guard magic == Wire.magic else { throw FrameRejection(.badMagic) }
        let version = buffer.getInteger(at: start + 2, as: UInt8.self)!
        guard version == Wire.version || version == Wire.version2 else {
            throw FrameRejection(.unsupportedVersion, "unsupported protocol version \(version)")
        }
        let type = buffer.getInteger(at: start + 3, as: UInt8.self)!
        let length = Int(buffer.getInteger(at: start + 4, as: UInt32.self)!)
        guard length <= Wire.maxPayload else {
            throw FrameRejection(.frameTooLarge, "frame length \(length) exceeds \(Wire.maxPayload)")
        }
        guard buffer.readableBytes >= Wire.headerSize + length else { return .needMoreData }
        var payload = buffer.getSlice(at: start + Wire.headerSize, length: length)!
        buffer.moveReaderIndex(forwardBy: Wire.headerSize + length)
        guard let frameType = FrameType(rawValue: type), frameType.since <= version else {
            throw FrameRejection(.unknownFrameType, "unknown frame type 0x\(String(type, radix: 16)) in a version-\(version) frame")
        }
        let frame: Frame
        switch frameType {
        case .events: frame = .events(try decodeEvents(&payload, version: version, trusted: trusted))
        case .ack:
            guard let seq = payload.readInteger(as: UInt64.self) else { throw FrameRejection(.truncated) }
            frame = .ack(sequence: seq)
        case .error:
            guard let code = payload.readInteger(as: UInt16.self) else { throw FrameRejection(.truncated) }
            let message = try readString(&payload) ?? ""
            frame = .error(code: WireError(rawValue: code) ?? .invalidEvent, message: message)
        case .auth:
            guard let key = try readString(&payload) else { throw FrameRejection(.truncated) }
            frame = .auth(key: key)
        case .authOK:
            guard let site = try readString(&payload), let id = try readString(&payload) else { throw FrameRejection(.truncated) }
            frame = .authOK(siteID: site, keyID: id)
        }
        guard payload.readableBytes == 0 else {
            throw FrameRejection(.trailingBytes, "\(payload.readableBytes) bytes after the last field")
        }
        return .frame(frame)
    }

    static func decodeEvents(_ p: inout ByteBuffer, version: UInt8 = Wire.version, trusted: Bool = false) throws(FrameRejection) -> EventsFrame {
        guard let flags = p.readInteger(as: UInt8.self), let seq = p.readInteger(as: UInt64.self) else {
            throw FrameRejection(.truncated)
        }
        guard flags & ~FrameFlag.known == 0 else {
            throw FrameRejection(.invalidFlags, "unknown frame flags 0x\(String(flags, radix: 16))")
        }
        guard let site = try readString(&p) else { throw FrameRejection(.truncated) }
        guard let count = p.readInteger(as: UInt16.self) else { throw FrameRejection(.truncated) }
        guard count > 0 else { throw FrameRejection(.emptyFrame) }
        // Each event is at least one byte; a count beyond that is a lie we need not allocate for.
        guard Int(count) <= p.readableBytes else { throw FrameRejection(.truncated) }
        var events: [WireEvent] = []
        events.reserveCapacity(Int(count))
        var previousType: String?
        let known = EventFlag.known(version: version, trusted: trusted)
        for index in 0..<Int(count) {
            guard let ef = p.readInteger(as: UInt8.self) else { throw FrameRejection(.truncated) }
            guard ef & ~known == 0 else {
                throw FrameRejection(.invalidFlags, "event \(index): unknown flags 0x\(String(ef, radix: 16))")
            }
            let type: String
            if ef & EventFlag.sameType != 0 {
                guard let prev = previousType else {
                    throw FrameRejection(.missingEventType, "event 0 cannot repeat a previous event_type")
                }
                type = prev
            } else {
                guard let t = try readString(&p) else { throw FrameRejection(.truncated) }
                type = t
            }
            previousType = type
            var path: String?
            var user: String?
            var ts: Int64?
            if ef & EventFlag.path != 0 {
                guard let s = try readString(&p) else { throw FrameRejection(.truncated) }
                path = s
            }
            if ef & EventFlag.user != 0 {
                guard let s = try readString(&p) else { throw FrameRejection(.truncated) }
                user = s
            }
            if ef & EventFlag.timestamp != 0 {
                guard let t = p.readInteger(as: Int64.self) else { throw FrameRejection(.truncated) }
                ts = t
            }
            var e = WireEvent(eventType: type, path: path.flatMap { $0.isEmpty ? nil : $0 },
                              userID: user.flatMap { $0.isEmpty ? nil : $0 }, timestamp: ts)
            if ef & EventFlag.attribution != 0 {
                e.referrer = try optionalString(&p)
                e.utmSource = try optionalString(&p)
                e.utmMedium = try optionalString(&p)
                e.utmCampaign = try optionalString(&p)
            }
            if ef & EventFlag.client != 0 {
                e.clientAddress = try optionalString(&p)
                e.userAgent = try optionalString(&p)
                if (e.clientAddress?.utf8.count ?? 0) > Wire.maxClientAddressBytes {
                    throw FrameRejection(.invalidEvent, "event \(index): client address must be at most \(Wire.maxClientAddressBytes) bytes")
                }
                if (e.userAgent?.utf8.count ?? 0) > Wire.maxUserAgentBytes {
                    throw FrameRejection(.invalidEvent, "event \(index): user agent must be at most \(Wire.maxUserAgentBytes) bytes")
                }
            }
            if ef & EventFlag.visit != 0 {
                guard let visitor = p.readInteger(as: UInt64.self), let device = p.readInteger(as: UInt8.self),
                      let bot = p.readInteger(as: UInt8.self) else { throw FrameRejection(.truncated) }
                let browser = try optionalString(&p), os = try optionalString(&p)
                e.visit = Visit(visitor: visitor, device: Device(rawValue: device), browser: browser, os: os, isBot: bot != 0)
            }
            let candidate = !e.hasExtra
                ? Event(siteID: site, eventType: type, path: path, userID: user, timestamp: ts ?? EventLimits.minTimestamp)
                : Event(siteID: site, eventType: type, path: path, userID: user, timestamp: ts ?? EventLimits.minTimestamp,
                        referrer: e.referrer, utmSource: e.utmSource, utmMedium: e.utmMedium, utmCampaign: e.utmCampaign)
            let problems = candidate.problems()
            if !problems.isEmpty {
                throw FrameRejection(.invalidEvent, "event \(index): " + problems.joined(separator: "; "))
            }
            events.append(e)
        }
        return EventsFrame(sequence: seq, ackRequested: flags & FrameFlag.ackRequested != 0,
                           siteID: site, events: events)
    }

    /// A string field where zero length means absent.
    static func optionalString(_ p: inout ByteBuffer) throws(FrameRejection) -> String? {
        guard let s = try readString(&p) else { throw FrameRejection(.truncated) }
        return s.isEmpty ? nil : s
    }

    /// Reads a u16-length-prefixed UTF-8 string; nil when the buffer ends first.
    static func readString(_ p: inout ByteBuffer) throws(FrameRejection) -> String? {
        guard let len = p.getInteger(at: p.readerIndex, as: UInt16.self),
              p.readableBytes >= 2 + Int(len) else { return nil }
        p.moveReaderIndex(forwardBy: 2)
        let s: String? = p.withUnsafeReadableBytes { raw in
            String(checkedUTF8: UnsafeRawBufferPointer(rebasing: raw[0..<Int(len)]))
        }
        guard let s else { throw FrameRejection(.invalidUTF8) }
        p.moveReaderIndex(forwardBy: Int(len))
        return s
    }
}
