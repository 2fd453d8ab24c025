import Testing
@testable import TallyCore

@Suite struct ValidationTests {
    @Test func validEventKeepsFieldsAndDefaultsTimestamp() throws {
        let raw = RawEvent(siteID: .string("s"), eventType: .string("page_view"), path: .string("/a"), userID: .absent)
        let e = try raw.validate(receivedAt: 42).get()
        #expect(e == Event(siteID: "s", eventType: "page_view", path: "/a", userID: nil, timestamp: 42))
    }

    @Test func namesEveryProblemAtOnce() {
        let raw = RawEvent(siteID: .string(""), eventType: .wrongType("number"), path: .wrongType("object or array"),
                           userID: .string(String(repeating: "u", count: 300)), timestamp: .string("yesterday"))
        guard case .failure(let err) = raw.validate(receivedAt: 0) else {
            Issue.record("expected failure")
            return
        }
        #expect(err.problems == [
            "site_id must be a non-empty string",
            "event_type must be a string",
            "path must be a string",
            "user_id must be at most 256 bytes",
            "timestamp must be a valid ISO 8601 date string",
        ])
    }

    @Test func missingRequiredFields() {
        guard case .failure(let err) = RawEvent().validate(receivedAt: 0) else {
            Issue.record("expected failure")
            return
        }
        #expect(err.problems == ["site_id is required", "event_type is required"])
    }

    @Test func emptyOptionalFieldsBecomeAbsent() throws {
        let e = try RawEvent(siteID: .string("s"), eventType: .string("t"), path: .string(""), userID: .string(""),
                             timestamp: .null).validate(receivedAt: 7).get()
        #expect(e.path == nil && e.userID == nil && e.timestamp == 7)
    }

    @Test func timestampOutOfRangeIsRejected() {
        let raw = RawEvent(siteID: .string("s"), eventType: .string("t"), timestamp: .string("2150-01-01T00:00:00Z"))
        guard case .failure(let err) = raw.validate(receivedAt: 0) else {
            Issue.record("expected failure")
            return
        }
        #expect(err.problems == ["timestamp must be between 1970-01-01 and 2099-12-31"])
    }

    @Test func limitsCountBytesNotCharacters() {
        let site = String(repeating: "é", count: 65)  // 130 bytes
        let raw = RawEvent(siteID: .string(site), eventType: .string("t"))
        #expect((try? raw.validate(receivedAt: 0).get()) == nil)
    }

    @Test func jsonQuoteEscapes() {
        #expect(JSONText.quote("a\"b\\c\n\u{01}é") == "\"a\\\"b\\\\c\\n\\u0001é\"")
        #expect(JSONText.error("x", details: ["a", "b"]) == "{\"error\":\"x\",\"details\":[\"a\",\"b\"]}")
    }
}
