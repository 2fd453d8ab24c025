import Synchronization
import TallyCore

/// Token buckets in memory, one per registered site with a rate and one per client address
/// (`--ip-rate`): a bucket holds up to `rate` tokens (the burst) and gains `rate` per second.
/// A request for `n` events is let through when the bucket holds `min(n, rate)` tokens, and
/// takes all `n` (a batch larger than the burst leaves the bucket in debt, so the average rate
/// holds and such a batch is not refused for ever). A refusal takes nothing and says how long
/// to wait. Per collector: collectors sharing a store each allow the rate.
///
/// Memory: a full bucket is the same as no bucket, so past ``sweepAt`` buckets the full ones
/// are dropped; at most one bucket per address seen within about one refill time remains.
public final class RateLimiter: Sendable {
    struct Bucket {
        var tokens: Double
        var at: ContinuousClock.Instant
    }

    private let sites = Mutex<[ExactString: Bucket]>([:])
    private let addresses = Mutex<[String: Bucket]>([:])
    static let sweepAt = 65_536

    public init() {}

    /// nil when `n` events of `site` may pass now (taken), else how long until they may.
    public func takeSite(_ site: ExactString, _ n: Int, rate: Int, now: ContinuousClock.Instant = .now) -> Duration? {
        sites.withLock { Self.take(&$0, site, n, rate, now) }
    }

    /// The same for a client address.
    public func takeAddress(_ address: String, _ n: Int, rate: Int, now: ContinuousClock.Instant = .now) -> Duration? {
        addresses.withLock { Self.take(&$0, address, n, rate, now) }
    }

    var bucketCount: Int { sites.withLock { $0.count } + addresses.withLock { $0.count } }

    private static func take<K: Hashable>(_ buckets: inout [K: Bucket], _ key: K, _ n: Int, _ rate: Int,
                                          _ now: ContinuousClock.Instant) -> Duration? {
        let r = Double(rate)
        var b = buckets[key] ?? Bucket(tokens: r, at: now)
        let elapsed = now - b.at
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18
        b.tokens = min(r, b.tokens + max(0, seconds) * r)
        b.at = now
        let need = Double(min(n, rate))
        guard b.tokens >= need else {
            buckets[key] = b
            return .seconds((need - b.tokens) / r)
        }
        b.tokens -= Double(n)
        if buckets[key] == nil && buckets.count >= sweepAt { sweep(&buckets, rate: r, now) }
        buckets[key] = b
        return nil
    }

    /// Drops the buckets that have refilled (those idle for at least the time to refill at
    /// `rate`, a bound for every bucket of that rate or faster).
    private static func sweep<K: Hashable>(_ buckets: inout [K: Bucket], rate: Double, _ now: ContinuousClock.Instant) {
        buckets = buckets.filter { _, b in
            let idle = now - b.at
            return Double(idle.components.seconds) < max(1, (rate - b.tokens) / rate) + 1
        }
    }
}

/// The rate rules of one collector: each registered site's own rate (``SiteRules/rate(of:)``)
/// and `--ip-rate` per client address (0: off).
public struct RateLimits: Sendable {
    public let limiter: RateLimiter
    public let perAddress: Int

    public init(perAddress: Int = 0, limiter: RateLimiter = RateLimiter()) {
        self.perAddress = perAddress
        self.limiter = limiter
    }

    public struct Refusal: Sendable, Equatable, Error {
        /// How long until the same request would pass.
        public var wait: Duration
        /// Which limit, in words.
        public var problems: [String]
    }

    /// Whether nothing can be limited: no address rate, and no site with a rate.
    public func off(_ rules: SiteRules) -> Bool { perAddress == 0 && !rules.anyRates }

    /// Takes `counts` (events per site) from the sites' buckets and, when `address` is given
    /// and `--ip-rate` is on, the total from the address's; nil when all passed.
    public func check(_ counts: [(site: ExactString, events: Int)], address: String?, rules: SiteRules,
                      now: ContinuousClock.Instant = .now) -> Refusal? {
        var wait = Duration.zero
        var problems: [String] = []
        if perAddress > 0, let address {
            let total = counts.reduce(0) { $0 + $1.events }
            if let w = limiter.takeAddress(address, total, rate: perAddress, now: now) {
                wait = max(wait, w)
                problems.append("this client may send \(perAddress) events per second")
            }
        }
        for (site, n) in counts {
            guard let rate = rules.rate(of: site) else { continue }
            if let w = limiter.takeSite(site, n, rate: rate, now: now) {
                wait = max(wait, w)
                problems.append("site \(JSONText.quote(site.string)) may send \(rate) events per second")
            }
        }
        return problems.isEmpty ? nil : Refusal(wait: wait, problems: problems)
    }
}
