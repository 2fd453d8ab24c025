import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore

/// An error answered as `{"error": message, "details": [...]}` with its status: the one shape
/// of every refusal Tally's HTTP endpoints give. Conforming types name their status, message
/// and details; the body, headers and the Hummingbird response are made here.
public protocol JSONErrorResponse: HTTPResponseError, Sendable {
    var message: String { get }
    /// Every problem found, or nil for none.
    var details: [String]? { get }
}

extension JSONErrorResponse {
    public var jsonBody: String { JSONText.error(message, details: details) }

    /// JSON, `Retry-After` on a 503 (the refusal is temporary), and on a 401 the scheme that
    /// would do (`WWW-Authenticate: Bearer`, RFC 9110 §11.6.1).
    public var headers: HTTPFields { JSONResponse.headers(status: status.code) }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        JSONResponse.make(status.code, jsonBody)
    }
}

public enum JSONResponse {
    /// `retryAfter`: seconds for `Retry-After` (a 429's wait); every 503 says 1.
    public static func headers(status: Int, retryAfter: Int? = nil) -> HTTPFields {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) } else if status == 503 { headers[.retryAfter] = "1" }
        if status == 401 { headers[.wwwAuthenticate] = "Bearer" }
        return headers
    }

    public static func make(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: headers(status: status),
                 body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}

extension JSONText {
    /// `{"error": message}` or, with details, `{"error": message, "details": [...]}`.
    public static func error(_ message: String, details: [String]? = nil) -> String {
        guard let details else { return "{\"error\":\(quote(message))}" }
        return "{\"error\":\(quote(message)),\"details\":[\(details.map(quote).joined(separator: ","))]}"
    }
}
