import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import TallyCore
import TallyHTTP
import TallyStore

/// How `/api/v1/export` writes rows: every stored column, bot rows included and marked.
public enum ExportFormat: String, Sendable, CaseIterable {
    case csv, ndjson

    public static let columns = ["id", "site_id", "event_type", "path", "user_id", "timestamp", "ingested_at", "referrer",
                                 "utm_source", "utm_medium", "utm_campaign", "device", "browser", "os", "visitor", "bot"]

    var contentType: String { self == .csv ? "text/csv; charset=utf-8; header=present" : "application/x-ndjson" }

    /// CSV's header row (RFC 4180: CRLF after every record); NDJSON has none.
    var header: String { self == .csv ? Self.columns.joined(separator: ",") + "\r\n" : "" }

    /// The row's values, in ``columns`` order: nil for NULL, times as RFC 3339 UTC with
    /// microseconds, the visitor id as 16 hex digits.
    static func values(_ row: StoredEvent) -> [Value] {
        let e = row.event, v = e.visit
        return [.number(row.id), .text(e.siteID), .text(e.eventType), .text(e.path), .text(e.userID),
                .text(Timestamp.format(e.timestamp)), .text(Timestamp.format(row.ingestedAt)), .text(e.referrer),
                .text(e.utmSource), .text(e.utmMedium), .text(e.utmCampaign), .text(v.device?.name), .text(v.browser),
                .text(v.os), .text(v.visitor == 0 ? nil : hex(v.visitor)), .bool(v.isBot)]
    }

    enum Value {
        case number(Int64), text(String?), bool(Bool)
    }

    static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }

    func append(_ row: StoredEvent, to out: inout String) {
        let values = Self.values(row)
        switch self {
        case .csv:
            for (i, value) in values.enumerated() {
                if i > 0 { out += "," }
                switch value {
                case .number(let n): out += String(n)
                case .bool(let b): out += b ? "true" : "false"
                case .text(nil): break
                // Quoted when it must be (RFC 4180 §2.6), and when empty: "" is an empty
                // string, an empty field is no value.
                case .text(let s?):
                    if s.isEmpty || s.utf8.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }) {
                        out += "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
                    } else {
                        out += s
                    }
                }
            }
            out += "\r\n"
        case .ndjson:
            out += "{"
            for (i, (name, value)) in zip(Self.columns, values).enumerated() {
                if i > 0 { out += "," }
                out += "\"" + name + "\":"
                switch value {
                case .number(let n): out += String(n)
                case .bool(let b): out += b ? "true" : "false"
                case .text(let s): out += s.map(JSONText.quote) ?? "null"
                }
            }
            out += "}\n"
        }
    }
}

extension ReportRoutes {
    /// Streams the range's rows a page at a time: memory stays one page however large the
    /// range. The first page is read before the answer starts, so a store that cannot answer
    /// gets a 503; a failure later cuts the stream (a chunked body without its last chunk).
    func export(_ request: Request) async throws -> Response {
        var p = ReportParameters(query: request.uri.query, pairs: request.uri.queryParameters)
        let key = p.take("key")
        let range = p.range(now: Timestamp.now())
        let format = p.choice("format", ExportFormat.csv)
        let problems = p.finish(known: ReportParameters.rangeNames + ["format"])
        guard problems.isEmpty, let range, let format else { throw ReportQueryError(problems) }
        try authorizeRead(range.siteID, request, key: key)
        let store = self.store, size = 16_384
        let (from, to) = (range.start * 1_000_000, range.end * 1_000_000)
        let first = try await Self.fromStore { try await store.rows(siteID: range.siteID, from: from, to: to, afterID: 0, limit: size) }
        let name = "tally-\(Self.fileSafe(range.siteID))-\(range.from)-\(range.to).\(format.rawValue)"
        let headers: HTTPFields = [.contentType: format.contentType, .contentDisposition: "attachment; filename=\"\(name)\""]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var page = first
            var text = format.header
            while true {
                for row in page.rows { format.append(row, to: &text) }
                if !text.isEmpty { try await writer.write(ByteBuffer(string: text)) }
                text = ""
                guard let next = page.next else { break }
                page = try await store.rows(siteID: range.siteID, from: from, to: to, afterID: next, limit: size)
            }
            try await writer.finish(nil)
        })
    }

    /// A site id as a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`.
    static func fileSafe(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(64).map {
            $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) ? $0 : "_"
        }))
    }
}
