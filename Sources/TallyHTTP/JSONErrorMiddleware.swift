import HTTPTypes
import Hummingbird
import TallyCore

/// Hummingbird's own refusals (no route: 404; a method a path does not take: 405) answered in
/// Tally's error shape, so every refusal a client gets has a JSON body.
public struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    public init() {}

    public func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            let message = error.body ?? error.status.reasonPhrase
            var response = JSONResponse.make(error.status.code, JSONText.error(message, details: ["\(request.method) \(request.uri.path)"]))
            for field in error.headers where field.name != .contentType && field.name != .contentLength {
                response.headers.append(field)
            }
            return response
        }
    }
}
