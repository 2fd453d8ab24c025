import NIOCore
import TallyCore

/// Encodes frames into a ByteBuffer, mirroring ``FrameDecoder``.
public enum FrameEncoder {
    /// Writes an EVENTS frame. Consecutive events of the same type use the repeat flag.
    public static func writeEvents(_ frame: EventsFrame, into buffer: inout ByteBuffer) {
        // Every flusher batch and client send goes through here: size the frame once and
        // write it with plain stores instead of a checked ByteBuffer call per field.
        var bound = 8 + 1 + 8 + 2 + frame.siteID.utf8.count + 2
        var version = Wire.version
        for e in frame.events {
            bound += encodedSize(e)
            if e.hasExtra { version = Wire.version2 }
        }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: bound) { out in
            var w = RawWriter(base: out.baseAddress!)
            w.integer(Wire.magic)
            w.integer(version)
            w.integer(FrameType.events.rawValue)
            let lengthAt = w.offset
            w.integer(UInt32(0))
            w.integer(frame.ackRequested ? FrameFlag.ackRequested : 0)
            w.integer(frame.sequence)
            w.string(frame.siteID)
            w.integer(UInt16(truncatingIfNeeded: frame.events.count))
            var previousType: String?
            for e in frame.events {
                var flags: UInt8 = 0
                if e.path != nil { flags |= EventFlag.path }
                if e.userID != nil { flags |= EventFlag.user }
                if e.timestamp != nil { flags |= EventFlag.timestamp }
                if e.hasAttribution { flags |= EventFlag.attribution }
                if e.hasClient { flags |= EventFlag.client }
                if e.visit != nil { flags |= EventFlag.visit }
                // Byte-wise: String == is Unicode-canonical, and the receiver must get the same bytes.
                let same = previousType.map { $0.utf8Equals(e.eventType) } ?? false
                if same { flags |= EventFlag.sameType }
                w.integer(flags)
                if !same { w.string(e.eventType) }
                if let p = e.path { w.string(p) }
                if let u = e.userID { w.string(u) }
                if let t = e.timestamp { w.integer(t) }
                if e.hasAttribution {
                    for s in [e.referrer, e.utmSource, e.utmMedium, e.utmCampaign] { w.string(s ?? "") }
                }
                if e.hasClient {
                    w.string(e.clientAddress ?? "")
                    w.string(e.userAgent ?? "")
                }
                if let v = e.visit {
                    w.integer(v.visitor)
                    w.integer(v.device?.rawValue ?? 0)
                    w.integer(UInt8(v.isBot ? 1 : 0))
                    w.string(v.browser ?? "")
                    w.string(v.os ?? "")
                }
                previousType = e.eventType
            }
            w.set(UInt32(w.offset - lengthAt - 4), at: lengthAt)
            return w.offset
        }
    }

    /// Big-endian stores into memory the caller sized.
    struct RawWriter {
        let base: UnsafeMutableRawPointer
        var offset = 0

        init(base: UnsafeMutableRawPointer) { self.base = base }

        mutating func integer<T: FixedWidthInteger>(_ v: T) {
            base.storeBytes(of: v.bigEndian, toByteOffset: offset, as: T.self)
            offset += MemoryLayout<T>.size
        }

        func set<T: FixedWidthInteger>(_ v: T, at index: Int) {
            base.storeBytes(of: v.bigEndian, toByteOffset: index, as: T.self)
        }

        /// A u16 length and the UTF-8 bytes.
        mutating func string(_ s: String) {
            var s = s
            s.withUTF8 { b in
                integer(UInt16(truncatingIfNeeded: b.count))
                if b.count > 0 { (base + offset).copyMemory(from: b.baseAddress!, byteCount: b.count) }
                offset += b.count
            }
        }
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
            let w = WireEvent(e)
            let size = encodedSize(w)
            if let last = out.last, last.siteID == e.siteID, last.events.count < cap, bytes + size <= Wire.maxPayload {
                out[out.count - 1].events.append(w)
                bytes += size
            } else {
                out.append(EventsFrame(siteID: e.siteID, events: [w]))
                bytes = 1 + 8 + 2 + e.siteID.utf8.count + 2 + size
            }
        }
        return out
    }

    /// Upper bound of one event's bytes in a frame (its type counted even when repeated).
    static func encodedSize(_ e: WireEvent) -> Int {
        func s(_ v: String?) -> Int { 2 + (v?.utf8.count ?? 0) }
        var n = 1 + 2 + e.eventType.utf8.count + (e.path.map { 2 + $0.utf8.count } ?? 0)
            + (e.userID.map { 2 + $0.utf8.count } ?? 0) + 8
        if e.hasAttribution { n += s(e.referrer) + s(e.utmSource) + s(e.utmMedium) + s(e.utmCampaign) }
        if e.hasClient { n += s(e.clientAddress) + s(e.userAgent) }
        if let v = e.visit { n += 8 + 1 + 1 + s(v.browser) + s(v.os) }
        return n
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
