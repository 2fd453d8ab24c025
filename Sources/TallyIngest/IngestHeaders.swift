import NIOHTTP1

/// The request headers ingest reads, found in one pass over the head that also adds up their
/// size: each lookup by name is a scan of every header, and a browser's request carries
/// several more headers than a server-side sender's. The first field of each name counts, as
/// with `HTTPHeaders.first(name:)`.
struct IngestHeaders {
    var expect: String?
    var contentLength: String?
    var contentType: String?
    var userAgent: String?
    var origin: String?
    var authorization: String?
    /// Name and value bytes of every field (the `--max-header-bytes` style limit).
    var bytes = 0

    init(_ headers: HTTPHeaders) {
        for (name, value) in headers {
            let n = name.utf8
            bytes += n.count + value.utf8.count
            switch n.count {
            case 6:
                if expect == nil, Self.named(n, "expect") { expect = value }
                else if origin == nil, Self.named(n, "origin") { origin = value }
            case 10:
                if userAgent == nil, Self.named(n, "user-agent") { userAgent = value }
            case 13:
                if authorization == nil, Self.named(n, "authorization") { authorization = value }
            case 12:
                if contentType == nil, Self.named(n, "content-type") { contentType = value }
            case 14:
                if contentLength == nil, Self.named(n, "content-length") { contentLength = value }
            default:
                break
            }
        }
    }

    /// ASCII case-insensitive equality with a lower-case name of the same length.
    private static func named(_ name: String.UTF8View, _ lower: StaticString) -> Bool {
        lower.withUTF8Buffer { l in
            var i = 0
            for c in name {
                let folded = c >= UInt8(ascii: "A") && c <= UInt8(ascii: "Z") ? c | 0x20 : c
                guard folded == l[i] else { return false }
                i += 1
            }
            return true
        }
    }
}
