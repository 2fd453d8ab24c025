import NIOCore
import TallyCore

/// Encodes frames into a ByteBuffer, mirroring ``FrameDecoder``.
public enum FrameEncoder {
    /// Writes an EVENTS frame. Consecutive events of the same type use the repeat flag.
    public static func writeEvents(_ frame: EventsFrame, into buffer: inout ByteBuffer) {
        let lengthIndex = writeHeader(.events, into: &buffer)
        let payloadStart = buffer.writerIndex
        buffer.writeInteger(frame.ackRequested ? FrameFlag.ackRequested : 0)
        buffer.writeInteger(frame.sequence)
        writeString(frame.siteID, into: &buffer)
        buffer.writeInteger(UInt16(frame.events.count))
        var previousType: String?
        for e in frame.events {
            var flags: UInt8 = 0
            if e.path != nil { flags |= EventFlag.path }
            if e.userID != nil { flags |= EventFlag.user }
            if e.timestamp != nil { flags |= EventFlag.timestamp }
            // Byte-wise: String == is Unicode-canonical, and the receiver must get the same bytes.
            let same = previousType.map { $0.utf8.elementsEqual(e.eventType.utf8) } ?? false
            if same { flags |= EventFlag.sameType }
            buffer.writeInteger(flags)
            if !same { writeString(e.eventType, into: &buffer) }
            if let p = e.path { writeString(p, into: &buffer) }
            if let u = e.userID { writeString(u, into: &buffer) }
            if let t = e.timestamp { buffer.writeInteger(t) }
            previousType = e.eventType
        }
        buffer.setInteger(UInt32(buffer.writerIndex - payloadStart), at: lengthIndex)
    }

    public static func writeAck(_ sequence: UInt64, into buffer: inout ByteBuffer) {
        let lengthIndex = writeHeader(.ack, into: &buffer)
        buffer.writeInteger(sequence)
        buffer.setInteger(UInt32(8), at: lengthIndex)
    }

    public static func writeError(_ code: WireError, message: String, into buffer: inout ByteBuffer) {
        let lengthIndex = writeHeader(.error, into: &buffer)
        let start = buffer.writerIndex
        buffer.writeInteger(code.rawValue)
        // Messages are ours; cap them so the frame stays small.
        writeString(String(message.utf8.prefix(1024)) ?? code.label, into: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start), at: lengthIndex)
    }

    public static func write(_ frame: Frame, into buffer: inout ByteBuffer) {
        switch frame {
        case .events(let f): writeEvents(f, into: &buffer)
        case .ack(let s): writeAck(s, into: &buffer)
        case .error(let c, let m): writeError(c, message: m, into: &buffer)
        }
    }

    /// Splits events into EVENTS frames of one site each, in order, with at most `maxEvents`
    /// events and at most `Wire.maxPayload` bytes per frame. Every event keeps its timestamp.
    public static func frames(for events: [Event], maxEvents: Int = 1024) -> [EventsFrame] {
        let cap = min(maxEvents, Int(UInt16.max))
        var out: [EventsFrame] = []
        var bytes = 0
        for e in events {
            let size = encodedSize(e)
            if let last = out.last, last.siteID == e.siteID, last.events.count < cap, bytes + size <= Wire.maxPayload {
                out[out.count - 1].events.append(WireEvent(e))
                bytes += size
            } else {
                out.append(EventsFrame(siteID: e.siteID, events: [WireEvent(e)]))
                bytes = 1 + 8 + 2 + e.siteID.utf8.count + 2 + size
            }
        }
        return out
    }

    /// Upper bound of one event's bytes in a frame (its type counted even when repeated).
    static func encodedSize(_ e: Event) -> Int {
        1 + 2 + e.eventType.utf8.count + (e.path.map { 2 + $0.utf8.count } ?? 0)
            + (e.userID.map { 2 + $0.utf8.count } ?? 0) + 8
    }

    private static func writeHeader(_ type: FrameType, into buffer: inout ByteBuffer) -> Int {
        buffer.writeInteger(Wire.magic)
        buffer.writeInteger(Wire.version)
        buffer.writeInteger(type.rawValue)
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt32(0))
        return lengthIndex
    }

    private static func writeString(_ s: String, into buffer: inout ByteBuffer) {
        let lengthIndex = buffer.writerIndex
        buffer.writeInteger(UInt16(0))
        let n = buffer.writeString(s)
        buffer.setInteger(UInt16(truncatingIfNeeded: n), at: lengthIndex)
    }
}
