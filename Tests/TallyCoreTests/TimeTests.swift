import Testing
@testable import TallyCore
import TallyHTTP

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2025-11-14T12:00:00Z", Int64(1_763_121_600_000_000)),
        ("2025-11-14T12:00:00.5Z", 1_763_121_600_500_000),
        ("2025-11-14T12:00:00.123456789Z", 1_763_121_600_123_456),
        ("2025-11-14T14:00:00+02:00", 1_763_121_600_000_000),
        ("2025-11-14T07:30:00-0430", 1_763_121_600_000_000),
        ("2025-11-14t12:00:00z", 1_763_121_600_000_000),
        ("2025-11-14 12:00:00Z", 1_763_121_600_000_000),
        ("1970-01-01T00:00:00Z", 0),
        ("2024-02-29T23:59:59Z", 1_709_251_199_000_000),
    ])
    func parsesValid(_ text: String, _ micros: Int64) {
        #expect(Timestamp.parse(text) == micros)
    }

    @Test(arguments: [
        "", "2025-11-14", "2025-11-14T12:00:00", "2025-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
        "2025-11-14T24:00:00Z", "2025-11-14T12:60:00Z", "2025-11-14T12:00:00.Z", "2025-11-14T12:00:00+2",
        "2025-11-14T12:00:00Zjunk", "not a date", "2025-11-14T12:00:00+25:00", "１２３４-11-14T12:00:00Z",
    ])
    func rejectsInvalid(_ text: String) {
        #expect(Timestamp.parse(text) == nil)
    }

    /// Known texts: before the epoch (the second and day floor), and a year past 9999.
    @Test func formatsKnownTimes() {
        #expect(Timestamp.format(-1) == "1969-12-31T23:59:59.999999Z")
        #expect(Timestamp.format(1_764_000_000_123_456) == "2025-11-24T16:00:00.123456Z")
        #expect(Timestamp.format(253_402_300_800_000_000) == "10000-01-01T00:00:00.000000Z")
    }

    @Test func formatsRoundTrip() {
        for micros: Int64 in [0, 1_763_121_600_123_456, 4_102_444_799_999_999] {
            #expect(Timestamp.parse(Timestamp.format(micros)) == micros)
        }
    }
}

@Suite struct UTCDayTests {
    @Test func civilRoundTripAcrossCenturies() {
        for n in stride(from: Int32(-800_000), through: 800_000, by: 997) {
            let d = UTCDay(number: n)
            let (y, m, dd) = d.civil
            #expect(UTCDay(year: y, month: m, day: dd) == d)
            if y >= 1000 && y <= 9999 { #expect(UTCDay(parsing: d.description) == d) }
        }
    }

    @Test func parsesOnlyRealDates() {
        #expect(UTCDay(parsing: "2025-11-14")?.description == "2025-11-14")
        #expect(UTCDay(parsing: "2024-02-29") != nil)
        for bad in ["2025-02-29", "2025-11-31", "2025-1-14", "20251114", "2025-11-14T00", "abcd-ef-gh", ""] {
            #expect(UTCDay(parsing: bad) == nil, "\(bad)")
        }
    }

    @Test func dayOfTimestampIsUTCAndFloorsNegative() {
        #expect(UTCDay(containing: Timestamp.parse("2025-11-14T23:59:59.999999Z")!).description == "2025-11-14")
        #expect(UTCDay(containing: Timestamp.parse("2025-11-15T00:30:00+01:00")!).description == "2025-11-14")
        #expect(UTCDay(containing: -1).description == "1969-12-31")
    }
}

@Suite struct HTTPDateTests {
    @Test func formatsIMFFixdate() {
        #expect(HTTPDate.format(seconds: 784_111_777) == "Sun, 06 Nov 1994 08:49:37 GMT")
        #expect(HTTPDate.format(seconds: 0) == "Thu, 01 Jan 1970 00:00:00 GMT")
        #expect(HTTPDate.format(seconds: 951_782_400) == "Tue, 29 Feb 2000 00:00:00 GMT")
    }
}
