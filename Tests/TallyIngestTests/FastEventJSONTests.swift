import Foundation
import Testing
import TallyCore
@testable import TallyIngest

/// The fast JSON path must answer exactly as the JSONDecoder path does, or step aside.
@Suite struct FastEventJSONTests {
    static let bodies: [String] = [
        #"{"site_id":"s","event_type":"page_view","path":"/a","user_id":"u","timestamp":"2025-11-14T12:00:00Z"}"#,
        #" { "site_id" : "s" , "event_type" : "click" } "#,
        #"{"site_id":"s","event_type":"page_view","path":null,"user_id":null}"#,
        #"{"site_id":"s","event_type":"page_view","extra":"ignored","path":"/ü/ä"}"#,
        #"{"site_id":"s","event_type":"page_view","path":"/a\/b"}"#,             // escape: slow path
        #"{"site_id":"s","event_type":"page_view","path":"/a\u00e9"}"#,          // escape: slow path
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
    ]

    static func outcome(_ body: () throws -> [Event]) -> String {
        do { return "\(try body())" } catch let r as IngestRefusal { return "\(r.status.code) \(r.jsonBody)" } catch { return "\(error)" }
    }

    @Test(arguments: bodies)
    func singleAgreesWithJSONDecoder(_ body: String) {
        let data = Data(body.utf8)
        let fast = Self.outcome {
            try data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in [try EventBodyParser.single(b, receivedAt: 5)] }
        }
        let slow = Self.outcome { [try EventBodyParser.single(data, receivedAt: 5)] }
        #expect(fast == slow)
    }

    @Test func batchAgreesWithJSONDecoder() {
        var batches = Self.bodies.map { "[\($0)]" }
        batches += ["[]", "[" + Self.bodies[0] + "," + Self.bodies[1] + "]", "[" + Self.bodies[0] + "," + Self.bodies[10] + "]",
                    Self.bodies[0] + "\n" + Self.bodies[2] + "\n", Self.bodies[0] + "\n" + Self.bodies[5],
                    // Repeated values are reused only when their bytes are the same.
                    #"[{"site_id":"site-a","event_type":"page_view","path":"/x"},{"site_id":"site-b","event_type":"page_view","path":"/y"},"#
                        + #"{"site_id":"site-a","event_type":"click","path":"/x","user_id":"/x"},{"site_id":"site-b","event_type":"page_view"}]"#]
        for body in batches {
            let data = Data(body.utf8)
            let fast = Self.outcome {
                try data.withUnsafeBytes { (b: UnsafeRawBufferPointer) in try EventBodyParser.batch(b, receivedAt: 5) }
            }
            let slow = Self.outcome { try EventBodyParser.batch(data, receivedAt: 5) }
            #expect(fast == slow, "\(body)")
        }
    }

    @Test func fastPathTakesThePlainShapeAndStepsAsideOtherwise() {
        func fast(_ s: String) -> RawEvent? { Data(s.utf8).withUnsafeBytes { FastEventJSON.object($0) } }
        #expect(fast(Self.bodies[0]) == RawEvent(siteID: .string("s"), eventType: .string("page_view"), path: .string("/a"),
                                                 userID: .string("u"), timestamp: .string("2025-11-14T12:00:00Z")))
        #expect(fast(Self.bodies[2])?.path == .null)
        for i in [4, 5, 6, 7, 8, 9, 12, 13, 14, 15, 16, 17, 18, 19] { #expect(fast(Self.bodies[i]) == nil, "\(Self.bodies[i])") }
        #expect(Data("[\(Self.bodies[0]), \(Self.bodies[1])]".utf8).withUnsafeBytes { FastEventJSON.array($0) }?.count == 2)
    }
}
