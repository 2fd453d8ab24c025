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
        let v6 = rule("http://[::1]:8080")
        #expect(v6.description == "http://[::1]:8080" && v6.matches("http://[::1]:8080") && !v6.matches("http://[::1]"))
        #expect(rule("https://[2001:db8::1]").matches("https://[2001:DB8::1]:443"))
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
                    "https://shop.example:99999", "https://shop example", "*.", "https://.example", "http://[::1", "*.[::1]", "http://[::1]x"] {
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

    /// Wire senders: an AUTH key is looked up among all sites' write keys and then opens only
    /// its own site; origins do not apply; a key is checked again at every frame.
    @Test func wireKeysOpenTheirOwnSiteOnly() {
        let r = rules()
        let source = SiteRulesSource(r)
        var keys = WireKeys()
        #expect(r.checkWire(siteID: "keyed", keys: keys) == .keyRequired(site: "keyed"))
        #expect(r.checkWire(siteID: "shop", keys: keys) == nil && r.checkWire(siteID: "nobody", keys: keys) == nil)
        #expect(rules(closed: true).checkWire(siteID: "nobody", keys: keys) == .unregistered(site: "nobody"))
        #expect(keys.present(read.key, sites: source) == .unknown && keys.present("tally_w_nope", sites: source) == .unknown)
        #expect(r.checkWire(siteID: "keyed", keys: keys) == .keyRequired(site: "keyed"))
        // The same key on two sites (only by editing the store) opens whichever it was found in.
        guard case .accepted(let site, let id) = keys.present(write.key, sites: source) else { return #expect(Bool(false)) }
        #expect(["keyed", "both"].contains(site) && id == write.record.id)
        #expect(r.checkWire(siteID: site, keys: keys) == nil)
        // Revoked: the rules change, the connection's key stays and no longer opens the site.
        let revoked = SiteRules([SiteRecord(id: site, keys: [AccessKey.generate(.write, at: 2).record], createdAt: 0, updatedAt: 0)])
        #expect(revoked.checkWire(siteID: site, keys: keys) == .keyRequired(site: site))
        // Even once the site has no write key left (as HTTP refuses a key given in vain); a
        // connection that gave none may write, as anyone may.
        let keyless = SiteRules([SiteRecord(id: site, createdAt: 0, updatedAt: 0)])
        #expect(keyless.checkWire(siteID: site, keys: keys) == .keyRequired(site: site))
        #expect(keyless.checkWire(siteID: site, keys: WireKeys()) == nil)
        // The registry's change reaches the lookup: the key is no longer found.
        source.replace(revoked)
        #expect(keys.present(write.key, sites: source) == .unknown)
        // One key per site, at most 16 sites.
        var many = WireKeys()
        var records: [SiteRecord] = []
        var made: [String] = []
        for i in 0...WireKeys.capacity {
            let k = AccessKey.generate(.write, at: 1)
            records.append(SiteRecord(id: "s\(i)", keys: [k.record], createdAt: 0, updatedAt: 0))
            made.append(k.key)
        }
        let big = SiteRules(records)
        let bigSource = SiteRulesSource(big)
        for k in made.dropLast() {
            guard case .accepted = many.present(k, sites: bigSource) else { return #expect(Bool(false)) }
        }
        #expect(many.present(made.last!, sites: bigSource) == .tooManySites)
        // A second key of a site replaces the first, taking no more room.
        let second = AccessKey.generate(.write, at: 2)
        records[0].keys.append(second.record)
        let twoKeys = SiteRulesSource(SiteRules(records))
        guard case .accepted = many.present(second.key, sites: twoKeys) else { return #expect(Bool(false)) }
        #expect(SiteRules(records).checkWire(siteID: "s0", keys: many) == nil)
        guard case .accepted = many.present(made[0], sites: bigSource) else { return #expect(Bool(false)) }
        #expect(big.checkWire(siteID: "s15", keys: many) == nil && big.checkWire(siteID: "s16", keys: many) == .keyRequired(site: "s16"))
    }

    /// A connection's keys keep their hashes, the 16 most recent ones.
    @Test func recentKeysKeepTheirHashes() {
        var keys = PresentedKeys()
        for i in 0..<17 {
            var k = keys.take("Bearer key-\(i)")
            #expect(!k.isHashed)
            _ = k.digest()
            keys.keep(k)
        }
        #expect(keys.take("Bearer key-16").isHashed && keys.take("Bearer key-1").isHashed)
        #expect(!keys.take("Bearer key-0").isHashed)
        var k = keys.take(nil)
        _ = k.digest()
        keys.keep(k)
        #expect(!keys.take(nil).isHashed)
    }

    /// Stored entries this collector cannot read close the site rather than open it.
    @Test func unreadableStoredEntriesCloseTheSite() {
        let r = SiteRules([SiteRecord(id: "odd", origins: ["gopher://old.example"],
                                      keys: [SiteKeyRecord(id: "k1", kind: .write, hash: "not hex", createdAt: 0),
                                             SiteKeyRecord(id: "k2", kind: .read, hash: "abcd", createdAt: 0)],
                                      createdAt: 0, updatedAt: 0)])
        #expect(write(r, "odd") == .keyRequired(site: "odd"))
        #expect(write(r, "odd", origin: "https://any.example") == .originNotAllowed(site: "odd", origin: "https://any.example"))
        #expect(!read(r, "odd") && !read(r, "odd", auth: "Bearer abcd"))
    }

    /// Names are their bytes: a site id that differs only in Unicode normalisation is another site.
    @Test func sitesAreKeyedByTheirBytes() {
        let r = SiteRules([SiteRecord(id: "caf\u{E9}", keys: [write.record], createdAt: 0, updatedAt: 0)])
        #expect(write(r, "caf\u{E9}") == .keyRequired(site: "caf\u{E9}"))
        #expect(write(r, "cafe\u{301}") == nil)
    }
}

@Suite struct RateLimiterTests {
    let t0 = ContinuousClock.now

    @Test func aBurstThenTheRate() {
        let l = RateLimiter()
        for _ in 0..<10 { #expect(l.takeAddress("a", 1, rate: 10, now: t0) == nil) }
        let wait = l.takeAddress("a", 1, rate: 10, now: t0)
        #expect(wait == .milliseconds(100))
        // Refused requests take nothing: 0.1 s later exactly one more passes.
        #expect(l.takeAddress("a", 1, rate: 10, now: t0 + .milliseconds(100)) == nil)
        #expect(l.takeAddress("a", 1, rate: 10, now: t0 + .milliseconds(100)) != nil)
        // Other addresses and sites have their own buckets.
        #expect(l.takeAddress("b", 10, rate: 10, now: t0) == nil)
        #expect(l.takeSite("a", 10, rate: 10, now: t0) == nil)
    }

    /// A batch larger than the burst passes on a full bucket and leaves it in debt.
    @Test func batchesLargerThanTheBurstPassAndAreRepaid() {
        let l = RateLimiter()
        #expect(l.takeSite("s", 50, rate: 10, now: t0) == nil)
        // 40 in debt: 10 tokens (the burst needed) are back after 5 s, not before.
        #expect(l.takeSite("s", 10, rate: 10, now: t0 + .seconds(4)) == .seconds(1))
        #expect(l.takeSite("s", 10, rate: 10, now: t0 + .seconds(5)) == nil)
    }

    @Test func idleBucketsAreDroppedPastTheSweepSize() {
        let l = RateLimiter()
        for i in 0..<RateLimiter.sweepAt { _ = l.takeAddress("10.0.\(i / 256).\(i % 256)", 1, rate: 5, now: t0) }
        #expect(l.bucketCount == RateLimiter.sweepAt)
        #expect(l.takeAddress("new", 1, rate: 5, now: t0 + .seconds(3)) == nil)
        #expect(l.bucketCount == 1)
    }

    @Test func limitsNameEachLimitAndWaitForTheLongest() {
        let rules = SiteRules([SiteRecord(id: "slow", rate: 2, createdAt: 0, updatedAt: 0), SiteRecord(id: "free", createdAt: 0, updatedAt: 0)])
        let limits = RateLimits(perAddress: 100)
        #expect(!limits.off(rules) && RateLimits().off(SiteRules()) && !RateLimits().off(rules))
        #expect(limits.check([("slow", 2), ("free", 50)], address: "1.2.3.4", rules: rules, now: t0) == nil)
        let r = limits.check([("slow", 1), ("free", 50)], address: "1.2.3.4", rules: rules, now: t0)
        #expect(r?.problems == ["this client may send 100 events per second", #"site "slow" may send 2 events per second"#])
        #expect(r?.wait == .milliseconds(500))
    }
}
