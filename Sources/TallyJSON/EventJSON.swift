import TallyCore

/// The seeds' JSON event format, as ``TallyWire`` is the binary one: request bodies in,
/// validated ``Event``s or an ``EventJSONError`` out.
///
/// Invariants:
/// - **Strict RFC 8259.** Trailing commas, invalid UTF-8 anywhere (raw bytes of strings,
///   overlong forms, encoded surrogates), lone `\u` surrogates, raw control characters in
///   strings, duplicate keys in any object (compared by their unescaped bytes), leading zeros
///   and nesting deeper than ``maxDepth`` are all malformed, reported with the byte offset of
///   the first problem. JavaScript and Python keep the last of duplicate keys and
///   `JSONDecoder` the first; refusing them leaves no parser differential.
/// - **One pass, bounded work.** A batch is read element by element and refused at element
///   `maxEvents + 1` without reading further; after the first invalid event no more events are
///   built (only problems, at most ``maxProblems`` of them are listed).
/// - **Fast path.** An event object with only the known keys, unescaped string values or
///   null, and no duplicates is read by ``FastEventObject`` at a few hundred nanoseconds;
///   anything else is read again from the same offset by the strict reader. Both give the same
///   ``RawEvent`` whenever the fast path answers (tested, and fuzzed against each other).
public enum EventJSON {
    public static let maxDepth = 64
    /// Problems listed in one refusal; the rest are counted in a last line.
    public static let maxProblems = 100

    /// The body of `POST /event`: one JSON object.
    /// `fastPath: false` reads it with the strict reader alone (for differential tests).
    public static func single(_ bytes: UnsafeRawBufferPointer, receivedAt: Int64, fastPath: Bool = true) throws(EventJSONError) -> Event {
        var p = EventJSONReader(bytes, fastPath: fastPath)
        p.skipSpace()
        let raw = try p.element()
        p.skipSpace()
        guard p.atEnd else { throw p.malformed("unexpected data after the JSON value") }
        guard let raw else { throw .invalid(["body must be a JSON object"]) }
        switch raw.validate(receivedAt: receivedAt) {
        case .success(let e): return e
        case .failure(let v): throw .invalid(v.problems)
        }
    }

    /// The body of `POST /events`: a JSON array of objects, or NDJSON (one object per line).
    /// All or nothing: every problem of every event is reported, and no event is returned.
    public static func batch(_ bytes: UnsafeRawBufferPointer, receivedAt: Int64, maxEvents: Int,
                             fastPath: Bool = true) throws(EventJSONError) -> [Event] {
        var p = EventJSONReader(bytes, fastPath: fastPath)
        var out = BatchCollector(receivedAt: receivedAt, maxEvents: maxEvents)
        p.skipSpace()
        if p.peek == UInt8(ascii: "[") {
            p.i += 1
            p.skipSpace()
            if !p.take(UInt8(ascii: "]")) {
                while true {
                    p.skipSpace()
                    try out.add(try p.element())
                    p.skipSpace()
                    if p.take(UInt8(ascii: ",")) { continue }
                    if p.take(UInt8(ascii: "]")) { break }
                    throw p.malformed("expected ',' or ']' after an array element")
                }
            }
            p.skipSpace()
            guard p.atEnd else { throw p.malformed("unexpected data after the JSON value") }
        } else {
            // NDJSON: each line alone is one JSON value; blank lines are skipped.
            let total = p.end
            var line = 0
            while p.i < total {
                line += 1
                var lineEnd = p.i
                while lineEnd < total && bytes[lineEnd] != 0x0A { lineEnd += 1 }
                p.end = lineEnd
                p.line = line
                p.skipSpace()
                if !p.atEnd {
                    try out.add(try p.element())
                    p.skipSpace()
                    guard p.atEnd else { throw p.malformed("unexpected data after the JSON value") }
                }
                p.i = lineEnd + 1
            }
        }
        return try out.finish()
    }
}

/// Why a body was refused.
public enum EventJSONError: Error, Equatable, Sendable {
    /// Not JSON: where (byte offset, and line for NDJSON) and what.
    case malformed(String)
    /// JSON, but not valid events: every problem found.
    case invalid([String])
    /// More events than one request may carry (the limit).
    case tooManyEvents(limit: Int)
}

/// Validates a batch's elements as they are read, counting and listing problems.
struct BatchCollector {
    let receivedAt: Int64
    let maxEvents: Int
    var count = 0
    var events: [Event] = []
    var problems: [String] = []
    var unlisted = 0

    init(receivedAt: Int64, maxEvents: Int) {
        self.receivedAt = receivedAt
        self.maxEvents = maxEvents
    }

    mutating func add(_ raw: RawEvent?) throws(EventJSONError) {
        let index = count
        count += 1
        guard count <= maxEvents else { throw .tooManyEvents(limit: maxEvents) }
        guard let raw else { return problem("events[\(index)]: must be a JSON object") }
        switch raw.validate(receivedAt: receivedAt) {
        case .success(let e):
            if problems.isEmpty && unlisted == 0 { events.append(e) }
        case .failure(let v):
            for p in v.problems { problem("events[\(index)]: \(p)") }
        }
    }

    private mutating func problem(_ p: String) {
        if !events.isEmpty { events = [] }
        if problems.count < EventJSON.maxProblems { problems.append(p) } else { unlisted += 1 }
    }

    func finish() throws(EventJSONError) -> [Event] {
        guard count > 0 else { throw .invalid(["batch must contain at least one event"]) }
        guard problems.isEmpty else {
            throw .invalid(unlisted == 0 ? problems : problems + ["and \(unlisted) more problems"])
        }
        return events
    }
}
