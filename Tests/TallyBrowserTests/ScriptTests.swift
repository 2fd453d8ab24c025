import CZlib
import Testing
@testable import TallyBrowser

@Suite struct ScriptTests {
    static func gunzip(_ data: [UInt8]) -> [UInt8]? {
        var stream = z_stream()
        guard inflateInit2_(&stream, 15 + 16, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var input = data
        var output = [UInt8](repeating: 0, count: 1 << 16)
        let n: Int? = input.withUnsafeMutableBufferPointer { i in
            output.withUnsafeMutableBufferPointer { o in
                stream.next_in = i.baseAddress
                stream.avail_in = UInt32(i.count)
                stream.next_out = o.baseAddress
                stream.avail_out = UInt32(o.count)
                return inflate(&stream, Z_FINISH) == Z_STREAM_END ? o.count - Int(stream.avail_out) : nil
            }
        }
        return n.map { Array(output.prefix($0)) }
    }

    @Test func theGzippedScriptIsUnderOneKiBAndDecompressesToTheSource() {
        let route = ScriptRoute()
        let gz = Array(route.gzipped.readableBytesView)
        #expect(gz.count <= 1024, "\(gz.count) bytes gzipped")
        #expect(gz.starts(with: [0x1F, 0x8B]))
        #expect(Self.gunzip(gz) == Array(TrackingScript.source.utf8))
        #expect(route.etag.count == 26 && route.etag.hasPrefix("\"") && route.etag.hasSuffix("\""))
    }
}
