import NIOCore
import TallyWire

/// Feeds arbitrary bytes to the frame decoder: it must never crash, never loop, and whatever
/// it decodes must re-encode to a frame that decodes to the same value.
func fuzzOne(_ bytes: UnsafeRawBufferPointer) {
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

import Foundation

#if TALLY_FUZZ
/// libFuzzer's entry point for programs that keep their own `main` (SwiftPM renames an
/// executable's main, so libFuzzer's own main cannot be used).
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt
#endif

/// With the fuzzer (`-D TALLY_FUZZ -sanitize=fuzzer`): runs libFuzzer. Without it: replays
/// the files given as arguments (a corpus or a crash) through the same checks, so a finding
/// can be debugged with an ordinary build.
@main
struct FuzzWireDecoder {
    static func main() throws {
        #if TALLY_FUZZ
        var argc = CommandLine.argc
        var argv = Optional(CommandLine.unsafeArgv)
        exit(withUnsafeMutablePointer(to: &argv) { argvPointer in
            LLVMFuzzerRunDriver(&argc, UnsafeMutablePointer(mutating: argvPointer).withMemoryRebound(
                to: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?.self, capacity: 1) { $0 }) { data, size in
                fuzzOne(UnsafeRawBufferPointer(start: data, count: size))
                return 0
            }
        })
        #else
        for path in CommandLine.arguments.dropFirst() {
            let data = try Data(contentsOf: URL(fileURLWithPath: path))
            data.withUnsafeBytes { fuzzOne($0) }
        }
        print("replayed \(CommandLine.arguments.count - 1) inputs")
        #endif
    }
}
