import ArgumentParser
import NIOCore
import NIOPosix
import TallyCLI

// Run Swift concurrency on NIO's event-loop threads: request handlers then continue on the
// thread that read the request instead of hopping to a second pool (≈2× HTTP throughput on
// two cores). Must happen before the first task is created, hence top-level code, not @main.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

// `await Tally.main()` here would pick ParsableCommand's synchronous overload, so parse and
// run explicitly.
do {
    let command = try Tally.parseAsRoot()
    // Through an existential, `run()` would resolve to the synchronous requirement.
    switch command {
    case let command as any AsyncCommandBody: try await command.body()
    default:
        var command = command
        try command.run()
    }
} catch {
    Tally.exit(withError: error)
}
