#if canImport(Glibc)
import Glibc
#endif
import NIOCore
import TallyCore
import TallyStore
import TallyWire

/// Errors of the spool.
public enum SpoolError: Error, Sendable, CustomStringConvertible {
    case io(String)
    case corrupt(String)
    case compression(String)

    public var description: String {
        switch self {
        case .io(let m): "spool I/O error: \(m)"
        case .corrupt(let m): "corrupt spool file: \(m)"
        case .compression(let m): "compression failed: \(m)"
        }
    }
}

/// The on-disk format of one spooled batch (little-endian):
///
///     magic "TLSP" | version u16 | flags u16 | event count u32 | raw length u32 |
///     compressed length u32 | payload crc32c u32 | created µs i64 | id length u16 | id bytes |
///     header crc32c u32 | zstd payload
///
/// The payload, before compression, is a run of wire-protocol EVENTS frames (proto/PROTOCOL.md),
/// every event with its timestamp: the spool reuses the wire codec rather than a second format.
enum SpoolFormat {
    static let magic: [UInt8] = Array("TLSP".utf8)
    static let version: UInt16 = 1
    static let flagZstd: UInt16 = 1
    static let fixedHeader = 4 + 2 + 2 + 4 + 4 + 4 + 4 + 8 + 2
    static let maxIDBytes = 256

    /// Encodes events (wire frames, one per run of a site) and compresses them.
    static func encode(_ batch: StoreBatch, compressor: ZstdCompressor, scratch: inout ByteBuffer) throws -> [UInt8] {
        scratch.clear()
        FrameEncoder.writeFrames(for: batch.events, maxEvents: Int(UInt16.max), into: &scratch)
        let raw = scratch.readableBytesView
        let compressed = try raw.withUnsafeBytes { try compressor.compress($0) }
        let id = Array(batch.id.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(fixedHeader + id.count + 4 + compressed.count)
        out += magic
        append(&out, version)
        append(&out, flagZstd)
        append(&out, UInt32(batch.events.count))
        append(&out, UInt32(raw.count))
        append(&out, UInt32(compressed.count))
        append(&out, CRC32C.checksum(compressed))
        append(&out, UInt64(bitPattern: batch.createdAt))
        append(&out, UInt16(id.count))
        out += id
        append(&out, CRC32C.checksum(out))
        out += compressed
        return out
    }

    /// Parses and verifies a whole file. Every inconsistency is reported as `.corrupt`.
    static func decode(_ bytes: [UInt8]) throws -> StoreBatch {
        try bytes.withUnsafeBytes { b throws -> StoreBatch in
            guard b.count >= fixedHeader + 4 else { throw SpoolError.corrupt("file shorter than a header (\(b.count) bytes)") }
            guard Array(b[0..<4]) == magic else { throw SpoolError.corrupt("bad magic") }
            var at = 4
            func read<T: FixedWidthInteger>(_: T.Type) -> T {
                var v: T = 0
                withUnsafeMutableBytes(of: &v) { $0.copyMemory(from: UnsafeRawBufferPointer(rebasing: b[at..<at + MemoryLayout<T>.size])) }
                at += MemoryLayout<T>.size
                return T(littleEndian: v)
            }
            let version = read(UInt16.self)
            guard version == Self.version else { throw SpoolError.corrupt("unsupported version \(version)") }
            let flags = read(UInt16.self)
            let count = Int(read(UInt32.self))
            let rawLength = Int(read(UInt32.self))
            let compressedLength = Int(read(UInt32.self))
            let payloadCRC = read(UInt32.self)
            let created = Int64(bitPattern: read(UInt64.self))
            let idLength = Int(read(UInt16.self))
            guard idLength <= maxIDBytes, b.count >= at + idLength + 4 else { throw SpoolError.corrupt("truncated header") }
            let idBytes = UnsafeRawBufferPointer(rebasing: b[at..<at + idLength])
            at += idLength
            let headerCRC = read(UInt32.self)
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: b[0..<at - 4])) == headerCRC else {
                throw SpoolError.corrupt("header checksum mismatch")
            }
            guard b.count - at == compressedLength else {
                throw SpoolError.corrupt("payload is \(b.count - at) bytes, header says \(compressedLength)")
            }
            let payload = UnsafeRawBufferPointer(rebasing: b[at...])
            guard CRC32C.checksum(payload) == payloadCRC else { throw SpoolError.corrupt("payload checksum mismatch") }
            guard rawLength <= 1 << 30, flags == flagZstd else { throw SpoolError.corrupt("bad flags or length") }
            let raw = try Zstd.decompress(payload, expectedSize: rawLength)
            var buffer = ByteBuffer(bytes: raw)
            var events: [Event] = []
            events.reserveCapacity(count)
            while buffer.readableBytes > 0 {
                do {
                    guard case .frame(.events(let f)) = try FrameDecoder.decode(&buffer, trusted: true) else {
                        throw SpoolError.corrupt("payload is not a run of EVENTS frames")
                    }
                    events += f.resolved(receivedAt: created)
                } catch let r as FrameRejection {
                    throw SpoolError.corrupt("payload frame: \(r.detail)")
                }
            }
            guard events.count == count else { throw SpoolError.corrupt("\(events.count) events, header says \(count)") }
            return StoreBatch(id: String(decoding: idBytes, as: UTF8.self), createdAt: created, events: events)
        }
    }

    private static func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out += $0 }
    }
}

/// Plain POSIX file operations with the fsyncs durability needs.
enum FileOps {
    static func errno(_ what: String) -> SpoolError {
        .io("\(what): \(String(cString: strerror(Glibc.errno)))")
    }

    /// ``PrivateFiles/writeDurably(_:tmp:final:directory:)``, failing as a spool does.
    static func writeDurably(_ bytes: [UInt8], tmp: String, final: String, directory: String) throws(SpoolError) {
        do {
            try PrivateFiles.writeDurably(bytes, tmp: tmp, final: final, directory: directory)
        } catch {
            throw .io(error.description)
        }
    }

    static func fsyncDirectory(_ path: String) throws(SpoolError) {
        do {
            try PrivateFiles.syncDirectory(path)
        } catch {
            throw .io(error.description)
        }
    }

    static func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw errno("open \(path)") }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw errno("stat \(path)") }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var got = 0
        try out.withUnsafeMutableBytes { b in
            while got < b.count {
                let n = Glibc.read(fd, b.baseAddress! + got, b.count - got)
                if n < 0 {
                    if Glibc.errno == EINTR { continue }
                    throw errno("read \(path)")
                }
                if n == 0 { break }
                got += n
            }
        }
        if got < out.count { out.removeLast(out.count - got) }
        return out
    }

    static func makeDirectory(_ path: String) throws {
        do {
            try PrivateFiles.makeDirectory(path)
        } catch {
            throw SpoolError.io(error.description)
        }
    }

    static func list(_ directory: String, suffix: String) -> [String] {
        guard let d = opendir(directory) else { return [] }
        defer { closedir(d) }
        var names: [String] = []
        while let entry = readdir(d) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name.hasSuffix(suffix) { names.append(name) }
        }
        return names.sorted()
    }

    static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }
}
