import Testing
import TallyCore

@Suite struct UTF8TextTests {
    func checked(_ bytes: [UInt8]) -> String? {
        bytes.withUnsafeBytes { String(checkedUTF8: $0) }
    }

    @Test func keepsValidTextByteForByte() {
        for text in ["", "page_view", "/pricing?plan=pro&x=1", "café", "cafe\u{301}", "日本語のページ", "🎉 launch",
                     "replacement \u{FFFD} is valid text", String(repeating: "a", count: 1000) + "é"] {
            let bytes = Array(text.utf8)
            #expect(checked(bytes).map { Array($0.utf8) } == bytes, "\(text)")
        }
    }

    @Test func rejectsInvalidUTF8() {
        let invalid: [[UInt8]] = [
            [0x80],                          // lone continuation byte
            [0x61, 0x62, 0xC3],              // truncated two-byte sequence at the end
            [0xC0, 0xAF],                    // overlong "/"
            [0xE0, 0x80, 0xAF],              // overlong, three bytes
            [0xED, 0xA0, 0x80],              // a UTF-16 surrogate
            [0xF4, 0x90, 0x80, 0x80],        // beyond U+10FFFF
            [0xFF],
            Array("12345678".utf8) + [0xFE] + Array("abc".utf8),  // past the word-at-a-time scan
        ]
        for bytes in invalid { #expect(checked(bytes) == nil, "\(bytes)") }
    }

    /// The same verdict as the standard library's validating initializer on random bytes,
    /// mostly ASCII with some high bytes (where decoders go wrong).
    @Test func agreesWithTheStandardLibrary() {
        var rng = SystemRandomNumberGenerator()
        for _ in 0..<20_000 {
            let count = Int.random(in: 0...24, using: &rng)
            let bytes = (0..<count).map { _ -> UInt8 in
                Int.random(in: 0..<4, using: &rng) == 0 ? UInt8.random(in: 0x80...0xFF, using: &rng) : UInt8.random(in: 0...0x7F, using: &rng)
            }
            let expected = String(validating: bytes, as: UTF8.self)
            #expect(checked(bytes) == expected, "\(bytes)")
        }
    }
}
