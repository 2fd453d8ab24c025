extension String {
    /// `bytes` as a `String` when they are valid UTF-8, nil otherwise: what every decoder of
    /// untrusted text (JSON values, wire strings) uses.
    ///
    /// The standard library's `String(validating:as:)` is generic over the encoding and looks
    /// up type metadata on every call; on a TCP load that was about 8 % of the server's CPU.
    /// Here ASCII (nearly all analytics text) costs one word-at-a-time scan plus the copy;
    /// other text is decoded with repair and kept only when nothing was repaired, i.e. its
    /// UTF-8 is the input byte for byte.
    public init?(checkedUTF8 bytes: UnsafeRawBufferPointer) {
        let u = bytes.assumingMemoryBound(to: UInt8.self)
        let s = String(decoding: u, as: UTF8.self)
        if !Self.isASCII(bytes) {
            guard s.utf8.count == u.count, s.utf8.elementsEqual(u) else { return nil }
        }
        self = s
    }

    static func isASCII(_ bytes: UnsafeRawBufferPointer) -> Bool {
        var i = 0
        let n = bytes.count
        while i + 8 <= n {
            if bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self) & 0x8080_8080_8080_8080 != 0 { return false }
            i += 8
        }
        while i < n {
            if bytes[i] & 0x80 != 0 { return false }
            i += 1
        }
        return true
    }
}
