import Foundation
import Logging
import NIOConcurrencyHelpers
import Testing
@testable import TallyIngest

/// Records what a logger was asked to write.
struct CapturingLogHandler: LogHandler {
    let lines: NIOLockedValueBox<[(message: String, metadata: Logger.Metadata)]>
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        lines.withLockedValue { $0.append(("\(event.message)", event.metadata ?? [:])) }
    }
}

@Suite struct RejectionLogTests {
    @Test func aFloodOfRefusalsIsOneLinePerReasonAndInterval() async throws {
        let lines = NIOLockedValueBox<[(message: String, metadata: Logger.Metadata)]>([])
        let log = RejectionLog(logger: Logger(label: "t") { _ in CapturingLogHandler(lines: lines) }, interval: .milliseconds(200))
        for _ in 0..<1000 { log.refused("udp", reason: "bad_magic", detail: "bad magic", peer: "1.2.3.4:5") }
        log.refused("udp", reason: "truncated", detail: "cut", peer: nil)
        log.refused("tcp", reason: "bad_magic", detail: "bad magic", peer: nil)
        #expect(lines.withLockedValue { $0.count } == 3)
        try await Task.sleep(for: .milliseconds(250))
        log.refused("udp", reason: "bad_magic", detail: "bad magic", peer: "1.2.3.4:5")
        let all = lines.withLockedValue { $0 }
        #expect(all.count == 4)
        #expect(all[3].metadata["unlogged_since_last"] == "999")
        #expect(all[0].metadata["peer"] == "1.2.3.4:5")
        #expect(all[0].metadata["reason"] == "bad_magic")
    }
}
