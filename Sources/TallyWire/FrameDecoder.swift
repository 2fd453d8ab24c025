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
    /// may go on with the next one.
    public static func decode(_ buffer: inout ByteBuffer) throws(FrameRejection) -> Step {
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
        guard version == Wire.version else {
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
        guard let frameType = FrameType(rawValue: type) else {
            throw FrameRejection(.unknownFrameType, "unknown frame type 0x\(String(type, radix: 16))")
        }
        let frame: Frame
        switch frameType {
        case .events: frame = .events(try decodeEvents(&payload))
        case .ack:
            guard let seq = payload.readInteger(as: UInt64.self) else { throw FrameRejection(.truncated) }
            frame = .ack(sequence: seq)
        case .error:
            guard let code = payload.readInteger(as: UInt16.self) else { throw FrameRejection(.truncated) }
            let message = try readString(&payload) ?? ""
            frame = .error(code: WireError(rawValue: code) ?? .invalidEvent, message: message)
        }
        guard payload.readableBytes == 0 else {
            throw FrameRejection(.trailingBytes, "\(payload.readableBytes) bytes after the last field")
        }
        return .frame(frame)
    }

    static func decodeEvents(_ p: inout ByteBuffer) throws(FrameRejection) -> EventsFrame {
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
        for index in 0..<Int(count) {
            guard let ef = p.readInteger(as: UInt8.self) else { throw FrameRejection(.truncated) }
            guard ef & ~EventFlag.known == 0 else {
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
            let candidate = Event(siteID: site, eventType: type, path: path, userID: user,
                                  timestamp: ts ?? EventLimits.minTimestamp)
            let problems = candidate.problems()
            if !problems.isEmpty {
                throw FrameRejection(.invalidEvent, "event \(index): " + problems.joined(separator: "; "))
            }
            events.append(WireEvent(eventType: type, path: path.flatMap { $0.isEmpty ? nil : $0 },
                                    userID: user.flatMap { $0.isEmpty ? nil : $0 }, timestamp: ts))
        }
        return EventsFrame(sequence: seq, ackRequested: flags & FrameFlag.ackRequested != 0,
                           siteID: site, events: events)
    }

    /// Reads a u16-length-prefixed UTF-8 string; nil when the buffer ends first.
    static func readString(_ p: inout ByteBuffer) throws(FrameRejection) -> String? {
        guard let len = p.getInteger(at: p.readerIndex, as: UInt16.self),
              p.readableBytes >= 2 + Int(len) else { return nil }
        p.moveReaderIndex(forwardBy: 2)
        let s: String? = p.withUnsafeReadableBytes { raw in
            String(validating: UnsafeRawBufferPointer(rebasing: raw[0..<Int(len)]), as: UTF8.self)
        }
        guard let s else { throw FrameRejection(.invalidUTF8) }
        p.moveReaderIndex(forwardBy: Int(len))
        return s
    }
}
