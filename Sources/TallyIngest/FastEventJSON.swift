#if canImport(Glibc)
import Glibc
#endif
import TallyCore

/// A fast path for the JSON that nearly every sender posts: a flat object whose values are
/// strings without escapes, or null. Foundation's `JSONDecoder` spends several microseconds
/// per small object; this reads one in a few hundred nanoseconds. Anything else (escapes,
/// numbers, nesting, duplicate keys, malformed input) returns nil, and the caller decodes the
/// body with `JSONDecoder`, which stays the one authority on errors and unusual input.
enum FastEventJSON {
    /// One event object, alone in `bytes` apart from whitespace.
    static func object(_ bytes: UnsafeRawBufferPointer) -> RawEvent? {
        var r = Reader(bytes)
        r.skipSpace()
        guard let event = r.object() else { return nil }
        r.skipSpace()
        return r.atEnd ? event : nil
    }

    /// A JSON array of event objects, alone in `bytes` apart from whitespace.
    static func array(_ bytes: UnsafeRawBufferPointer) -> [RawEvent]? {
        var r = Reader(bytes)
        r.skipSpace()
        guard r.take(UInt8(ascii: "[")) else { return nil }
        var events: [RawEvent] = []
        r.skipSpace()
        if !r.take(UInt8(ascii: "]")) {
            while true {
                r.skipSpace()
                guard let e = r.object() else { return nil }
                events.append(e)
                r.skipSpace()
                if r.take(UInt8(ascii: ",")) { continue }
                guard r.take(UInt8(ascii: "]")) else { return nil }
                break
            }
        }
        r.skipSpace()
        return r.atEnd ? events : nil
    }

    private struct Reader {
        let b: UnsafeRawBufferPointer
        var i = 0
        /// The last value of each field (byte range and string): the events of one batch mostly
        /// repeat the site and the type, and a repeat costs a byte compare instead of UTF-8
        /// validation and an allocation.
        var last: [(range: Range<Int>, value: String)?] = Array(repeating: nil, count: 5)

        init(_ b: UnsafeRawBufferPointer) { self.b = b }

        var atEnd: Bool { i == b.count }

        mutating func skipSpace() {
            while i < b.count {
                let c = b[i]
                guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
                i += 1
            }
        }

        mutating func take(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }

        /// `{"key": "value" | null, ...}` with the seed's fields; others are skipped.
        mutating func object() -> RawEvent? {
            guard take(UInt8(ascii: "{")) else { return nil }
            var e = RawEvent()
            var seen: UInt8 = 0
            skipSpace()
            if take(UInt8(ascii: "}")) { return e }
            while true {
                skipSpace()
                guard let key = stringRange() else { return nil }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { return nil }
                skipSpace()
                let field = Self.field(UnsafeRawBufferPointer(rebasing: b[key]))
                let value: RawField
                if let v = stringRange() {
                    let slot = field.trailingZeroBitCount
                    if field != 0, let prev = last[slot], same(prev.range, v) {
                        value = .string(prev.value)
                    } else {
                        guard let s = String(validating: UnsafeRawBufferPointer(rebasing: b[v]), as: UTF8.self) else { return nil }
                        value = .string(s)
                        if field != 0 { last[slot] = (v, s) }
                    }
                } else if literal("null") {
                    value = .null
                } else {
                    return nil
                }
                if field != 0 {
                    // A repeated key: leave the choice of value to JSONDecoder.
                    guard seen & field == 0 else { return nil }
                    seen |= field
                    switch field {
                    case 1: e.siteID = value
                    case 2: e.eventType = value
                    case 4: e.path = value
                    case 8: e.userID = value
                    default: e.timestamp = value
                    }
                }
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                guard take(UInt8(ascii: "}")) else { return nil }
                return e
            }
        }

        /// The bytes of a string without escapes or control characters; nil otherwise.
        mutating func stringRange() -> Range<Int>? {
            guard take(UInt8(ascii: "\"")) else { return nil }
            let start = i
            while i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "\"") {
                    i += 1
                    return start..<(i - 1)
                }
                if c == UInt8(ascii: "\\") || c < 0x20 { return nil }
                i += 1
            }
            return nil
        }

        func same(_ x: Range<Int>, _ y: Range<Int>) -> Bool {
            guard x.count == y.count else { return false }
            return memcmp(b.baseAddress! + x.lowerBound, b.baseAddress! + y.lowerBound, x.count) == 0
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let n = word.utf8CodeUnitCount
            guard b.count - i >= n else { return false }
            for k in 0..<n where b[i + k] != word.utf8Start[k] { return false }
            i += n
            return true
        }

        /// Bit of a known field name, 0 for any other key.
        static func field(_ k: UnsafeRawBufferPointer) -> UInt8 {
            func equals(_ name: StaticString) -> Bool {
                guard k.count == name.utf8CodeUnitCount else { return false }
                for j in 0..<k.count where k[j] != name.utf8Start[j] { return false }
                return true
            }
            switch k.count {
            case 4: return equals("path") ? 4 : 0
            case 7: return equals("site_id") ? 1 : equals("user_id") ? 8 : 0
            case 9: return equals("timestamp") ? 16 : 0
            case 10: return equals("event_type") ? 2 : 0
            default: return 0
            }
        }
    }
}
