import Foundation
import Testing
import TallyCore
import TallyTestSupport
@testable import TallyStore

/// The site registry behaves the same in both stores.
@Suite struct SiteRegistryContractTests {
    func registry(_ store: any EventStore) -> any SiteRegistryStore { store as! any SiteRegistryStore }

    @Test(arguments: Backend.available)
    func changesAreStoredAndVersioned(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, reopen) = try await backend.make(dir)
            try await store.prepare()
            let r = registry(store)
            #expect(try await r.registryVersion() == 0)
            #expect(try await r.registeredSites().sites.isEmpty)

            let key = SiteKeyRecord(id: "k000000000001", kind: .write, hash: String(repeating: "a", count: 64), createdAt: 1_763_121_600_000_001)
            // A name PostgreSQL must spell differently (U+0000) and one that is not ASCII.
            let odd = "nul\u{0}site-\u{E9}"
            try await r.apply(.add(SiteRecord(id: "shop", origins: ["https://shop.example", "*.shop.example"], rate: 50, rawRetentionDays: 30,
                                              keys: [key], createdAt: 1_763_121_600_000_000, updatedAt: 1_763_121_600_000_000)))
            try await r.apply(.add(SiteRecord(id: odd, createdAt: 7, updatedAt: 7)))
            #expect(try await r.registryVersion() == 2)
            await #expect(throws: SiteRegistryError.siteExists("shop")) {
                try await r.apply(.add(SiteRecord(id: "shop", createdAt: 8, updatedAt: 8)))
            }
            #expect(try await r.registryVersion() == 2)

            var (version, sites) = try await r.registeredSites()
            #expect(version == 2)
            #expect(sites.map(\.id).sorted { $0.utf8Less($1) } == sites.map(\.id))
            let shop = try #require(sites.first { $0.id == "shop" })
            #expect(shop == SiteRecord(id: "shop", origins: ["https://shop.example", "*.shop.example"], rate: 50, rawRetentionDays: 30, keys: [key],
                                       createdAt: 1_763_121_600_000_000, updatedAt: 1_763_121_600_000_000))
            #expect(sites.contains { $0.id.utf8Equals(odd) && $0.origins.isEmpty && $0.rate == nil && $0.keys.isEmpty })

            // Update origins, then the rate, then remove the rate; keys added and revoked by id or hash.
            try await r.apply(.update(id: "shop", origins: ["https://new.example"], rate: nil, at: 1_763_121_700_000_000))
            try await r.apply(.update(id: "shop", origins: nil, rate: .some(9), rawRetentionDays: .some(7), at: 1_763_121_600_000_000))
            let read = SiteKeyRecord(id: "k000000000002", kind: .read, hash: String(repeating: "b", count: 64), createdAt: 9)
            try await r.apply(.addKey(siteID: "shop", read))
            (_, sites) = try await r.registeredSites()
            var s = try #require(sites.first { $0.id == "shop" })
            #expect(s.origins == ["https://new.example"] && s.rate == 9 && s.rawRetentionDays == 7 && s.keys == [key, read].sorted { $0.createdAt < $1.createdAt })
            #expect(s.updatedAt == 1_763_121_700_000_000)  // never moves back
            try await r.apply(.update(id: "shop", origins: [], rate: .some(nil), rawRetentionDays: .some(nil), at: 1_763_121_800_000_000))
            try await r.apply(.revokeKey(siteID: "shop", idOrHash: "k000000000001"))
            try await r.apply(.revokeKey(siteID: "shop", idOrHash: String(repeating: "b", count: 64)))
            await #expect(throws: SiteRegistryError.noSuchKey(site: "shop", key: "k000000000001")) {
                try await r.apply(.revokeKey(siteID: "shop", idOrHash: "k000000000001"))
            }
            await #expect(throws: SiteRegistryError.noSuchSite("none")) {
                try await r.apply(.addKey(siteID: "none", read))
            }
            (version, sites) = try await r.registeredSites()
            s = try #require(sites.first { $0.id == "shop" })
            #expect(s.origins.isEmpty && s.rate == nil && s.rawRetentionDays == nil && s.keys.isEmpty)
            #expect(version == 8)

            // Another store on the same database sees the same registry; removal takes the keys along.
            let other = reopen()
            try await other.prepare()
            try await registry(other).apply(.addKey(siteID: odd, key))
            try await registry(other).apply(.remove(id: odd))
            await #expect(throws: SiteRegistryError.noSuchSite(odd)) { try await r.apply(.remove(id: odd)) }
            (version, sites) = try await r.registeredSites()
            #expect(version == 10 && sites.map(\.id) == ["shop"])
            // The removed site's key hash is free again.
            try await r.apply(.addKey(siteID: "shop", key))
            try await other.close()
            try await store.close()
        }
    }
}

