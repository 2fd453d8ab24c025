#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// RFC 3339 / ISO 8601 timestamps, parsed by hand: Foundation's formatters are slow and not
/// thread-safe, and this sits on the ingest hot path.
public enum Timestamp {
    /// Microseconds since the Unix epoch, from the wall clock.
    public static func now() -> Int64 {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Int64(ts.tv_sec) * 1_000_000 + Int64(ts.tv_nsec) / 1000
    }

    /// Parses `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)` (also `t`, `z`, a space for `T`, and
    /// `±HHMM`/`±HH` offsets) into microseconds since the epoch. Returns nil when invalid.
    public static func parse(_ string: String) -> Int64? {
        var s = string
        return s.withUTF8 { parse(utf8: $0) }
    }

    public static func parse(utf8 b: UnsafeBufferPointer<UInt8>) -> Int64? {
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2),
              expect(UInt8(ascii: "-")), let day = digits(2) else { return nil }
        guard i < b.count, b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
        i += 1
        guard let hour = digits(2), expect(UInt8(ascii: ":")), let minute = digits(2),
              expect(UInt8(ascii: ":")), let second = digits(2) else { return nil }
        guard (1...12).contains(month), day >= 1, day <= UTCDay.daysInMonth(year: year, month: month),
              hour <= 23, minute <= 59, second <= 60 else { return nil }
        var micros = 0
        if i < b.count, b[i] == UInt8(ascii: ".") || b[i] == UInt8(ascii: ",") {
            i += 1
            var n = 0
            while i < b.count, b[i] >= 48, b[i] <= 57 {
                if n < 6 { micros = micros * 10 + Int(b[i] - 48) }
                n += 1
                i += 1
            }
            guard n > 0 else { return nil }
            var k = n
            while k < 6 { micros *= 10; k += 1 }
        }
        guard i < b.count else { return nil }
        var offsetSeconds = 0
        let c = b[i]
        if c == UInt8(ascii: "Z") || c == UInt8(ascii: "z") {
            i += 1
        } else if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
            i += 1
            guard let oh = digits(2), oh <= 23 else { return nil }
            var om = 0
            if i < b.count {
                _ = expect(UInt8(ascii: ":"))
                guard let m = digits(2), m <= 59 else { return nil }
                om = m
            }
            offsetSeconds = (oh * 3600 + om * 60) * (c == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = Int64(UTCDay(year: year, month: month, day: day).number)
        // A leap second (":60") is folded onto the next second, as most systems do.
        let secs = days * 86_400 + Int64(hour * 3600 + minute * 60 + second - offsetSeconds)
        return secs * 1_000_000 + Int64(micros)
    }

    /// Formats microseconds since the epoch as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    public static func format(_ micros: Int64) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(27)
        append(micros, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// ``format(_:)``'s bytes, appended: export writes millions of times a second and cannot
    /// afford a `String` each.
    public static func append(_ micros: Int64, to out: inout [UInt8]) {
        let secs = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let day = UTCDay(number: Int32((secs >= 0 ? secs : secs - 86_399) / 86_400))
        let (y, m, d) = day.civil
        let sod = Int(secs - Int64(day.number) * 86_400)
        func digits(_ v: Int, _ width: Int) {
            var p = 1
            for _ in 1..<width { p *= 10 }
            while p > 0 {
                out.append(UInt8(ascii: "0") + UInt8(v / p % 10))
                p /= 10
            }
        }
        // Years outside 0...9999 as `UTCDay`'s description writes them.
        if (0...9999).contains(y) { digits(y, 4) } else { out.append(contentsOf: zeroPadded(y, 4).utf8) }
        out.append(UInt8(ascii: "-")); digits(m, 2); out.append(UInt8(ascii: "-")); digits(d, 2)
        out.append(UInt8(ascii: "T")); digits(sod / 3600, 2); out.append(UInt8(ascii: ":")); digits(sod / 60 % 60, 2)
        out.append(UInt8(ascii: ":")); digits(sod % 60, 2); out.append(UInt8(ascii: ".")); digits(Int(micros - secs * 1_000_000), 6)
        out.append(UInt8(ascii: "Z"))
    }
}

/// A calendar day in UTC, as days since 1970-01-01.
public struct UTCDay: Sendable, Hashable, Comparable, CustomStringConvertible {
    public var number: Int32

    public init(number: Int32) { self.number = number }

    /// The day's first microsecond since the epoch.
    public var start: Int64 { Int64(number) * 86_400_000_000 }

    public static var today: UTCDay { UTCDay(containing: Timestamp.now()) }

    public init(containing micros: Int64) {
        let perDay: Int64 = 86_400_000_000
        number = Int32(micros >= 0 ? micros / perDay : (micros - perDay + 1) / perDay)
    }

    /// Days from civil date (Howard Hinnant's algorithm), proleptic Gregorian.
    public init(year: Int, month: Int, day: Int) {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        number = Int32(era * 146_097 + doe - 719_468)
    }

    /// Parses exactly `YYYY-MM-DD` (a real calendar date).
    public init?(parsing s: String) {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-") else { return nil }
        func num(_ r: Range<Int>) -> Int? {
            var v = 0
            for k in r {
                guard b[k] >= 48, b[k] <= 57 else { return nil }
                v = v * 10 + Int(b[k] - 48)
            }
            return v
        }
        guard let y = num(0..<4), let m = num(5..<7), let d = num(8..<10),
              (1...12).contains(m), d >= 1, d <= Self.daysInMonth(year: y, month: m) else { return nil }
        self.init(year: y, month: m, day: d)
    }

    public var civil: (year: Int, month: Int, day: Int) {
        let z = Int(number) + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    public var description: String {
        let (y, m, d) = civil
        return "\(zeroPadded(y, 4))-\(zeroPadded(m, 2))-\(zeroPadded(d, 2))"
    }

    public static func < (a: UTCDay, b: UTCDay) -> Bool { a.number < b.number }

    public static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}

/// `v` in decimal, left-padded with zeros to `width` digits.
public func zeroPadded(_ v: Int, _ width: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, width - s.count)) + s
}
