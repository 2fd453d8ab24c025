import Foundation
import TallyCore

/// Reads the seeds' JSON event shape into ``RawEvent`` without failing on the first bad
/// field, so a 400 can name every problem.
struct JSONEvent: Decodable {
    var raw = RawEvent()
    var isObject = true

    init(raw: RawEvent) { self.raw = raw }

    private struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        guard let c = try? decoder.container(keyedBy: Key.self) else {
            isObject = false
            return
        }
        raw.siteID = Self.field(c, "site_id")
        raw.eventType = Self.field(c, "event_type")
        raw.path = Self.field(c, "path")
        raw.userID = Self.field(c, "user_id")
        raw.timestamp = Self.field(c, "timestamp")
    }

    private static func field(_ c: KeyedDecodingContainer<Key>, _ name: String) -> RawField {
        let key = Key(stringValue: name)
        guard c.contains(key) else { return .absent }
        if (try? c.decodeNil(forKey: key)) == true { return .null }
        if let s = try? c.decode(String.self, forKey: key) { return .string(s) }
        if (try? c.decode(Bool.self, forKey: key)) != nil { return .wrongType("boolean") }
        if (try? c.decode(Double.self, forKey: key)) != nil { return .wrongType("number") }
        return .wrongType("object or array")
    }
}

/// Body parsing for `POST /event` and `POST /events`.
enum EventBodyParser {
    static let maxBatchEvents = HTTPIngest.maxBatchEvents

    /// The body of `POST /event`, straight from the request buffer.
    static func single(_ bytes: UnsafeRawBufferPointer, receivedAt: Int64) throws(IngestRefusal) -> Event {
        guard let raw = FastEventJSON.object(bytes) else { return try single(Data(bytes), receivedAt: receivedAt) }
        return try validated(raw, receivedAt: receivedAt)
    }

    /// The body of `POST /events`, straight from the request buffer.
    static func batch(_ bytes: UnsafeRawBufferPointer, receivedAt: Int64) throws(IngestRefusal) -> [Event] {
        guard let raws = FastEventJSON.array(bytes), !raws.isEmpty, raws.count <= maxBatchEvents else {
            return try batch(Data(bytes), receivedAt: receivedAt)
        }
        var events: [Event] = []
        events.reserveCapacity(raws.count)
        for raw in raws {
            guard case .success(let e) = raw.validate(receivedAt: receivedAt) else {
                // The slow path names every problem of every event.
                return try batch(Data(bytes), receivedAt: receivedAt)
            }
            events.append(e)
        }
        return events
    }

    private static func validated(_ raw: RawEvent, receivedAt: Int64) throws(IngestRefusal) -> Event {
        switch raw.validate(receivedAt: receivedAt) {
        case .success(let e): return e
        case .failure(let v):
            throw .invalidPayload(v.problems)
        }
    }

    static func single(_ data: Data, receivedAt: Int64) throws(IngestRefusal) -> Event {
        let decoded: JSONEvent
        do {
            decoded = try JSONDecoder().decode(JSONEvent.self, from: data)
        } catch {
            throw malformed(error)
        }
        guard decoded.isObject else {
            throw .invalidPayload(["body must be a JSON object"])
        }
        switch decoded.raw.validate(receivedAt: receivedAt) {
        case .success(let e): return e
        case .failure(let v):
            throw .invalidPayload(v.problems)
        }
    }

    /// A JSON array of events, or NDJSON (one object per line). All or nothing.
    static func batch(_ data: Data, receivedAt: Int64) throws(IngestRefusal) -> [Event] {
        let firstByte = data.first { !($0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09) }
        var items: [JSONEvent] = []
        if firstByte == UInt8(ascii: "[") {
            do {
                items = try JSONDecoder().decode([JSONEvent].self, from: data)
            } catch {
                throw malformed(error)
            }
        } else {
            let decoder = JSONDecoder()
            var lineNumber = 0
            for line in data.split(separator: 0x0A, omittingEmptySubsequences: false) {
                lineNumber += 1
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x0D || $0 == 0x09 }) { continue }
                if let raw = line.withUnsafeBytes({ FastEventJSON.object($0) }) {
                    items.append(JSONEvent(raw: raw))
                    continue
                }
                do {
                    items.append(try decoder.decode(JSONEvent.self, from: Data(line)))
                } catch {
                    throw .malformedJSON("line \(lineNumber): \(describe(error))")
                }
            }
        }
        guard !items.isEmpty else {
            throw .invalidPayload(["batch must contain at least one event"])
        }
        guard items.count <= maxBatchEvents else {
            throw .tooManyEvents(items.count)
        }
        var events: [Event] = []
        events.reserveCapacity(items.count)
        var problems: [String] = []
        for (i, item) in items.enumerated() {
            guard item.isObject else {
                problems.append("events[\(i)]: must be a JSON object")
                continue
            }
            switch item.raw.validate(receivedAt: receivedAt) {
            case .success(let e): events.append(e)
            case .failure(let v): problems += v.problems.map { "events[\(i)]: \($0)" }
            }
        }
        guard problems.isEmpty else {
            throw .invalidPayload(problems)
        }
        return events
    }

    private static func malformed(_ error: any Error) -> IngestRefusal {
        .malformedJSON(describe(error))
    }

    private static func describe(_ error: any Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            let underlying = (ctx.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
            return underlying ?? ctx.debugDescription
        }
        if case DecodingError.typeMismatch(_, let ctx) = error { return ctx.debugDescription }
        return "body is not valid JSON"
    }
}
