import NIOCore
import TallyCore

/// Encodes frames into a ByteBuffer, mirroring ``FrameDecoder``.
public enum FrameEncoder {
    /// Writes an EVENTS frame. Consecutive events of the same type use the repeat flag.
    public static func writeEvents(_ frame: EventsFrame, into buffer: inout ByteBuffer) {
        write(sequence: frame.sequence, ackRequested: frame.ackRequested, siteID: frame.siteID, events: frame.events, into: &buffer)
    }

    /// Writes `events` (the server's own, with what it derived) as EVENTS frames of one site
    /// each, split as ``frames(for:maxEvents:)`` splits them, straight from the events: the
    /// spool writes every accepted event through here, and building wire events first would
    /// copy each one once more.
    public static func writeFrames(for events: [Event], maxEvents: Int = 1024, into buffer: inout ByteBuffer) {
        for run in runs(events, maxEvents: maxEvents) {
            write(sequence: 0, ackRequested: false, siteID: events[run.lowerBound].siteID, events: events[run], into: &buffer)
        }
    }

    /// One encoder for both kinds of events (generic, specialized for each in this module).
    static func write<C: Collection>(sequence: UInt64, ackRequested: Bool, siteID: String, events: C,
                                     into buffer: inout ByteBuffer) where C.Element: FrameEvent {
        // Every flusher batch and client send goes through here: size the frame once and
        // write it with plain stores instead of a checked ByteBuffer call per field.
        var bound = 8 + 1 + 8 + 2 + siteID.utf8.count + 2
        var version = Wire.version
        for e in events {
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
            w.integer(ackRequested ? FrameFlag.ackRequested : 0)
            w.integer(sequence)
            w.string(siteID)
            w.integer(UInt16(truncatingIfNeeded: events.count))
            var previousType: String?
            for e in events {
                let extra = e.hasExtra ? e.extraFields : nil
                var flags: UInt8 = 0
                if e.path != nil { flags |= EventFlag.path }
                if e.userID != nil { flags |= EventFlag.user }
                if e.frameTimestamp != nil { flags |= EventFlag.timestamp }
                if let x = extra {
                    if x.hasAttribution { flags |= EventFlag.attribution }
                    if x.hasClient { flags |= EventFlag.client }
                    if x.visit != nil { flags |= EventFlag.visit }
                }
                // Byte-wise: String == is Unicode-canonical, and the receiver must get the same bytes.
                let same = previousType.map { $0.utf8Equals(e.eventType) } ?? false
                if same { flags |= EventFlag.sameType }
                w.integer(flags)
                if !same { w.string(e.eventType) }
                if let p = e.path { w.string(p) }
                if let u = e.userID { w.string(u) }
                if let t = e.frameTimestamp { w.integer(t) }
                if let x = extra {
                    if x.hasAttribution {
                        for s in [x.referrer, x.utmSource, x.utmMedium, x.utmCampaign] { w.string(s ?? "") }
                    }
                    if x.hasClient {
                        w.string(x.clientAddress ?? "")
                        w.string(x.userAgent ?? "")
                    }
                    if let v = x.visit {
                        w.integer(v.visitor)
                        w.integer(v.device?.rawValue ?? 0)
                        w.integer(UInt8(v.isBot ? 1 : 0))
                        w.string(v.browser ?? "")
                        w.string(v.os ?? "")
                    }
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

    public static func writeAuth(key: String, into buffer: inout ByteBuffer) {
        let lengthIndex = writeHeader(.auth, into: &buffer)
        let start = buffer.writerIndex
        writeString(key, into: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start), at: lengthIndex)
    }

    public static func writeAuthOK(siteID: String, keyID: String, into buffer: inout ByteBuffer) {
        let lengthIndex = writeHeader(.authOK, into: &buffer)
        let start = buffer.writerIndex
        writeString(siteID, into: &buffer)
        writeString(keyID, into: &buffer)
        buffer.setInteger(UInt32(buffer.writerIndex - start), at: lengthIndex)
    }

    public static func write(_ frame: Frame, into buffer: inout ByteBuffer) {
        switch frame {
        case .events(let f): writeEvents(f, into: &buffer)
        case .ack(let s): writeAck(s, into: &buffer)
        case .error(let c, let m): writeError(c, message: m, into: &buffer)
        case .auth(let key): writeAuth(key: key, into: &buffer)
        case .authOK(let site, let id): writeAuthOK(siteID: site, keyID: id, into: &buffer)
        }
    }

    /// Splits events into EVENTS frames of one site each, in order, with at most `maxEvents`
    /// events and at most `Wire.maxPayload` bytes per frame. Every event keeps its timestamp.
    public static func frames(for events: [Event], maxEvents: Int = 1024) -> [EventsFrame] {
        runs(events, maxEvents: maxEvents).map { run in
            EventsFrame(siteID: events[run.lowerBound].siteID, events: events[run].map(WireEvent.init))
        }
    }

    /// The index ranges of the frames ``frames(for:maxEvents:)`` makes.
    static func runs(_ events: [Event], maxEvents: Int) -> [Range<Int>] {
        let cap = min(maxEvents, Int(UInt16.max))
        var out: [Range<Int>] = []
        var start = 0, bytes = 0
        for (i, e) in events.enumerated() {
            let size = encodedSize(e)
            // Byte-wise, as for event types: a canonically equal site id is another site.
            if i > start, events[start].siteID.utf8Equals(e.siteID), i - start < cap, bytes + size <= Wire.maxPayload {
                bytes += size
            } else {
                if i > start { out.append(start..<i) }
                start = i
                bytes = 1 + 8 + 2 + e.siteID.utf8.count + 2 + size
            }
        }
        if start < events.count { out.append(start..<events.count) }
        return out
    }

    /// Upper bound of one event's bytes in a frame (its type counted even when repeated).
    static func encodedSize<E: FrameEvent>(_ e: E) -> Int {
        func s(_ v: String?) -> Int { 2 + (v?.utf8.count ?? 0) }
        var n = 1 + 2 + e.eventType.utf8.count + (e.path.map { 2 + $0.utf8.count } ?? 0)
            + (e.userID.map { 2 + $0.utf8.count } ?? 0) + 8
        guard e.hasExtra, let x = e.extraFields else { return n }
        if x.hasAttribution { n += s(x.referrer) + s(x.utmSource) + s(x.utmMedium) + s(x.utmCampaign) }
        if x.hasClient { n += s(x.clientAddress) + s(x.userAgent) }
        if let v = x.visit { n += 8 + 1 + 1 + s(v.browser) + s(v.os) }
        return n
    }

    private static func writeHeader(_ type: FrameType, into buffer: inout ByteBuffer) -> Int {
        buffer.writeInteger(Wire.magic)
        buffer.writeInteger(type.since)
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
