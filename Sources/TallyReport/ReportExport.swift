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

    /// Appends the row as one line: CSV per RFC 4180 (CRLF after every record; a field quoted
    /// when it must be, and when it is an empty string: `""` is an empty string, an empty
    /// field no value), or one NDJSON object. Times as RFC 3339 UTC with microseconds, the
    /// visitor id as 16 hex digits. Written as bytes: export's speed is this function's
    /// (a `String` built per row ran at a quarter of a million rows a second).
    func append(_ row: StoredEvent, to out: inout [UInt8]) {
        let e = row.event, v = e.visit
        var w = LineWriter(format: self, out: out)
        out = []
        w.number(row.id)
        w.text(e.siteID)
        w.text(e.eventType)
        w.text(e.path)
        w.text(e.userID)
        w.time(e.timestamp)
        w.time(row.ingestedAt)
        w.text(e.referrer)
        w.text(e.utmSource)
        w.text(e.utmMedium)
        w.text(e.utmCampaign)
        w.text(v.device?.name)
        w.text(v.browser)
        w.text(v.os)
        w.visitor(v.visitor)
        w.bool(v.isBot)
        out = w.finish()
    }

    /// NDJSON's `{"name":` before each value, `,"name":` after the first.
    fileprivate static let keys: [[UInt8]] = columns.enumerated().map { i, name in Array(((i == 0 ? "{" : ",") + "\"\(name)\":").utf8) }
}

/// One export line's fields, in ``ExportFormat/columns`` order.
private struct LineWriter {
    let format: ExportFormat
    var out: [UInt8]
    var field = 0

    init(format: ExportFormat, out: [UInt8]) {
        self.format = format
        self.out = out
    }

    private mutating func start() {
        if format == .csv {
            if field > 0 { out.append(UInt8(ascii: ",")) }
        } else {
            out.append(contentsOf: ExportFormat.keys[field])
        }
        field += 1
    }

    mutating func finish() -> [UInt8] {
        if format == .csv {
            out.append(0x0D)
            out.append(0x0A)
        } else {
            out.append(UInt8(ascii: "}"))
            out.append(0x0A)
        }
        return out
    }

    mutating func number(_ n: Int64) {
        start()
        out.append(contentsOf: String(n).utf8)
    }

    mutating func bool(_ b: Bool) {
        start()
        out.append(contentsOf: (b ? "true" : "false").utf8)
    }

    mutating func text(_ s: String?) {
        start()
        guard var s else {
            if format == .ndjson { out.append(contentsOf: "null".utf8) }
            return
        }
        s.makeContiguousUTF8()
        s.utf8.withContiguousStorageIfAvailable { bytes in
            format == .csv ? csv(bytes) : json(bytes)
        }
    }

    private mutating func csv(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard bytes.isEmpty || bytes.contains(where: { $0 == 0x2C || $0 == 0x22 || $0 == 0x0D || $0 == 0x0A }) else {
            out.append(contentsOf: bytes)
            return
        }
        out.append(0x22)
        for b in bytes {
            if b == 0x22 { out.append(0x22) }
            out.append(b)
        }
        out.append(0x22)
    }

    /// Escapes what RFC 8259 requires (quote, backslash, controls); other bytes are valid
    /// UTF-8 already (a `String`'s) and pass as they are.
    private mutating func json(_ bytes: UnsafeBufferPointer<UInt8>) {
        out.append(0x22)
        var plain = 0
        for (i, b) in bytes.enumerated() where b < 0x20 || b == 0x22 || b == 0x5C {
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plain..<i]))
            plain = i + 1
            switch b {
            case 0x22: out.append(contentsOf: #"\""#.utf8)
            case 0x5C: out.append(contentsOf: #"\\"#.utf8)
            case 0x0A: out.append(contentsOf: #"\n"#.utf8)
            case 0x0D: out.append(contentsOf: #"\r"#.utf8)
            case 0x09: out.append(contentsOf: #"\t"#.utf8)
            default:
                out.append(contentsOf: #"\u00"#.utf8)
                out.append(Self.hexDigit(b >> 4))
                out.append(Self.hexDigit(b & 0xF))
            }
        }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[plain...]))
        out.append(0x22)
    }

    /// A quoted RFC 3339 time in both formats.
    mutating func time(_ micros: Int64) {
        start()
        if format == .ndjson { out.append(0x22) }
        Timestamp.append(micros, to: &out)
        if format == .ndjson { out.append(0x22) }
    }

    mutating func visitor(_ v: UInt64) {
        guard v != 0 else { return text(nil) }
        start()
        if format == .ndjson { out.append(0x22) }
        for shift in stride(from: 60, through: 0, by: -4) { out.append(Self.hexDigit(UInt8(truncatingIfNeeded: v >> UInt64(shift)) & 0xF)) }
        if format == .ndjson { out.append(0x22) }
    }

    private static func hexDigit(_ d: UInt8) -> UInt8 { d < 10 ? UInt8(ascii: "0") + d : UInt8(ascii: "a") + d - 10 }
}

extension ReportRoutes {
    /// Streams the range's rows a page at a time: memory stays a few pages however large the
    /// range (the first, which the response holds until it ends, the one being written and the
    /// next, read meanwhile: about 5 MB each). The first page is read before the answer starts,
    /// so a store that cannot answer gets a 503; a failure later cuts the stream (a chunked
    /// body without its last chunk).
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
        let first = try await Self.fromStore { try await store.rows(siteID: range.siteID, from: from, to: to, after: .start, limit: size) }
        let name = "tally-\(Self.fileSafe(range.siteID))-\(range.from)-\(range.to).\(format.rawValue)"
        let headers: HTTPFields = [.contentType: format.contentType, .contentDisposition: "attachment; filename=\"\(name)\""]
        return Response(status: .ok, headers: headers, body: ResponseBody { writer in
            var page = first
            var bytes = Array(format.header.utf8)
            while true {
                // The store reads the next page on its thread while this one is written out;
                // the slower of the two sets the pace.
                let after = page.next
                async let following = Self.page(store, range.siteID, from, to, after: after, size)
                // The read starts once its task runs: let it, before this thread is busy.
                await Task.yield()
                bytes.reserveCapacity(page.rows.count * 160)
                for row in page.rows { format.append(row, to: &bytes) }
                if !bytes.isEmpty { try await writer.write(ByteBuffer(bytes: bytes)) }
                bytes.removeAll(keepingCapacity: true)
                guard let next = try await following else { break }
                page = next
            }
            try await writer.finish(nil)
        })
    }

    /// The page after `after`; nil when there is none.
    private static func page(_ store: any EventStore, _ siteID: String, _ from: Int64, _ to: Int64, after: RowCursor?, _ size: Int) async throws -> RowPage? {
        guard let after else { return nil }
        return try await store.rows(siteID: siteID, from: from, to: to, after: after, limit: size)
    }

    /// A site id as a file name: letters, digits, `-`, `_` and `.` kept, anything else `_`.
    static func fileSafe(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.prefix(64).map {
            $0.properties.isAlphabetic && $0.isASCII || ("0"..."9").contains($0) || "-_.".unicodeScalars.contains($0) ? $0 : "_"
        }))
    }
}
