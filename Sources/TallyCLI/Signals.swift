import Foundation
import NIOConcurrencyHelpers
#if canImport(Glibc)
import Glibc
#endif

/// After the first SIGTERM/SIGINT started a graceful drain, a second one exits immediately.
/// Safe because spool files appear only by atomic rename and SQLite commits atomically.
/// The sources stop when released: keep the result alive while the server runs.
func installSecondSignalExit() -> [any DispatchSourceSignal] {
    let count = NIOLockedValueBox(0)
    let sources = [SIGTERM, SIGINT].map { sig in
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            if count.withLockedValue({ $0 += 1; return $0 }) >= 2 {
                FileHandle.standardError.write("second signal: exiting now\n".data(using: .utf8)!)
                _exit(1)
            }
        }
        source.resume()
        return source
    }
    return sources
}
