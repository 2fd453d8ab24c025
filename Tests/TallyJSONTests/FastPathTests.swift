import Testing
import TallyCore
@testable import TallyJSON

/// The fast path must answer exactly as the strict reader does, or step aside.
@Suite struct FastPathTests {
    static let bodies: [String] = [
        #"{"site_id":"s","event_type":"page_view","path":"/a","user_id":"u","timestamp":"2025-11-14T12:00:00Z"}"#,
        #" { "site_id" : "s" , "event_type" : "click" } "#,
        #"{"site_id":"s","event_type":"page_view","path":null,"user_id":null}"#,
        #"{"site_id":"s","event_type":"page_view","extra":"ignored","path":"/ü/ä"}"#,   // unknown key: strict
        #"{"site_id":"s","event_type":"page_view","path":"/a\/b"}"#,             // escape: strict
        #"{"site_id":"s","event_type":"page_view","path":"/a\u00e9"}"#,          // escape: strict
        #"{"site_id":"s","event_type":"page_view","timestamp":1731585600}"#,     // number
        #"{"site_id":"s","event_type":"page_view","user_id":{"id":1}}"#,         // object
        #"{"site_id":"s","event_type":"page_view","user_id":true}"#,             // boolean
        #"{"site_id":"s","site_id":"t","event_type":"page_view"}"#,              // duplicate key
        #"{"site_id":"","event_type":""}"#,                                       // invalid values
        #"{}"#,
        #"{"site_id":"s","event_type":"page_view"} trailing"#,
        #"{"site_id":"s","event_type":"page_view",}"#,
        #"{"site_id":"s" "event_type":"page_view"}"#,
        #"{"site_id":"s","event_type":"page_view""#,
        #"["not","an","object"]"#,
        #"nul"#,
        "",
        "{\"site_id\":\"a\tb\",\"event_type\":\"page_view\"}",                    // raw control character
        #"{"site\u005fid":"s","event_type":"page_view"}"#,                        // escaped key
        #"{"site_id":"s","event_type":"page_view","x":1,"x":2}"#,                 // duplicate unknown key
    ]

    static func outcome(_ body: () throws -> [Event]) -> String {
        do { return "\(try body())" } catch { return "\(error)" }
    }

    static func single(_ body: String, fast: Bool) -> String {
        var body = body
        return outcome { try body.withUTF8 { [try EventJSON.single(UnsafeRawBufferPointer($0), receivedAt: 5, fastPath: fast)] } }
    }

    static func batch(_ body: String, fast: Bool) -> String {
        var body = body
        return outcome { try body.withUTF8 { try EventJSON.batch(UnsafeRawBufferPointer($0), receivedAt: 5, maxEvents: 10, fastPath: fast) } }
    }

    @Test(arguments: bodies)
    func singleAgreesWithTheStrictReader(_ body: String) {
        #expect(Self.single(body, fast: true) == Self.single(body, fast: false))
    }

    @Test func batchAgreesWithTheStrictReader() {
        var batches = Self.bodies.map { "[\($0)]" }
        batches += ["[]", "[" + Self.bodies[0] + "," + Self.bodies[1] + "]", "[" + Self.bodies[0] + "," + Self.bodies[10] + "]",
                    Self.bodies[0] + "\n" + Self.bodies[2] + "\n", Self.bodies[0] + "\n" + Self.bodies[5],
                    // Repeated values are reused only when their bytes are the same.
                    #"[{"site_id":"site-a","event_type":"page_view","path":"/x"},{"site_id":"site-b","event_type":"page_view","path":"/y"},"#
                        + #"{"site_id":"site-a","event_type":"click","path":"/x","user_id":"/x"},{"site_id":"site-b","event_type":"page_view"}]"#]
        for body in batches {
            #expect(Self.batch(body, fast: true) == Self.batch(body, fast: false), "\(body)")
        }
    }

    @Test func fastPathTakesThePlainShapeAndStepsAsideOtherwise() {
        func fast(_ s: String) -> RawEvent? {
            var s = s
            return s.withUTF8 { var r = EventJSONReader(UnsafeRawBufferPointer($0)); return r.fastObject() }
        }
        #expect(fast(Self.bodies[0]) == RawEvent(siteID: .string("s"), eventType: .string("page_view"), path: .string("/a"),
                                                 userID: .string("u"), timestamp: .string("2025-11-14T12:00:00Z")))
        #expect(fast(Self.bodies[2])?.path == .null)
        for i in [3, 4, 5, 6, 7, 8, 9, 13, 14, 15, 16, 17, 18, 19, 20, 21] { #expect(fast(Self.bodies[i]) == nil, "\(Self.bodies[i])") }
    }
}
