import CZlib
import Crypto
import HTTPTypes
import Hummingbird
import NIOCore

/// `GET /tally.js` (and `HEAD`): the tracking script, gzipped when the client accepts it, with
/// a strong `ETag` (304 on `If-None-Match`) and a day of caching. Both encodings are made once.
public struct ScriptRoute: Sendable {
    public static let path = "/tally.js"
    static let cacheControl = "public, max-age=86400"

    let plain: ByteBuffer
    let gzipped: ByteBuffer
    let etag: String

    public init() {
        let bytes = Array(TrackingScript.source.utf8)
        plain = ByteBuffer(bytes: bytes)
        gzipped = ByteBuffer(bytes: Gzip.compress(bytes))
        etag = "\"" + SHA256.hash(data: bytes).prefix(12).map { String(format2: $0) }.joined() + "\""
    }

    public func addRoutes<Context: RequestContext>(to router: Router<Context>) {
        router.get(RouterPath(stringLiteral: Self.path)) { request, _ in self.respond(request) }
    }

    func respond(_ request: Request) -> Response {
        var headers: HTTPFields = [.contentType: "text/javascript; charset=utf-8", .cacheControl: Self.cacheControl,
                                   .eTag: etag, .vary: "Accept-Encoding"]
        if let match = request.headers[.ifNoneMatch], match.split(separator: ",").contains(where: { $0.trimmed == etag || $0.trimmed == "*" }) {
            return Response(status: .notModified, headers: headers)
        }
        let gzip = request.headers[values: .acceptEncoding].contains { value in
            value.split(separator: ",").contains { $0.trimmed.split(separator: ";").first.map { $0.lowercased() == "gzip" } ?? false }
        }
        if gzip { headers[.contentEncoding] = "gzip" }
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: gzip ? gzipped : plain))
    }
}

extension Substring {
    fileprivate var trimmed: String {
        var s = self
        while s.first == " " { s = s.dropFirst() }
        while s.last == " " { s = s.dropLast() }
        return String(s)
    }
}

extension String {
    fileprivate init(format2 byte: UInt8) {
        let h = String(byte, radix: 16)
        self = h.count == 1 ? "0" + h : h
    }
}

/// gzip (RFC 1952) through zlib.
enum Gzip {
    static func compress(_ input: [UInt8]) -> [UInt8] {
        var stream = z_stream()
        // windowBits 15 + 16: a gzip header and trailer instead of zlib's.
        guard deflateInit2_(&stream, Z_BEST_COMPRESSION, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY,
                            ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return [] }
        defer { deflateEnd(&stream) }
        var output = [UInt8](repeating: 0, count: Int(deflateBound(&stream, UInt(input.count))) + 32)
        var input = input
        let written: Int = input.withUnsafeMutableBufferPointer { inBuf in
            output.withUnsafeMutableBufferPointer { outBuf in
                stream.next_in = inBuf.baseAddress
                stream.avail_in = UInt32(inBuf.count)
                stream.next_out = outBuf.baseAddress
                stream.avail_out = UInt32(outBuf.count)
                guard deflate(&stream, Z_FINISH) == Z_STREAM_END else { return 0 }
                return outBuf.count - Int(stream.avail_out)
            }
        }
        return Array(output.prefix(written))
    }
}
