import Foundation
import Logging
import NIOSSL
import ServiceLifecycle
import Synchronization

/// The HTTPS listener's certificate and key (`--tls-cert`, `--tls-key`), read from their PEM
/// files at start and read again whenever either file changes, so a renewed certificate
/// (certbot, a Kubernetes secret) is served without a restart. Each new connection takes the
/// context in force; connections already open keep theirs.
///
/// A change is seen by polling the files every ``interval`` (``FileStamp``): one `stat` each,
/// and it works where inotify does not (bind mounts, secret volumes that swap a symlink). A file that fails to load keeps the old context in force, logged as an error.
final class TLSCertificates: Service, Sendable {
    let certificateFile: String
    let keyFile: String
    let interval: Duration
    let logger: Logger
    private let state: Mutex<(context: NIOSSLContext, stamp: [FileStamp?])>

    /// What `stat(2)` says of a file, following symbolic links: a Kubernetes secret volume
    /// renews by swapping the directory its `tls.crt` link points through, which changes the
    /// target's inode but nothing of the link itself.
    struct FileStamp: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modifiedSeconds: Int
        var modifiedNanoseconds: Int
    }

    /// Reads both files; throws a ``SettingError`` naming the file and what is wrong with it.
    init(certificateFile: String, keyFile: String, interval: Duration, logger: Logger) throws {
        self.certificateFile = certificateFile
        self.keyFile = keyFile
        self.interval = interval
        self.logger = logger
        let stamp = Self.stamps([certificateFile, keyFile])
        state = Mutex((try Self.context(certificateFile: certificateFile, keyFile: keyFile), stamp))
    }

    var context: NIOSSLContext { state.withLock { $0.context } }

    static func context(certificateFile: String, keyFile: String) throws -> NIOSSLContext {
        let chain: [NIOSSLCertificate]
        do {
            chain = try NIOSSLCertificate.fromPEMFile(certificateFile)
        } catch {
            throw SettingError(description: "--tls-cert \(certificateFile): not a readable PEM certificate chain (\(error))")
        }
        guard !chain.isEmpty else { throw SettingError(description: "--tls-cert \(certificateFile) holds no certificate") }
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
        } catch {
            throw SettingError(description: "--tls-key \(keyFile): not a readable PEM private key (\(error))")
        }
        var configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) },
                                                                      privateKey: .privateKey(key))
        configuration.minimumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw SettingError(description: "--tls-cert and --tls-key do not make a TLS server (is the key the certificate's?): \(error)")
        }
    }

    static func stamps(_ files: [String]) -> [FileStamp?] {
        files.map { file in
            var st = stat()
            guard stat(file, &st) == 0 else { return nil }
            return FileStamp(device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
                             modifiedSeconds: st.st_mtim.tv_sec, modifiedNanoseconds: st.st_mtim.tv_nsec)
        }
    }

    /// Loads the files again if either changed since the last load (or failed attempt).
    func reloadIfChanged() {
        let now = Self.stamps([certificateFile, keyFile])
        guard state.withLock({ $0.stamp != now }) else { return }
        do {
            let context = try Self.context(certificateFile: certificateFile, keyFile: keyFile)
            state.withLock { $0 = (context, now) }
            logger.info("TLS certificate reloaded", metadata: ["file": "\(certificateFile)"])
        } catch {
            // Not retried until a file changes again: a half-written renewal is read once complete.
            state.withLock { $0.stamp = now }
            logger.error("TLS certificate not reloaded; the previous one stays in use", metadata: ["error": "\(error)"])
        }
    }

    func run() async throws {
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: self.interval) }
            if Task.isShuttingDownGracefully { return }
            reloadIfChanged()
        }
    }
}