@Suite struct SiteRegistryBytesTests {
    /// Two ids that differ only in Unicode normalisation are two sites, each with its own keys.
    @Test(arguments: Backend.available)
    func canonicallyEquivalentIdsKeepTheirOwnKeys(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (store, _) = try await backend.make(dir)
            try await store.prepare()
            let r = store as! any SiteRegistryStore
            let composed = "caf\u{E9}", decomposed = "cafe\u{301}"
            try await r.apply(.add(SiteRecord(id: composed, createdAt: 1, updatedAt: 1)))
            try await r.apply(.add(SiteRecord(id: decomposed, createdAt: 1, updatedAt: 1)))
            try await r.apply(.addKey(siteID: composed, SiteKeyRecord(id: "k1", kind: .write, hash: String(repeating: "1", count: 64), createdAt: 2)))
            let sites = try await r.registeredSites().sites
            #expect(sites.count == 2)
            #expect(sites.first { $0.id.utf8Equals(composed) }?.keys.map(\.id) == ["k1"])
            #expect(sites.first { $0.id.utf8Equals(decomposed) }?.keys.isEmpty == true)
            try await store.close()
        }
    }
}

@Suite struct SiteRegistryReaderTests {
    /// A collector reads the registry, another process changes it: the next version poll sees it.
    @Test(arguments: Backend.available)
    func aReaderSeesChangesMadeAfterItReadTheSites(_ backend: Backend) async throws {
        try await withTempDir { dir in
            let (a, reopen) = try await backend.make(dir)
            try await a.prepare()
            let b = reopen()
            try await b.prepare()
            let ra = a as! any SiteRegistryStore, rb = b as! any SiteRegistryStore
            try await rb.apply(.add(SiteRecord(id: "s", origins: ["https://s.example"], createdAt: 1, updatedAt: 1)))
            #expect(try await ra.registeredSites().sites.count == 1)
            try await rb.apply(.addKey(siteID: "s", SiteKeyRecord(id: "k1", kind: .write, hash: String(repeating: "c", count: 64), createdAt: 2)))
            #expect(try await ra.registryVersion() == 2)
            #expect(try await ra.registeredSites().sites.first?.keys.count == 1)
            try await a.close()
            try await b.close()
        }
    }
}

@Suite struct SQLiteLockTests {
    /// Another process (the CLI, an owner's `sqlite3`) that opens the file and closes it while
    /// a collector has both its connections open must not find itself the last user of the
    /// WAL: that would check the WAL into the file and delete it under the collector, whose
    /// later commits would go to a file nobody reads. Opening the database file with a second
    /// descriptor and closing it drops every POSIX lock this process holds on it, so
    /// ``SQLiteConnection`` never does.
    @Test func anotherProcessClosingTheFileLeavesTheWALInPlace() async throws {
        try await withTempDir { dir in
            let path = dir + "/t.sqlite"
            let store = SQLiteStore(path: path)
            try await store.prepare()
            _ = try await store.load(StoreBatch(id: "b", createdAt: 1, events: scenario2))
            _ = try await store.stats(siteID: "demo-site", day: nil, limit: 10)  // the reader is open too
            try await store.apply(.add(SiteRecord(id: "s", createdAt: 1, updatedAt: 1)))
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            p.arguments = ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM registered_sites').fetchall(); c.close()", path]
            try p.run()
            p.waitUntilExit()
            #expect(p.terminationStatus == 0)
            #expect(FileManager.default.fileExists(atPath: path + "-wal"))
            // And what another process commits, the collector reads.
            let q = Process()
            q.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            q.arguments = ["python3", "-c", "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); c.execute('UPDATE registry_version SET version = version + 5'); c.commit(); c.close()", path]
            try q.run()
            q.waitUntilExit()
            #expect(try await store.registryVersion() == 6)
            try await store.close()
        }
    }
}
