import TallyCore

/// What a User-Agent says about its sender: device class, browser and OS family, and whether
/// it is a robot. Families, not versions: enough to break traffic down, too coarse to
/// fingerprint anyone.
public struct UserAgentClass: Sendable, Equatable {
    public var device: Device?
    public var browser: String?
    public var os: String?
    public var isBot: Bool

    public init(device: Device? = nil, browser: String? = nil, os: String? = nil, isBot: Bool = false) {
        self.device = device
        self.browser = browser
        self.os = os
        self.isBot = isBot
    }

    /// Classifies `userAgent` (nil or empty: a server-side sender, nothing known, not a bot).
    public init(_ userAgent: String?) {
        self.init()
        guard let ua = userAgent, !ua.isEmpty else { return }
        let lower = Array(ua.lowercased().utf8)
        func has(_ s: StaticString) -> Bool { Self.contains(lower, s) }
        isBot = BotPatterns.all.contains { Self.contains(lower, $0) }

        browser = if has("edg/") || has("edge/") || has("edga/") || has("edgios/") { "Edge" }
            else if has("opr/") || has("opera") { "Opera" }
            else if has("samsungbrowser/") { "Samsung Internet" }
            else if has("yabrowser/") { "Yandex Browser" }
            else if has("vivaldi/") { "Vivaldi" }
            else if has("firefox/") || has("fxios/") { "Firefox" }
            else if has("crios/") || has("chrome/") || has("chromium/") { "Chrome" }
            else if has("msie ") || has("trident/") { "Internet Explorer" }
            else if has("applewebkit/") && (has("safari/") || has("mobile/")) { "Safari" }
            else { nil }

        let iPad = has("ipad"), iPhone = has("iphone") || has("ipod"), android = has("android")
        os = if has("windows phone") { "Windows Phone" }
            else if has("windows") { "Windows" }
            else if iPad { "iPadOS" }
            else if iPhone { "iOS" }
            else if android { "Android" }
            else if has("cros") { "ChromeOS" }
            else if has("mac os x") || has("macintosh") { "macOS" }
            else if has("linux") || has("x11") { "Linux" }
            else { nil }

        if iPad || has("tablet") || has("kindle") || has("silk/") || (android && !has("mobile")) {
            device = .tablet
        } else if iPhone || has("mobi") || has("windows phone") {
            device = .mobile
        } else if browser != nil || os != nil {
            device = .desktop
        }
    }

    static func contains(_ haystack: [UInt8], _ needle: StaticString) -> Bool {
        needle.withUTF8Buffer { contains(haystack, $0) }
    }

    static func contains<C: Collection<UInt8>>(_ haystack: [UInt8], _ needle: C) -> Bool where C.Index == Int {
        let n = needle.count
        guard n > 0, haystack.count >= n, let first = needle.first else { return n == 0 }
        var i = 0
        let last = haystack.count - n
        while i <= last {
            if haystack[i] == first {
                var k = 1
                while k < n && haystack[i + k] == needle[needle.startIndex + k] { k += 1 }
                if k == n { return true }
            }
            i += 1
        }
        return false
    }
}
