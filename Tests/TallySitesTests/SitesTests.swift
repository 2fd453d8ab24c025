import Testing
import TallyCore
@testable import TallySites

@Suite struct AccessKeyTests {
    @Test func keysAreURLSafeRandomAndStoredOnlyAsTheirHash() {
        let (k1, r1) = AccessKey.generate(.write, at: 5)
        let (k2, r2) = AccessKey.generate(.read, at: 6)
        #expect(k1.hasPrefix("tally_w_") && k2.hasPrefix("tally_r_"))
        #expect(k1.utf8.count == 8 + 43 && k2.utf8.count == 8 + 43)
        let urlSafe = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
        #expect(k1.dropFirst(8).allSatisfy(urlSafe.contains) && k2.dropFirst(8).allSatisfy(urlSafe.contains))
        #expect(k1 != k2 && r1.hash != r2.hash)
        #expect(r1.hash == AccessKey.hash(k1) && r1.hash.count == 64 && !r1.hash.contains(String(k1.dropFirst(8))))
        #expect(r1.id == "k" + r1.hash.prefix(12) && r1.kind == .write && r1.createdAt == 5)
    }

    /// FIPS 180-2's "abc" vector, through the hex the store keeps.
    @Test func hashIsSHA256InLowerCaseHex() {
        #expect(AccessKey.hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(AccessKey.bytes(hex: AccessKey.hash("abc")) == AccessKey.digest("abc"))
        #expect(AccessKey.bytes(hex: "0g") == nil && AccessKey.bytes(hex: "abc") == nil)
    }

    /// RFC 4648 §10 vectors, without padding.
    @Test func base64URLMatchesTheRFC() {
        let cases = [("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"), ("foobar", "Zm9vYmFy")]
        for (plain, encoded) in cases { #expect(AccessKey.base64URL(Array(plain.utf8)) == encoded) }
        #expect(AccessKey.base64URL([0xFB, 0xFF]) == "-_8")
    }

    @Test func bearerHeaders() {
        #expect(AccessKey.bearer("Bearer abc") == "abc")
        #expect(AccessKey.bearer("bearer   abc") == "abc")
        #expect(AccessKey.bearer("BEARER abc") == "abc")
        #expect(AccessKey.bearer("Basic abc") == nil)
        #expect(AccessKey.bearer("Bearer") == nil)
        #expect(AccessKey.bearer("Bearer ") == nil)
        #expect(AccessKey.bearer(nil) == nil)
    }

    @Test func equalComparesWholeDigests() {
        let a = AccessKey.digest("one"), b = AccessKey.digest("two")
        #expect(AccessKey.equal(a, a) && !AccessKey.equal(a, b) && !AccessKey.equal(a, Array(a.dropLast())))
    }
}

@Suite struct OriginRuleTests {
    func rule(_ s: String) -> OriginRule { try! OriginRule.parse(s).get() }

    @Test func exactOriginsMatchSchemeHostAndPort() {
        let r = rule("https://Shop.Example")
        #expect(r.description == "https://shop.example")
        #expect(r.matches("https://shop.example") && r.matches("HTTPS://SHOP.EXAMPLE") && r.matches("https://shop.example:443"))
        #expect(!r.matches("http://shop.example") && !r.matches("https://shop.example:8443"))
        #expect(!r.matches("https://a.shop.example") && !r.matches("https://shop.example.evil") && !r.matches("null"))
        let local = rule("http://localhost:8080")
        #expect(local.matches("http://localhost:8080") && !local.matches("http://localhost"))
        #expect(rule("http://localhost:80").description == "http://localhost")
    }

    @Test func wildcardsMatchSubdomainsOnly() {
        let any = rule("*.example.com")
        #expect(any.matches("https://a.example.com") && any.matches("http://b.a.example.com"))
        #expect(!any.matches("https://example.com") && !any.matches("https://badexample.com") && !any.matches("https://a.example.com.evil"))
        #expect(!any.matches("https://a.example.com:8443"))
        let secure = rule("https://*.example.com")
        #expect(secure.matches("https://a.example.com") && !secure.matches("http://a.example.com"))
    }

    @Test func badRulesSayWhy() {
        for bad in ["shop.example", "ftp://shop.example", "https://shop.example/path", "https://", "https://shop.example:0",
                    "https://shop.example:99999", "https://shop example", "*.", "https://.example"] {
            guard case .failure(let e) = OriginRule.parse(bad) else {
                Issue.record("\(bad) parsed")
                continue
            }
            #expect(e.description.contains(bad))
        }
    }
}

@Suite struct SiteRulesTests {
    let write = AccessKey.generate(.write, at: 1)
    let read = AccessKey.generate(.read, at: 1)

