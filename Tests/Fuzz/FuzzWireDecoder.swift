import NIOCore
import TallyWire

/// Feeds arbitrary bytes to the frame decoder: it must never crash, never loop, and whatever
/// it decodes must re-encode to a frame that decodes to the same value.
func fuzzWire(_ bytes: UnsafeRawBufferPointer) {
    var buffer = ByteBuffer(bytes: bytes)
    var steps = 0
    while buffer.readableBytes > 0 {
        steps += 1
        precondition(steps <= bytes.count + 1, "decoder made no progress")
        let before = buffer.readableBytes
        do {
            guard case .frame(let frame) = try FrameDecoder.decode(&buffer) else { return }
            var again = ByteBuffer()
            FrameEncoder.write(frame, into: &again)
            if case .frame(let back) = try FrameDecoder.decode(&again) {
                precondition(back == frame, "re-encoded frame decodes differently")
            } else {
                preconditionFailure("re-encoded frame incomplete")
            }
        } catch {
            if !error.reason.headerWasSound { return }
            precondition(buffer.readableBytes < before, "rejection consumed nothing")
        }
    }
}
