#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import TallyCore

/// A cursor over a request body that reads event objects: the fast path first, the strict
/// RFC 8259 reader from the same offset when the fast path steps aside. Reads stop at `end`
/// (the end of the body, or of the current NDJSON line).
struct EventJSONReader {
    let b: UnsafeRawBufferPointer
    var i = 0
    var end: Int
    /// The NDJSON line being read (0 for a whole-body value), named in errors.
    var line = 0
    let fastPath: Bool
    /// The last value of each known field (byte range and string): the events of one batch
    /// mostly repeat the site and the type, and a repeat costs a byte compare instead of UTF-8
    /// validation and an allocation.
    private var last: [(range: Range<Int>, value: String)?] = Array(repeating: nil, count: EventField.count)

    init(_ b: UnsafeRawBufferPointer, fastPath: Bool = true) {
        self.b = b
        self.end = b.count
        self.fastPath = fastPath
    }

    var atEnd: Bool { i >= end }
    var peek: UInt8? { i < end ? b[i] : nil }

    mutating func skipSpace() {
        while i < end {
            let c = b[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { return }
            i += 1
        }
    }

    mutating func take(_ c: UInt8) -> Bool {
        guard i < end, b[i] == c else { return false }
        i += 1
        return true
    }

    func malformed(_ what: String, at offset: Int? = nil) -> EventJSONError {
        let at = offset ?? i
        return .malformed(line > 0 ? "line \(line), byte \(at): \(what)" : "byte \(at): \(what)")
    }

    /// One array element or whole body: the event's fields if it is an object, nil if it is
    /// another JSON value (which is still read strictly).
    mutating func element() throws(EventJSONError) -> RawEvent? {
        if fastPath {
            let start = i
            if let e = fastObject() { return e }
            i = start
        }
        guard let c = peek else { throw malformed("expected a JSON value, found the end of the input") }
        guard c == UInt8(ascii: "{") else {
            try skipValue(depth: 1)
            return nil
        }
        return try strictObject()
    }

    // MARK: Fast path

    /// `{"known_key": "plain string" | null, ...}`: nil for anything else (unknown or repeated
    /// keys, escapes, other value types, malformed input), with `i` left anywhere.
    mutating func fastObject() -> RawEvent? {
        guard take(UInt8(ascii: "{")) else { return nil }
        var e = RawEvent()
        var seen: UInt16 = 0
        skipSpace()
        if take(UInt8(ascii: "}")) { return e }
        while true {
            skipSpace()
            guard let key = plainString() else { return nil }
            let field = EventField.bit(UnsafeRawBufferPointer(rebasing: b[key]))
            guard field != 0, seen & field == 0 else { return nil }
            seen |= field
            skipSpace()
            guard take(UInt8(ascii: ":")) else { return nil }
            skipSpace()
            let value: RawField
            if let v = plainString() {
                let slot = field.trailingZeroBitCount
                if let prev = last[slot], same(prev.range, v) {
                    value = .string(prev.value)
                } else {
                    guard let s = String(checkedUTF8: UnsafeRawBufferPointer(rebasing: b[v])) else { return nil }
                    value = .string(s)
                    last[slot] = (v, s)
                }
            } else if literal("null") {
                value = .null
            } else {
                return nil
            }
            e.set(field, value)
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            guard take(UInt8(ascii: "}")) else { return nil }
            return e
        }
    }

    /// The bytes of a string without escapes or control characters; nil otherwise.
    private mutating func plainString() -> Range<Int>? {
        guard take(UInt8(ascii: "\"")) else { return nil }
        let start = i
        while i < end {
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

    private func same(_ x: Range<Int>, _ y: Range<Int>) -> Bool {
        guard x.count == y.count else { return false }
        return memcmp(b.baseAddress! + x.lowerBound, b.baseAddress! + y.lowerBound, x.count) == 0
    }

    private mutating func literal(_ word: StaticString) -> Bool {
        let n = word.utf8CodeUnitCount
        guard end - i >= n else { return false }
        for k in 0..<n where b[i + k] != word.utf8Start[k] { return false }
        i += n
        return true
    }

    // MARK: Strict reader

    private mutating func strictObject() throws(EventJSONError) -> RawEvent {
        i += 1
        var e = RawEvent()
        var seen: UInt16 = 0
        var otherKeys = Set<[UInt8]>()
        skipSpace()
        if take(UInt8(ascii: "}")) { return e }
        while true {
            skipSpace()
            let keyAt = i
            guard peek == UInt8(ascii: "\"") else { throw malformed("expected a string key") }
            let key = try string()
            let field = EventField.bit(key)
            if field != 0 ? seen & field != 0 : !otherKeys.insert(key).inserted {
                throw malformed("duplicate key \"\(String(decoding: key, as: UTF8.self))\"", at: keyAt)
            }
            seen |= field
            skipSpace()
            guard take(UInt8(ascii: ":")) else { throw malformed("expected ':' after an object key") }
            skipSpace()
            if field != 0 {
                e.set(field, try fieldValue())
            } else {
                try skipValue(depth: 2)
            }
            skipSpace()
            if take(UInt8(ascii: ",")) { continue }
            if take(UInt8(ascii: "}")) { return e }
            throw malformed("expected ',' or '}' after an object member")
        }
    }

    /// A known field's value: a string or null, or the JSON type it has instead.
    private mutating func fieldValue() throws(EventJSONError) -> RawField {
        switch peek {
        case UInt8(ascii: "\""): return .string(String(decoding: try string(), as: UTF8.self))
        case UInt8(ascii: "n"):
            try skipValue(depth: 2)
            return .null
        case UInt8(ascii: "t"), UInt8(ascii: "f"):
            try skipValue(depth: 2)
            return .wrongType("boolean")
        case UInt8(ascii: "{"), UInt8(ascii: "["):
            try skipValue(depth: 2)
            return .wrongType("object or array")
        default:
            try skipValue(depth: 2)
            return .wrongType("number")
        }
    }

    /// Reads any JSON value strictly, keeping nothing.
    private mutating func skipValue(depth: Int) throws(EventJSONError) {
        guard let c = peek else { throw malformed("expected a JSON value, found the end of the input") }
        switch c {
        case UInt8(ascii: "\""):
            _ = try string()
        case UInt8(ascii: "{"):
            guard depth <= EventJSON.maxDepth else { throw malformed("nesting deeper than \(EventJSON.maxDepth) levels") }
            i += 1
            var keys = Set<[UInt8]>()
            skipSpace()
            if take(UInt8(ascii: "}")) { return }
            while true {
                skipSpace()
                let keyAt = i
                guard peek == UInt8(ascii: "\"") else { throw malformed("expected a string key") }
                let key = try string()
                guard keys.insert(key).inserted else {
                    throw malformed("duplicate key \"\(String(decoding: key, as: UTF8.self))\"", at: keyAt)
                }
                skipSpace()
                guard take(UInt8(ascii: ":")) else { throw malformed("expected ':' after an object key") }
                skipSpace()
                try skipValue(depth: depth + 1)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                if take(UInt8(ascii: "}")) { return }
                throw malformed("expected ',' or '}' after an object member")
            }
        case UInt8(ascii: "["):
            guard depth <= EventJSON.maxDepth else { throw malformed("nesting deeper than \(EventJSON.maxDepth) levels") }
            i += 1
            skipSpace()
            if take(UInt8(ascii: "]")) { return }
            while true {
                skipSpace()
                try skipValue(depth: depth + 1)
                skipSpace()
                if take(UInt8(ascii: ",")) { continue }
                if take(UInt8(ascii: "]")) { return }
                throw malformed("expected ',' or ']' after an array element")
            }
        case UInt8(ascii: "t"): try word("true")
        case UInt8(ascii: "f"): try word("false")
        case UInt8(ascii: "n"): try word("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): try number()
        default:
            throw malformed("expected a JSON value")
        }
    }

    private mutating func word(_ w: StaticString) throws(EventJSONError) {
        let start = i
        guard literal(w) else { throw malformed("invalid literal (expected \(w))", at: start) }
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
    private mutating func number() throws(EventJSONError) {
        _ = take(UInt8(ascii: "-"))
        if take(UInt8(ascii: "0")) {
            if let c = peek, Self.isDigit(c) { throw malformed("a number must not have leading zeros") }
        } else {
            guard digits() > 0 else { throw malformed("expected a digit") }
        }
        if take(UInt8(ascii: ".")) {
            guard digits() > 0 else { throw malformed("expected a digit after the decimal point") }
        }
        if take(UInt8(ascii: "e")) || take(UInt8(ascii: "E")) {
            if !take(UInt8(ascii: "+")) { _ = take(UInt8(ascii: "-")) }
            guard digits() > 0 else { throw malformed("expected a digit in the exponent") }
        }
    }

    private mutating func digits() -> Int {
        let start = i
        while let c = peek, Self.isDigit(c) { i += 1 }
        return i - start
    }

    private static func isDigit(_ c: UInt8) -> Bool { c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9") }

    /// A string's unescaped UTF-8 bytes. Raw bytes must be valid UTF-8 and not control
    /// characters; `\u` escapes must pair surrogates.
    private mutating func string() throws(EventJSONError) -> [UInt8] {
        i += 1
        var out: [UInt8] = []
        var runStart = i
        while true {
            guard i < end else { throw malformed("unterminated string") }
            let c = b[i]
            switch c {
            case UInt8(ascii: "\""):
                out.append(contentsOf: b[runStart..<i])
                i += 1
                return out
            case UInt8(ascii: "\\"):
                out.append(contentsOf: b[runStart..<i])
                try escape(into: &out)
                runStart = i
            case 0..<0x20:
                throw malformed("control character U+\(Self.hex4(UInt32(c))) must be escaped in a string")
            case 0x80...:
                guard let n = UTF8Check.sequenceLength(b, at: i, end: end) else { throw malformed("invalid UTF-8") }
                i += n
            default:
                i += 1
            }
        }
    }

    private mutating func escape(into out: inout [UInt8]) throws(EventJSONError) {
        let at = i
        i += 1
        guard let c = peek else { throw malformed("unterminated string") }
        i += 1
        switch c {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(c)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
            let u = try hexQuad(at: at)
            var scalar = u
            if (0xD800...0xDBFF).contains(u) {
                guard end - i >= 6, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else {
                    throw malformed("lone surrogate \\u\(Self.hex4(u))", at: at)
                }
                i += 2
                let low = try hexQuad(at: i - 2)
                guard (0xDC00...0xDFFF).contains(low) else { throw malformed("lone surrogate \\u\(Self.hex4(u))", at: at) }
                scalar = 0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(u) {
                throw malformed("lone surrogate \\u\(Self.hex4(u))", at: at)
            }
            out.append(contentsOf: UTF8.encode(Unicode.Scalar(scalar)!)!)
        default:
            throw malformed("invalid escape", at: at)
        }
    }

    private mutating func hexQuad(at: Int) throws(EventJSONError) -> UInt32 {
        guard end - i >= 4 else { throw malformed("\\u needs four hexadecimal digits", at: at) }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]
            let d: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): d = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): d = c - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): d = c - UInt8(ascii: "A") + 10
            default: throw malformed("\\u needs four hexadecimal digits", at: at)
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    private static func hex4(_ v: UInt32) -> String {
        let s = String(v, radix: 16, uppercase: true)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }
}

/// The known keys of an event object, one bit each.
enum EventField {
    static let count = 9

    /// Bit of a known field name, 0 for any other key.
    static func bit<C: Collection<UInt8>>(_ k: C) -> UInt16 {
        func equals(_ name: StaticString) -> Bool {
            guard k.count == name.utf8CodeUnitCount else { return false }
            var j = 0
            for c in k {
                guard c == name.utf8Start[j] else { return false }
                j += 1
            }
            return true
        }
        switch k.count {
        case 4: return equals("path") ? 1 << 2 : 0
        case 7: return equals("site_id") ? 1 << 0 : equals("user_id") ? 1 << 3 : 0
        case 8: return equals("referrer") ? 1 << 5 : 0
        case 9: return equals("timestamp") ? 1 << 4 : 0
        case 10: return equals("event_type") ? 1 << 1 : equals("utm_source") ? 1 << 6 : equals("utm_medium") ? 1 << 7 : 0
        case 12: return equals("utm_campaign") ? 1 << 8 : 0
        default: return 0
        }
    }
}

extension RawEvent {
    /// Sets the field of ``EventField/bit(_:)``'s bit.
    fileprivate mutating func set(_ field: UInt16, _ value: RawField) {
        switch field {
        case 1 << 0: siteID = value
        case 1 << 1: eventType = value
        case 1 << 2: path = value
        case 1 << 3: userID = value
        case 1 << 4: timestamp = value
        case 1 << 5: referrer = value
        case 1 << 6: utmSource = value
        case 1 << 7: utmMedium = value
        default: utmCampaign = value
        }
    }
}

/// Well-formed UTF-8 (Unicode table 3-7): no overlong forms, no encoded surrogates, nothing
/// past U+10FFFF.
enum UTF8Check {
    /// The length of the well-formed sequence starting at `i` (whose first byte is ≥ 0x80),
    /// or nil.
    static func sequenceLength(_ b: UnsafeRawBufferPointer, at i: Int, end: Int) -> Int? {
        let c0 = b[i]
        let n: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch c0 {
        case 0xC2...0xDF: n = 2
        case 0xE0: n = 3; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: n = 3
        case 0xED: n = 3; hi = 0x9F
        case 0xF0: n = 4; lo = 0x90
        case 0xF1...0xF3: n = 4
        case 0xF4: n = 4; hi = 0x8F
        default: return nil
        }
        guard end - i >= n else { return nil }
        let c1 = b[i + 1]
        guard c1 >= lo && c1 <= hi else { return nil }
        for k in 2..<max(2, n) where b[i + k] & 0xC0 != 0x80 { return nil }
        return n
    }
}