    func rules(closed: Bool = false) -> SiteRules {
        SiteRules([
            SiteRecord(id: "keyed", keys: [write.record, read.record], createdAt: 0, updatedAt: 0),
            SiteRecord(id: "shop", origins: ["https://shop.example", "*.shop.example"], createdAt: 0, updatedAt: 0),
            SiteRecord(id: "both", origins: ["https://both.example"], keys: [write.record], createdAt: 0, updatedAt: 0),
            SiteRecord(id: "plain", createdAt: 0, updatedAt: 0),
        ], closed: closed)
    }

    func write(_ r: SiteRules, _ site: String, origin: String? = nil, auth: String? = nil) -> SiteRules.WriteRefusal? {
        var key = PresentedKey(authorization: auth)
        return r.checkWrite(siteID: site, origin: origin, key: &key)
    }

    func read(_ r: SiteRules, _ site: String, auth: String? = nil, query: Substring? = nil) -> Bool {
        var key = PresentedKey(authorization: auth, query: query)
        return r.mayRead(siteID: site, key: &key)
    }

    @Test func nothingRegisteredIsAllOpen() {
        #expect(SiteRules().allOpen && !SiteRules(closed: true).allOpen && !rules().allOpen)
        #expect(write(SiteRules(), "anything") == nil && read(SiteRules(), "anything"))
    }

    @Test func writeRules() {
        let r = rules()
        #expect(write(r, "unregistered") == nil && write(r, "unregistered", origin: "https://x.example") == nil)
        #expect(write(r, "plain") == nil && write(r, "plain", origin: "https://x.example") == nil)
        // Keys: none, wrong, a read key, the write key.
        #expect(write(r, "keyed") == .keyRequired(site: "keyed"))
        #expect(write(r, "keyed", auth: "Bearer nope") == .keyRequired(site: "keyed"))
        #expect(write(r, "keyed", auth: "Bearer " + read.key) == .keyRequired(site: "keyed"))
        #expect(write(r, "keyed", auth: "Bearer " + write.key) == nil)
        // A site with keys and no origins takes no keyless browser writes.
        #expect(write(r, "keyed", origin: "https://keyed.example") == .keyRequired(site: "keyed"))
        // Origins.
        #expect(write(r, "shop", origin: "https://shop.example") == nil)
        #expect(write(r, "shop", origin: "https://www.shop.example") == nil)
        #expect(write(r, "shop", origin: "https://evil.example") == .originNotAllowed(site: "shop", origin: "https://evil.example"))
        #expect(write(r, "shop") == nil)
        // Origins and keys: the page, or the key.
        #expect(write(r, "both", origin: "https://both.example") == nil)
        #expect(write(r, "both", origin: "https://evil.example") == .originNotAllowed(site: "both", origin: "https://evil.example"))
        #expect(write(r, "both", origin: "https://evil.example", auth: "Bearer " + write.key) == nil)
        #expect(write(r, "both") == .keyRequired(site: "both"))
        #expect(write(r, "both", auth: "Bearer " + write.key) == nil)
    }

    @Test func closedRefusesUnregisteredSitesOnly() {
        let r = rules(closed: true)
        #expect(write(r, "unregistered") == .unregistered(site: "unregistered"))
        #expect(write(r, "plain") == nil)
        #expect(!read(r, "unregistered") && read(r, "plain"))
    }

    @Test func readRules() {
        let r = rules()
        #expect(read(r, "unregistered") && read(r, "shop"))
        #expect(!read(r, "keyed") && !read(r, "keyed", auth: "Bearer " + write.key) && !read(r, "keyed", auth: "Bearer x"))
        #expect(read(r, "keyed", auth: "Bearer " + read.key) && read(r, "keyed", query: Substring(read.key)))
        #expect(!read(r, "keyed", query: ""))
    }

    /// Names are their bytes: a site id that differs only in Unicode normalisation is another site.
    @Test func sitesAreKeyedByTheirBytes() {
        let r = SiteRules([SiteRecord(id: "caf\u{E9}", keys: [write.record], createdAt: 0, updatedAt: 0)])
        #expect(write(r, "caf\u{E9}") == .keyRequired(site: "caf\u{E9}"))
        #expect(write(r, "cafe\u{301}") == nil)
    }
}
