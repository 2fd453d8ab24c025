import Testing
import TallyCore
@testable import TallyEnrich

/// Device, browser and OS families from real User-Agent strings, and bot filtering: one real
/// User-Agent per family of `BotPatterns`, and the legitimate senders that are never filtered.
@Suite struct UserAgentTests {
    static let browsers: [(String, Device?, String?, String?)] = [
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
         .desktop, "Chrome", "Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
         .desktop, "Edge", "Windows"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
         .desktop, "Safari", "macOS"),
        ("Mozilla/5.0 (Macintosh; Intel Mac OS X 14.7; rv:133.0) Gecko/20100101 Firefox/133.0", .desktop, "Firefox", "macOS"),
        ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
         .desktop, "Chrome", "Linux"),
        ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", .desktop, "Firefox", "Linux"),
        ("Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
         .desktop, "Chrome", "ChromeOS"),
        ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 OPR/115.0.0.0",
         .desktop, "Opera", "Windows"),
        ("Mozilla/5.0 (Windows NT 10.0; WOW64; Trident/7.0; rv:11.0) like Gecko", .desktop, "Internet Explorer", "Windows"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1",
         .mobile, "Safari", "iOS"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
         .mobile, "Chrome", "iOS"),
        ("Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/133.0 Mobile/15E148 Safari/605.1.15",
         .mobile, "Firefox", "iOS"),
        ("Mozilla/5.0 (iPad; CPU OS 17_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
         .tablet, "Safari", "iPadOS"),
        ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.6778.81 Mobile Safari/537.36",
         .mobile, "Chrome", "Android"),
        ("Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
         .mobile, "Samsung Internet", "Android"),
        ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
         .tablet, "Chrome", "Android"),
        ("Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0", .mobile, "Firefox", "Android"),
        ("Mozilla/5.0 (Linux; Android 9; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/131.1.1 like Chrome/131.0.6778.85 Safari/537.36",
         .tablet, "Chrome", "Android"),
        ("Mozilla/5.0 (Linux; Android 10; CUBOT_X19) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
         .mobile, "Chrome", "Android"),
    ]

    @Test(arguments: browsers)
    func browserFamilies(_ ua: String, _ device: Device?, _ browser: String?, _ os: String?) {
        let c = UserAgentClass(ua)
        #expect(c == UserAgentClass(device: device, browser: browser, os: os, isBot: false), "\(ua)")
    }

    /// One real User-Agent per family in `BotPatterns`.
    static let bots: [(family: String, userAgent: String)] = [
        ("search engines", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
        ("search engines", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36"),
        ("search engines", "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)"),
        ("search engines", "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)"),
        ("search engines", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)"),
        ("SEO and data crawlers", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)"),
        ("SEO and data crawlers", "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)"),
        ("SEO and data crawlers", "Screaming Frog SEO Spider/20.0"),
        ("AI crawlers and assistants", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)"),
        ("AI crawlers and assistants", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)"),
        ("AI crawlers and assistants", "CCBot/2.0 (https://commoncrawl.org/faq/)"),
        ("link previews", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
        ("link previews", "Twitterbot/1.0"),
        ("link previews", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)"),
        ("link previews", "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)"),
        ("link previews", "WhatsApp/2.23.20.0"),
        ("link previews", "TelegramBot (like TwitterBot)"),
        ("monitors and validators", "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)"),
        ("monitors and validators", "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)"),
        ("monitors and validators", "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse"),
        ("automated browsers", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.6778.85 Safari/537.36"),
        ("automated browsers", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1"),
        ("generic markers of self-declared robots", "Mozilla/5.0 (compatible; ExampleCrawler/1.0)"),
        ("generic markers of self-declared robots", "Mozilla/5.0 (compatible; NewBot/2.3; +https://example.org/newbot)"),
    ]

    @Test(arguments: bots.map(\.userAgent))
    func botsAreFlagged(_ ua: String) {
        #expect(UserAgentClass(ua).isBot, "\(ua)")
    }

    @Test func everyPatternFamilyHasARealUserAgent() {
        let families = BotPatterns.text.split(separator: "\n").filter { $0.trimmingPrefix(" ").hasPrefix("# ") }
            .map { String($0.drop { $0 == " " }.dropFirst(2)) }
        #expect(Set(families) == Set(Self.bots.map(\.family)))
    }

    @Test(arguments: [
        "curl/8.11.0", "Wget/1.24.5", "python-requests/2.32.3", "Python-urllib/3.12", "Go-http-client/2.0",
        "Java/21.0.5", "okhttp/4.12.0", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "axios/1.7.7", "undici",
        "Mozilla/5.0 (compatible; .NET HttpClient)", "tally-load", "PostmanRuntime/7.42.0",
    ])
    func serverSideSendersAreNeverBots(_ ua: String) {
        #expect(!UserAgentClass(ua).isBot, "\(ua)")
    }

    @Test func noUserAgentIsNeitherBotNorDevice() {
        #expect(UserAgentClass(nil) == UserAgentClass())
        #expect(UserAgentClass("") == UserAgentClass())
    }
}
