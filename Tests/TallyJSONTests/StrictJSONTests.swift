import Testing
import TallyCore
import TallyJSON

/// RFC 8259 as written: every malformed body is refused with the byte offset of its first
/// problem, valid but unusual JSON is read exactly, and batches stop at the event limit.
@Suite struct StrictJSONTests {
    static func single(_ bytes: [UInt8]) -> Result<Event, EventJSONError> {
        bytes.withUnsafeBytes { b in Result { () throws(EventJSONError) in try EventJSON.single(b, receivedAt: 7) } }
    }

    static func batch(_ bytes: [UInt8], max: Int = 10_000) -> Result<[Event], EventJSONError> {
        bytes.withUnsafeBytes { b in Result { () throws(EventJSONError) in try EventJSON.batch(b, receivedAt: 7, maxEvents: max) } }
    }

    static let ok = #""site_id":"s","event_type":"page_view""#

    @Test(arguments: [
        (#"{"site_id":"s","event_type":"page_view",}"#, "byte 40: expected a string key"),
        (#"[{"site_id":"s","event_type":"page_view"},]"#, "byte 42: expected a JSON value"),
        (#"{"site_id":"s","site_id":"t","event_type":"page_view"}"#, #"byte 15: duplicate key "site_id""#),
        (#"{"site_id":"s","event_type":"page_view","x":{"a":1,"a":2}}"#, #"byte 51: duplicate key "a""#),
        (#"{"site_id":"s","event_type":"page_view","x":"\ud800"}"#, #"byte 45: lone surrogate \uD800"#),
        (#"{"site_id":"s","event_type":"page_view","x":"\udc00\u0041"}"#, #"byte 45: lone surrogate \uDC00"#),
        (#"{"site_id":"s","event_type":"page_view","x":"\ud800\u0041"}"#, #"byte 45: lone surrogate \uD800"#),
        (#"{"site_id":"s","event_type":"page_view","x":01}"#, "byte 45: a number must not have leading zeros"),
        (#"{"site_id":"s","event_type":"page_view","x":1.}"#, "byte 46: expected a digit after the decimal point"),
        (#"{"site_id":"s","event_type":"page_view","x":'a'}"#, "byte 44: expected a JSON value"),
        (#"{"site_id":"s","event_type":"page_view","x":NaN}"#, "byte 44: expected a JSON value"),
        (#"{"site_id":"s","event_type":"page_view","x":tru}"#, "byte 44: invalid literal (expected true)"),
        (#"{"site_id":"s","event_type":"page_view","x":"\x"}"#, "byte 45: invalid escape"),
        (#"{"site_id":"s","event_type":"page_view"} {}"#, "byte 41: unexpected data after the JSON value"),
        (#"{"site_id":"s""#, "byte 14: expected ',' or '}' after an object member"),
        ("", "byte 0: expected a JSON value, found the end of the input"),
    ])
    func malformedIsRefusedWithItsOffset(_ body: String, _ detail: String) {
        let result = body.hasPrefix("[") ? Self.batch(Array(body.utf8)).map { _ in 0 } : Self.single(Array(body.utf8)).map { _ in 0 }
        #expect(result == .failure(.malformed(detail)), "\(body)")
    }

    @Test func invalidUTF8AnywhereIsMalformed() {
        let prefix = Array(#"{"site_id":"s","event_type":"page_view","#.utf8)
        let cases: [[UInt8]] = [
            [0xFF], [0xC0, 0xAF], [0xE0, 0x80, 0xAF], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80], [0xC3], [0x80],
        ]
        for bad in cases {
            // In an unknown key, in an unknown value, and in a known field's value.
            for body in [prefix + [0x22] + bad + Array(#"":1}"#.utf8),
                         prefix + Array(#""x":""#.utf8) + bad + Array(#""}"#.utf8),
                         Array(#"{"event_type":"page_view","site_id":""#.utf8) + bad + Array(#""}"#.utf8)] {
                guard case .failure(.malformed(let d)) = Self.single(body) else {
                    Issue.record("accepted \(bad)")
                    continue
                }
                #expect(d.hasSuffix("invalid UTF-8"), "\(d)")
            }
        }
        // Raw control characters must be escaped.
        #expect(Self.single(Array("{\"site_id\":\"a\u{1}\",\"event_type\":\"t\"}".utf8))
                == .failure(.malformed("byte 13: control character U+0001 must be escaped in a string")))
    }

    @Test func deepNestingIsRefusedNotOverflowed() {
        let deep = Array(#"{"site_id":"s","event_type":"t","x":"#.utf8) + Array(repeating: UInt8(ascii: "["), count: 100_000)
        guard case .failure(.malformed(let d)) = Self.single(deep) else {
            Issue.record("accepted")
            return
        }
        #expect(d.hasSuffix("nesting deeper than 64 levels"))
    }

    @Test func unusualButValidJSONIsReadExactly() throws {
        let body = #"{"site\u005fid":"caf\u00e9 \ud83d\ude00 \"q\" \\ \/","event_type":"page_view","path":"/a\u0000b","#
            + #""x":[1,-0.5e+3,true,false,null,{"y":{}}],"user_id":null,"n":-0}"#
        let e = try Self.single(Array(body.utf8)).get()
        #expect(Array(e.siteID.utf8) == Array("café 😀 \"q\" \\ /".utf8))
        #expect(Array(e.path!.utf8) == [0x2F, 0x61, 0x00, 0x62])
        #expect(e.userID == nil)
    }

    @Test func everyProblemOfEveryEventIsNamed() {
        let r = Self.batch(Array(#"[{"site_id":"s"},7,{"site_id":"s","event_type":"t","timestamp":"x"}]"#.utf8))
        #expect(r == .failure(.invalid(["events[0]: event_type is required", "events[1]: must be a JSON object",
                                        "events[2]: timestamp must be a valid ISO 8601 date string"])))
        let many = "[" + Array(repeating: "{}", count: 200).joined(separator: ",") + "]"
        guard case .failure(.invalid(let problems)) = Self.batch(Array(many.utf8)) else {
            Issue.record("accepted")
            return
        }
        #expect(problems.count == EventJSON.maxProblems + 1)
        #expect(problems.last == "and 300 more problems")
    }

    @Test func aBatchStopsAtTheFirstEventTooMany() throws {
        let event = "{\(Self.ok)}"
        let atLimit = "[" + Array(repeating: event, count: 5).joined(separator: ",") + "]"
        #expect(try Self.batch(Array(atLimit.utf8), max: 5).get().count == 5)
        // Event 6 is refused before the malformed rest is read.
        let over = "[" + Array(repeating: event, count: 6).joined(separator: ",") + ", this is not JSON"
        #expect(Self.batch(Array(over.utf8), max: 5) == .failure(.tooManyEvents(limit: 5)))
        let ndjson = Array(repeating: event, count: 6).joined(separator: "\n") + "\n{"
        #expect(Self.batch(Array(ndjson.utf8), max: 5) == .failure(.tooManyEvents(limit: 5)))
        // Empty objects count as events too: 2.8 million of them stop at the limit.
        var huge: [UInt8] = [UInt8(ascii: "[")]
        for _ in 0..<1_000_000 { huge += [UInt8(ascii: "{"), UInt8(ascii: "}"), UInt8(ascii: ",")] }
        #expect(Self.batch(huge) == .failure(.tooManyEvents(limit: 10_000)))
    }

    @Test func ndjsonNamesTheLineAndByte() throws {
        let body = "{\(Self.ok)}\n\n{\(Self.ok),}\n"
        #expect(Self.batch(Array(body.utf8)) == .failure(.malformed("line 3, byte 82: expected a string key")))
        #expect(try Self.batch(Array("\r\n{\(Self.ok)}\r\n  \n{\(Self.ok)}".utf8)).get().count == 2)
        // A value may not span lines in NDJSON.
        guard case .failure(.malformed) = Self.batch(Array("{\"site_id\":\n\"s\",\"event_type\":\"t\"}".utf8)) else {
            Issue.record("accepted")
            return
        }
    }
}
