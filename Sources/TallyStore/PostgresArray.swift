import NIOCore
import PostgresNIO

/// A one-dimensional array parameter in PostgreSQL's binary format, written element by element
/// straight into the bytes that are sent. A load sends a million values and more; PostgresNIO's
/// `[String]` parameters keep every value as a Swift value first and then encode each one
/// through its generic path, which measured about 2 s of a 1M-event load on the collector's
/// side. Elements may be NULL (the array's flag says so), so no sentinel stands in for it.
struct PostgresArray<Element: PostgresArrayElement>: PostgresNonThrowingEncodable {
    static var psqlType: PostgresDataType { Element.arrayType }
    static var psqlFormat: PostgresFormat { .binary }

    private(set) var count = 0
    private var hasNull = false
    private var body = ByteBuffer()

    init(reservingBytes bytes: Int = 0) {
        body.reserveCapacity(bytes)
    }

    mutating func append(_ value: Element.Value?) {
        count += 1
        guard let value else {
            hasNull = true
            body.writeInteger(Int32(-1))
            return
        }
        Element.write(value, into: &body)
    }

    mutating func removeAll() {
        count = 0
        hasNull = false
        body.clear()
    }

    /// The header (one dimension of `count` elements from index 1), then the elements.
    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(Int32(1))
        buffer.writeInteger(Int32(hasNull ? 1 : 0))
        buffer.writeInteger(Element.elementType.rawValue)
        buffer.writeInteger(Int32(count))
        buffer.writeInteger(Int32(1))
        buffer.writeImmutableBuffer(body)
    }
}

/// What a ``PostgresArray`` holds: the element's type ids and its binary form (length, bytes).
protocol PostgresArrayElement: Sendable {
    associatedtype Value
    static var elementType: PostgresDataType { get }
    static var arrayType: PostgresDataType { get }
    static func write(_ value: Value, into body: inout ByteBuffer)
}

/// A name as `text`, in its stored spelling (``PostgresName``).
enum PostgresNameElement: PostgresArrayElement {
    static var elementType: PostgresDataType { .text }
    static var arrayType: PostgresDataType { .textArray }
    static func write(_ name: String, into body: inout ByteBuffer) {
        let stored = PostgresName.stored(name)
        body.writeInteger(Int32(stored.utf8.count))
        body.writeString(stored)
    }
}

enum PostgresInt64Element: PostgresArrayElement {
    static var elementType: PostgresDataType { .int8 }
    static var arrayType: PostgresDataType { .int8Array }
    static func write(_ value: Int64, into body: inout ByteBuffer) {
        body.writeInteger(Int32(8))
        body.writeInteger(value)
    }
}

enum PostgresBoolElement: PostgresArrayElement {
    static var elementType: PostgresDataType { .bool }
    static var arrayType: PostgresDataType { .boolArray }
    static func write(_ value: Bool, into body: inout ByteBuffer) {
        body.writeInteger(Int32(1))
        body.writeInteger(UInt8(value ? 1 : 0))
    }
}

/// A `timestamptz` from microseconds since 1970: PostgreSQL counts microseconds since
/// 2000-01-01 UTC. Events lie within 1970...2099 (``EventLimits``), so the shift cannot overflow;
/// Foundation's `Date` would go through a `Double`.
enum PostgresTimestampElement: PostgresArrayElement {
    static let unixToPostgresEpoch: Int64 = 946_684_800_000_000
    static var elementType: PostgresDataType { .timestamptz }
    static var arrayType: PostgresDataType { .timestamptzArray }
    static func write(_ unixMicroseconds: Int64, into body: inout ByteBuffer) {
        body.writeInteger(Int32(8))
        body.writeInteger(unixMicroseconds - unixToPostgresEpoch)
    }
}

/// A day number (days since 1970-01-01) as `date`, which PostgreSQL counts from 2000-01-01.
enum PostgresDayElement: PostgresArrayElement {
    static let unixToPostgresEpoch: Int32 = 10_957
    static var elementType: PostgresDataType { .date }
    static var arrayType: PostgresDataType { .dateArray }
    static func write(_ day: Int32, into body: inout ByteBuffer) {
        body.writeInteger(Int32(4))
        body.writeInteger(day - unixToPostgresEpoch)
    }
}

/// One `timestamptz` parameter in binary, shifted as ``PostgresTimestampElement`` shifts array
/// elements.
struct PostgresTimestamp: PostgresNonThrowingEncodable {
    static var psqlType: PostgresDataType { .timestamptz }
    static var psqlFormat: PostgresFormat { .binary }
    let unixMicroseconds: Int64

    init(_ unixMicroseconds: Int64) { self.unixMicroseconds = unixMicroseconds }

    func encode<JSONEncoder: PostgresJSONEncoder>(into buffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>) {
        buffer.writeInteger(unixMicroseconds - PostgresTimestampElement.unixToPostgresEpoch)
    }
}
