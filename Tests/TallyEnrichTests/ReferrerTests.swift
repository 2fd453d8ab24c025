import Testing
import TallyEnrich

@Suite struct ReferrerTests {
    @Test(arguments: [
        ("https://www.Google.com/search?q=x", nil as String?, "google.com" as String?),
        ("https://news.ycombinator.com/item?id=1", nil, "news.ycombinator.com"),
        ("http://user:pw@Example.ORG:8080/path#frag", nil, "example.org"),
        ("https://blog.example.com./", nil, "blog.example.com"),
        ("android-app://com.google.android.gm/", nil, "com.google.android.gm"),
        ("https://[2001:db8::1]:443/x", nil, "[2001:db8::1]"),
        ("t.co/abc", nil, "t.co"),
        ("https://www.mysite.com/page", "https://mysite.com", nil),
        ("https://mysite.com/other", "https://www.mysite.com", nil),
        ("https://sub.mysite.com/", "https://mysite.com", "sub.mysite.com"),
        ("", nil, nil),
        ("   ", nil, nil),
        ("https:///nohost", nil, nil),
    ])
    func hostIsNormalized(_ raw: String, _ page: String?, _ expected: String?) {
        #expect(Referrer.host(raw, pageHost: page) == expected, "\(raw)")
    }
}
