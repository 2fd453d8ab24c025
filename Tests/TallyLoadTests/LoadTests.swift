import Testing
import TallyCore
@testable import TallyLoad

@Suite struct DataShapeTests {
    @Test func sameSeedSameEvents() {
        var a = EventFactory(shape: DataShape(), seed: 42, now: 1_763_121_600_000_000)
        var b = EventFactory(shape: DataShape(), seed: 42, now: 1_763_121_600_000_000)
        var c = EventFactory(shape: DataShape(), seed: 43, now: 1_763_121_600_000_000)
        let xs = (0..<100).map { _ in a.next() }
        #expect(xs == (0..<100).map { _ in b.next() })
        #expect(xs != (0..<100).map { _ in c.next() })
    }

    @Test func zipfIsSkewedAndCoversRange() {
        let z = ZipfSampler(count: 100, exponent: 1.1)
        var rng = SplitMix64(seed: 7)
        var counts = [Int](repeating: 0, count: 100)
        for _ in 0..<100_000 { counts[z.sample(using: &rng)] += 1 }
        // Rank 0 vs rank 9: ratio should be near 10^1.1 ≈ 12.6.
        let ratio = Double(counts[0]) / Double(counts[9])
        #expect(ratio > 9 && ratio < 17, "ratio \(ratio)")
        #expect(counts[99] > 0)
        #expect(z.sample(0) == 0 && z.sample(1) == 99)
    }

    @Test func shapeSharesAreRespected() {
        var shape = DataShape()
        shape.anonymousShare = 0.3
        shape.otherTypeShare = 0.1
        shape.days = 2
        var f = EventFactory(shape: shape, seed: 1, now: 1_763_121_600_000_000)
        let events = (0..<20_000).map { _ in f.next() }
        let anon = Double(events.filter { $0.userID == nil }.count) / 20_000
        let clicks = Double(events.filter { !$0.isPageView }.count) / 20_000
        #expect(abs(anon - 0.3) < 0.02 && abs(clicks - 0.1) < 0.02)
        #expect(events.allSatisfy { $0.timestamp <= 1_763_121_600_000_000 && $0.timestamp > 1_763_121_600_000_000 - 2 * 86_400_000_000 })
        #expect(events.allSatisfy { $0.problems().isEmpty })
    }
}

@Suite struct LedgerTests {
    func ev(_ site: String, _ type: String, _ path: String?, _ user: String?) -> Event {
        Event(siteID: site, eventType: type, path: path, userID: user, timestamp: 0)
    }

    @Test func countsViewsUsersAndPathsLikeTheServer() {
        var a = Ledger()
        a.add(ev("s", "page_view", "/a", "u1"))
        a.add(ev("s", "click", "/a", "u2"))
        var b = Ledger()
        b.add(ev("s", "page_view", "/b", "u1"))
        b.add(ev("s", "page_view", "/a", nil))
        a.merge(b)
        let t = a.sites["s"]!
        #expect(t.views == 3 && t.users == ["u1", "u2"] && t.pathViews == ["/a": 2, "/b": 1])
        #expect(a.events == 4)
    }

    @Test func compareFindsEachKindOfDifference() {
        var t = SiteTally()
        t.views = 3
        t.users = ["u1", "u2"]
        t.pathViews = ["/a": 2, "/b": 1]
        let exact = StatsAnswer(site_id: "s", total_views: 3, unique_users: 2, top_paths: [.init(path: "/a", views: 2), .init(path: "/b", views: 1)])
        #expect(Verification.compare(t, exact, limit: 10).isEmpty)
        let wrong = StatsAnswer(site_id: "s", total_views: 2, unique_users: 1, top_paths: [.init(path: "/a", views: 1), .init(path: "/b", views: 1)])
        let problems = Verification.compare(t, wrong, limit: 10)
        #expect(problems.count == 3)
        // Only the top `limit` paths are compared, ties by path.
        #expect(Verification.compare(t, StatsAnswer(site_id: "s", total_views: 3, unique_users: 2, top_paths: [.init(path: "/a", views: 2)]), limit: 1).isEmpty)
    }

    @Test func histogramPercentilesInMilliseconds() {
        var r = LoadResult(mode: .http)
        for v in 1...1000 { _ = r.latency.record(UInt64(v * 1000)) }
        let p = Dictionary(uniqueKeysWithValues: r.percentiles)
        #expect(abs(p["p50"]! - 500) < 1 && abs(p["p99"]! - 990) < 1 && abs(p["max"]! - 1000) < 1)
    }
}
