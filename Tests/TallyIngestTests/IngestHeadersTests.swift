import NIOHTTP1
import Testing
@testable import TallyIngest

/// The one-pass header read agrees with `HTTPHeaders`' own lookups, whatever the case of the
/// names, their order or repeats.
@Suite struct IngestHeadersTests {
    @Test func agreesWithHTTPHeadersLookups() {
        let names = ["Expect", "expect", "ORIGIN", "Origin", "User-Agent", "user-agent", "Content-Type", "CONTENT-TYPE",
                     "Content-Length", "content-length", "Host", "Accept", "X-Forwarded-For", "Originx", "User-Agent2", "Expec"]
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<2000 {
            var h = HTTPHeaders()
            for k in 0..<Int.random(in: 0...8, using: &rng) {
                h.add(name: names.randomElement(using: &rng)!, value: "v\(k)")
            }
            let f = IngestHeaders(h)
            #expect(f.expect == h.first(name: "expect"))
            #expect(f.origin == h.first(name: "origin"))
            #expect(f.userAgent == h.first(name: "user-agent"))
            #expect(f.contentType == h.first(name: "content-type"))
            #expect(f.contentLength == h.first(name: "content-length"))
            #expect(f.bytes == h.reduce(0) { $0 + $1.name.utf8.count + $1.value.utf8.count })
        }
    }
}
