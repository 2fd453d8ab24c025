import ArgumentParser
import NIOCore
import NIOPosix

// Run Swift concurrency on NIO's event-loop threads: request handlers then continue on the
// thread that read the request instead of hopping to a second pool (≈2× HTTP throughput on
// two cores). Must happen before the first task is created.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

// `await Tally.main()` here would pick ParsableCommand's synchronous overload, so parse and
// run explicitly.
do {
    var command = try Tally.parseAsRoot()
    // Through an existential, `run()` would resolve to the synchronous requirement.
    if let serve = command as? Serve {
        try await serve.serve()
    } else {
        try command.run()
    }
} catch {
    Tally.exit(withError: error)
}
