import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// After the first SIGTERM/SIGINT started a graceful drain, a second one exits immediately.
/// Safe because spool files appear only by atomic rename and SQLite commits atomically.
func installSecondSignalExit() {
    let count = SignalCount()
    for sig in [SIGTERM, SIGINT] {
        let source = DispatchSource.makeSignalSource(signal: sig, queue: .global())
        source.setEventHandler {
            if count.increment() >= 2 {
                FileHandle.standardError.write("second signal: exiting now\n".data(using: .utf8)!)
                _exit(1)
            }
        }
        source.resume()
        retainedSources.append(source)
    }
}

final class SignalCount: @unchecked Sendable {
    private let lock = NSLock()
    private var n = 0
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        n += 1
        return n
    }
}

nonisolated(unsafe) private var retainedSources: [any DispatchSourceSignal] = []
