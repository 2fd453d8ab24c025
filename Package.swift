// swift-tools-version:6.2
import PackageDescription

let strict: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "tally",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "tally", targets: ["tally"]),
        .executable(name: "tally-load", targets: ["tally-load"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1", traits: []),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift.git", from: "0.2.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-http-types.git", from: "1.8.0", traits: []),
        .package(url: "https://github.com/apple/swift-configuration.git", from: "1.4.0"),
        .package(url: "https://github.com/apple/swift-system.git", from: "1.5.0"),
        // Already built for postgres-nio; HMAC-SHA256 for visitor ids.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
    ],
    targets: [
        .systemLibrary(name: "CZstd", pkgConfig: "libzstd", providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // Pure values: the event, its validation, days and times; the EventSink protocol.
        .target(name: "TallyCore", swiftSettings: strict),
        // The JSON event format (strict RFC 8259, streaming limits), as TallyWire is the binary one.
        .target(name: "TallyJSON", dependencies: ["TallyCore"], swiftSettings: strict),
        // What the server derives per event: visitor id, device/browser/OS, bot flag, referrer host.
        .target(name: "TallyEnrich", dependencies: [
            "TallyCore",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // Who may write to a site and read it: access keys, origin rules, the rules in force.
        .target(name: "TallySites", dependencies: [
            "TallyCore",
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // /api/v1/sites: the site registry over HTTP, behind the admin token.
        .target(name: "TallyAdmin", dependencies: [
            "TallyCore", "TallyHTTP", "TallySites", "TallyStore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // HTTP concerns shared by ingest and reports: JSON error bodies, the Date header.
        .target(name: "TallyHTTP", dependencies: [
            "TallyCore",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // Binary protocol codec over ByteBuffer; no sockets.
        .target(name: "TallyWire", dependencies: [
            "TallyCore",
            .product(name: "NIOCore", package: "swift-nio"),
        ], swiftSettings: strict),
        // Storage behind one protocol: SQLite (embedded default).
        .target(name: "TallyStore", dependencies: [
            "TallyCore", "CSQLite",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], swiftSettings: strict),
        // Sharded bounded queue, flusher, zstd spool, loader into the store: the EventSink.
        .target(name: "TallyPipeline", dependencies: [
            "TallyCore", "TallyWire", "TallyStore", "CZstd",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // The HTTP ingest path and the UDP/TCP listeners, feeding any EventSink.
        .target(name: "TallyIngest", dependencies: [
            "TallyCore", "TallyWire", "TallyJSON", "TallyEnrich", "TallyHTTP", "TallySites",
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdCore", package: "hummingbird"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
        ], swiftSettings: strict),
        // /stats, /health, /metrics reading the store.
        .target(name: "TallyReport", dependencies: [
            "TallyCore", "TallyStore", "TallyHTTP", "TallySites",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ], swiftSettings: strict),
        // GET /tally.js: the tracking script a site owner puts on their pages.
        .target(name: "TallyBrowser", dependencies: [
            "CZlib",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HTTPTypes", package: "swift-http-types"),
            .product(name: "Crypto", package: "swift-crypto"),
        ], swiftSettings: strict),
        // The data's life after loading: backups and restores (retention and purges to come).
        .target(name: "TallyLifecycle", dependencies: [
            "TallyCore", "TallyStore", "TallyPipeline",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
        ], swiftSettings: strict),
        // Wiring and service lifecycle, shared by the CLI and the end-to-end tests.
        .target(name: "TallyServer", dependencies: [
            "TallyCore", "TallyHTTP", "TallyWire", "TallyStore", "TallyPipeline", "TallyIngest", "TallyEnrich", "TallyBrowser", "TallyReport", "TallySites", "TallyAdmin",
            "TallyLifecycle",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "Prometheus", package: "swift-prometheus"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOSSL", package: "swift-nio-ssl"),
        ], swiftSettings: strict),
        // The `tally` commands: serve (flags, TALLY_* variables, config file) and store-ceiling.
        .target(name: "TallyCLI", dependencies: [
            "TallyServer", "TallyStore", "TallyCore", "TallySites", "TallyLifecycle", "CSQLite",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "Configuration", package: "swift-configuration"),
            .product(name: "SystemPackage", package: "swift-system"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], swiftSettings: strict),
        .executableTarget(name: "tally", dependencies: [
            "TallyCLI",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], swiftSettings: strict),

        // Clients for HTTP and the wire protocol: used by tally-load and the tests.
        .target(name: "TallyClient", dependencies: [
            "TallyCore", "TallyWire",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
        ], path: "tools/client", swiftSettings: strict),
        .target(name: "TallyLoad", dependencies: [
            "TallyCore", "TallyClient",
            .product(name: "Histogram", package: "hdrhistogram-swift"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "tools/loadgen/TallyLoad", swiftSettings: strict),
        .executableTarget(name: "tally-load", dependencies: [
            "TallyLoad",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
        ], path: "tools/loadgen/tally-load", swiftSettings: strict),

        // libFuzzer harnesses for the wire decoder and the JSON body reader (scripts/fuzz.sh);
        // a corpus replayer otherwise.
        .executableTarget(name: "tally-fuzz", dependencies: [
            "TallyWire", "TallyJSON", "TallyCore",
            .product(name: "NIOCore", package: "swift-nio"),
        ], path: "Tests/Fuzz", swiftSettings: strict),

        // Helpers shared by the test targets (never linked into the product).
        .target(name: "TallyTestSupport", dependencies: [
            "TallyCore",
            .product(name: "PostgresNIO", package: "postgres-nio"),
            .product(name: "Logging", package: "swift-log"),
        ], path: "Tests/Support", swiftSettings: strict),

        .testTarget(name: "TallyCoreTests", dependencies: ["TallyCore", "TallyHTTP"], swiftSettings: strict),
        .testTarget(name: "TallyJSONTests", dependencies: ["TallyJSON", "TallyCore"], swiftSettings: strict),
        .testTarget(name: "TallySitesTests", dependencies: ["TallySites", "TallyCore"], swiftSettings: strict),
        .testTarget(name: "TallyEnrichTests", dependencies: ["TallyEnrich", "TallyCore"], swiftSettings: strict),
        .testTarget(name: "TallyBrowserTests", dependencies: ["TallyBrowser", "CZlib"], swiftSettings: strict),
        .testTarget(name: "TallyWireTests", dependencies: [
            "TallyWire", "TallyCore",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOTestUtils", package: "swift-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "TallyStoreTests", dependencies: [
            "TallyStore", "TallyCore", "TallyTestSupport", "TallyReport",
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "TallyPipelineTests", dependencies: ["TallyPipeline", "TallyStore", "TallyCore", "TallyWire", "TallyTestSupport"],
                    swiftSettings: strict),
        .testTarget(name: "TallyIngestTests", dependencies: [
            "TallyIngest", "TallyCore", "TallyWire", "TallyEnrich", "TallySites",
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Metrics", package: "swift-metrics"),
            .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOEmbedded", package: "swift-nio"),
            .product(name: "NIOHTTP1", package: "swift-nio"),
        ], swiftSettings: strict),
        .testTarget(name: "TallyCLITests", dependencies: [
            "TallyCLI", "TallyServer", "TallyCore", "CSQLite",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ], swiftSettings: strict),
        .testTarget(name: "TallyLoadTests", dependencies: ["TallyLoad"], swiftSettings: strict),
        .testTarget(name: "TallyEndToEndTests", dependencies: [
            "TallyServer", "TallyClient", "TallyTestSupport", "TallyLoad", "TallyCore", "TallyWire", "TallyStore", "TallyPipeline", "CSQLite",
            "TallyEnrich", "TallySites",
            .product(name: "NIOCore", package: "swift-nio"),
            .product(name: "NIOPosix", package: "swift-nio"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "PostgresNIO", package: "postgres-nio"),
        ], swiftSettings: strict),
    ]
)
