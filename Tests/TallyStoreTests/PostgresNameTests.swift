import Testing
import TallyCore
@testable import TallyStore

@Suite struct PostgresNameTests {
    static let names = ["", "/a", "/a\u{0}b", "\u{0}", "\u{0}\u{0}", "\u{FFFF}", "\u{FFFF}0", "\u{FFFF}\u{FFFF}", "0\u{FFFF}",
                        "caf\u{E9}", "cafe\u{301}", "\u{FFFF}\u{0}", "x\u{FFFE}\u{10FFFF}"]

    @Test func storedSpellingsHaveNoNULAndMapBackOneToOne() {
        var seen = Set<ExactString>()
        for n in Self.names {
            let stored = PostgresName.stored(n)
            #expect(!stored.utf8.contains(0))
            #expect(PostgresName.name(stored).utf8Equals(n))
            #expect(seen.insert(ExactString(stored)).inserted, "two names stored alike: \(n.unicodeScalars.map(\.value))")
        }
        // The identity for names without U+0000 and U+FFFF.
        for n in ["/a", "caf\u{E9}", "cafe\u{301}", "x\u{FFFE}\u{10FFFF}", ""] { #expect(PostgresName.stored(n).utf8Equals(n)) }
    }

    @Test func exactStringsKeepCanonicallyEquivalentNamesApart() {
        #expect("caf\u{E9}" == "cafe\u{301}")  // Swift's String equality, which keys must not use
        #expect(ExactString("caf\u{E9}") != ExactString("cafe\u{301}"))
        #expect(Set([ExactString("caf\u{E9}"), ExactString("cafe\u{301}")]).count == 2)
        #expect(ExactString("a") < ExactString("a\u{0}") && ExactString("Z") < ExactString("a"))
    }
}
