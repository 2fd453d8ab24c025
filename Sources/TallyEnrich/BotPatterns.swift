/// User-Agent substrings of crawlers, link-preview fetchers, monitors and automated browsers,
/// matched case-insensitively. Kept as data: one pattern a line, grouped by family (`#`
/// lines name the family; `BotPatternTests` has a real User-Agent for every family).
///
/// Never listed: plain HTTP libraries and tools (curl, Wget, python-requests, Python-urllib,
/// Go-http-client, Java, okhttp, node-fetch, axios, undici, .NET, tally-load) — legitimate
/// server-side senders — and requests without a User-Agent.
enum BotPatterns {
    static let text = """
        # search engines
        googlebot
        google-inspectiontool
        googleother
        storebot-google
        adsbot-google
        mediapartners-google
        apis-google
        feedfetcher-google
        google-read-aloud
        google-pagerenderer
        bingbot
        bingpreview
        msnbot
        adidxbot
        slurp
        duckduckbot
        duckassistbot
        baiduspider
        yandexbot
        yandeximages
        yandexmobilebot
        sogou
        exabot
        seznambot
        applebot
        petalbot
        bytespider
        qwantbot
        qwantify
        mojeekbot
        yeti/
        coccocbot
        # SEO and data crawlers
        ahrefsbot
        ahrefssiteaudit
        semrushbot
        siteauditbot
        mj12bot
        dotbot
        rogerbot
        blexbot
        dataforseobot
        serpstatbot
        screaming frog
        seokicks
        barkrowler
        megaindex
        zoominfobot
        ia_archiver
        archive.org_bot
        # AI crawlers and assistants
        gptbot
        chatgpt-user
        oai-searchbot
        claudebot
        claude-web
        anthropic-ai
        ccbot
        perplexitybot
        perplexity-user
        amazonbot
        cohere-ai
        diffbot
        imagesiftbot
        meta-externalagent
        facebookbot
        timpibot
        youbot
        # link previews
        facebookexternalhit
        facebot
        twitterbot
        linkedinbot
        slackbot
        slack-imgproxy
        discordbot
        telegrambot
        whatsapp
        skypeuripreview
        redditbot
        pinterestbot
        embedly
        iframely
        vkshare
        bitlybot
        snap url preview
        # monitors and validators
        uptimerobot
        pingdom
        statuscake
        site24x7
        betteruptime
        datadogsynthetics
        newrelicpinger
        gtmetrix
        chrome-lighthouse
        w3c_validator
        # automated browsers
        headlesschrome
        phantomjs
        slimerjs
        prerender
        rendertron
        # generic markers of self-declared robots
        crawler
        spider
        bot/
        bot;
        bot)
        """

    /// The patterns, lower-cased, without comments.
    static let all: [[UInt8]] = text.split(separator: "\n").compactMap { line in
        let p = line.trimmingBlanks()
        return p.isEmpty || p.hasPrefix("#") ? nil : Array(p.lowercased().utf8)
    }
}
