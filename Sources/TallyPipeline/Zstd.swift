import CZstd

/// A reusable zstd compression context (one per flusher thread; contexts are not thread-safe).
final class ZstdCompressor {
    private let ctx: OpaquePointer
    let level: Int32

    init(level: Int32 = 1) {
        ctx = ZSTD_createCCtx()
        self.level = level
    }

    deinit { ZSTD_freeCCtx(ctx) }

    func compress(_ input: UnsafeRawBufferPointer) throws -> [UInt8] {
        let bound = ZSTD_compressBound(input.count)
        var out = [UInt8](repeating: 0, count: bound)
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_compressCCtx(ctx, o.baseAddress, bound, input.baseAddress, input.count, level)
        }
        guard ZSTD_isError(n) == 0 else { throw SpoolError.compression(String(cString: ZSTD_getErrorName(n))) }
        out.removeLast(bound - n)
        return out
    }
}

enum Zstd {
    /// Decompresses into exactly `expectedSize` bytes, failing on any other size.
    static func decompress(_ input: UnsafeRawBufferPointer, expectedSize: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: expectedSize)
        let n = out.withUnsafeMutableBytes { o in
            ZSTD_decompress(o.baseAddress, expectedSize, input.baseAddress, input.count)
        }
        guard ZSTD_isError(n) == 0 else { throw SpoolError.corrupt("zstd: \(String(cString: ZSTD_getErrorName(n)))") }
        guard n == expectedSize else { throw SpoolError.corrupt("decompressed \(n) bytes, header says \(expectedSize)") }
        return out
    }
}
