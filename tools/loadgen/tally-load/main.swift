import ArgumentParser
import NIOCore
import NIOPosix

// As in the server: tasks run on NIO's event loops, so each request's continuation resumes on
// the thread that read the response instead of hopping pools. The generator shares the machine
// with the server it measures; every cycle it saves goes to the server.
_ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()

do {
    var command = try TallyLoadCommand.parseAsRoot()
    if let load = command as? TallyLoadCommand {
        try await load.drive()
    } else {
        try command.run()  // --help and friends
    }
} catch {
    TallyLoadCommand.exit(withError: error)
}
