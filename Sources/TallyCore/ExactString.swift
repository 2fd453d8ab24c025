#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A string compared, hashed and ordered by its UTF-8 bytes, as SQLite and PostgreSQL compare
/// text. Swift's `String` equality is canonical equivalence: `café` (NFC) and `cafe\u{301}`
/// (NFD) are equal `String`s, so a `[String: …]` cache or a `Set<String>` would merge two
/// sites, paths or users that the store keeps apart. Every key built from a name uses this.
///
/// Cost: one `memcmp` / one hash over the bytes (native strings are contiguous UTF-8); the
/// same as `String` for ASCII and cheaper than it for anything that needs normalizing.
public struct ExactString: Hashable, Comparable, Sendable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var string: String

    public init(_ string: String) { self.string = string }
    public init(stringLiteral value: String) { self.string = value }

    public var description: String { string }

    public static func == (a: ExactString, b: ExactString) -> Bool { a.string.utf8Equals(b.string) }

    public static func < (a: ExactString, b: ExactString) -> Bool { a.string.utf8Less(b.string) }

    public func hash(into hasher: inout Hasher) {
        var s = string
        s.withUTF8 { hasher.combine(bytes: UnsafeRawBufferPointer($0)) }
        hasher.combine(string.utf8.count)
    }
}

extension String {
    /// Byte equality of the UTF-8 forms (not canonical equivalence).
    ///
    /// Fast path: two `String`s with the same 16-byte representation are the same bytes (a
    /// small string holds its bytes inline, a large one points to one buffer), which is what
    /// nearly every comparison of a cache lookup or a repeated site finds.
    @inlinable public func utf8Equals(_ other: String) -> Bool {
        if unsafeBitCast(self, to: (UInt64, UInt64).self) == unsafeBitCast(other, to: (UInt64, UInt64).self) { return true }
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in x.count == y.count && (x.count == 0 || memcmp(x.baseAddress!, y.baseAddress!, x.count) == 0) }
        }
    }

    /// Byte order of the UTF-8 forms (SQLite's BINARY collation, PostgreSQL's "C").
    @inlinable public func utf8Less(_ other: String) -> Bool {
        var a = self, b = other
        return a.withUTF8 { x in
            b.withUTF8 { y in
                let n = min(x.count, y.count)
                let c = n == 0 ? 0 : memcmp(x.baseAddress!, y.baseAddress!, n)
                return c < 0 || (c == 0 && x.count < y.count)
            }
        }
    }
}

extension Optional where Wrapped == String {
    @inlinable public func utf8Equals(_ other: String?) -> Bool {
        switch (self, other) {
        case (nil, nil): true
        case (let a?, let b?): a.utf8Equals(b)
        default: false
        }
    }
}
