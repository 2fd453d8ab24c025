import Foundation
import TallyCore

/// SplitMix64: tiny, fast, and the same sequence on every platform for a given seed.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Samples ranks 0..<n with probability proportional to 1/(rank+1)^s (Zipf-like): a few pages
/// get most views, as on real sites.
public struct ZipfSampler: Sendable {
    let cdf: [Double]

    public init(count: Int, exponent: Double = 1.1) {
        precondition(count > 0)
        var acc = 0.0
        var c: [Double] = []
        c.reserveCapacity(count)
        for k in 1...count {
            acc += 1.0 / pow(Double(k), exponent)
            c.append(acc)
        }
        cdf = c.map { $0 / acc }
    }

    public func sample(_ u: Double) -> Int {
        var lo = 0, hi = cdf.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cdf[mid] < u { lo = mid + 1 } else { hi = mid }
        }
        return lo
    }

    public func sample<R: RandomNumberGenerator>(using rng: inout R) -> Int {
        sample(Double(rng.next() >> 11) * 0x1.0p-53)
    }
}

/// What the generated traffic looks like.
public struct DataShape: Sendable {
    public var sites: Int = 10
    public var paths: Int = 200
    public var users: Int = 10_000
    /// Share of events without a user_id.
    public var anonymousShare: Double = 0.2
    /// Share of events that are not page views ("click").
    public var otherTypeShare: Double = 0.1
    /// Timestamps spread over this many UTC days ending now.
    public var days: Int = 7
    /// Sites drawn Zipf-skewed (a few big sites, a long tail) instead of evenly.
    public var zipfSites = false
    /// Distinguishes this run's sites from earlier runs on the same server.
    public var runID: String = "run"

    public init() {}

    public func siteID(_ i: Int) -> String { "load-\(runID)-\(i)" }
}

/// Deterministic event source for one worker.
public struct EventFactory: Sendable {
    let shape: DataShape
    let zipf: ZipfSampler
    let siteZipf: ZipfSampler?
    var rng: SplitMix64
    let now: Int64

    public init(shape: DataShape, seed: UInt64, now: Int64 = Timestamp.now()) {
        self.shape = shape
        self.zipf = ZipfSampler(count: shape.paths)
        self.siteZipf = shape.zipfSites ? ZipfSampler(count: shape.sites) : nil
        self.rng = SplitMix64(seed: seed)
        self.now = now
    }

    public mutating func next() -> Event {
        next(site: nextSite())
    }

    /// The next event of one site (edge proxies batch per site).
    public mutating func next(site: Int) -> Event {
        let path = "/page/\(zipf.sample(using: &rng))"
        let u = Double(rng.next() >> 11) * 0x1.0p-53
        let user: String? = u < shape.anonymousShare ? nil : "user-\(rng.next() % UInt64(shape.users))"
        let t = Double(rng.next() >> 11) * 0x1.0p-53
        let type = t < shape.otherTypeShare ? "click" : Event.pageView
        let span = Int64(shape.days) * 86_400_000_000
        let ts = now - Int64(rng.next() % UInt64(max(1, span)))
        return Event(siteID: shape.siteID(site), eventType: type, path: path, userID: user, timestamp: ts)
    }

    public mutating func nextSite() -> Int {
        if let siteZipf { return siteZipf.sample(using: &rng) }
        return Int(rng.next() % UInt64(shape.sites))
    }

    /// What a browser sends with each event (`--browser`).
    public static let browserHeaders = [
        ("User-Agent", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
        ("Origin", "https://site.example"),
    ]
    public static let browserReferrer = "https://www.google.com/search?q=tally"

    /// The seeds' JSON shape.
    public static func json(_ e: Event) -> String {
        var s = "{\"site_id\":\(JSONText.quote(e.siteID)),\"event_type\":\(JSONText.quote(e.eventType))"
        if let p = e.path { s += ",\"path\":\(JSONText.quote(p))" }
        if let u = e.userID { s += ",\"user_id\":\(JSONText.quote(u))" }
        if let r = e.referrer { s += ",\"referrer\":\(JSONText.quote(r))" }
        s += ",\"timestamp\":\"\(Timestamp.format(e.timestamp))\"}"
        return s
    }
}
