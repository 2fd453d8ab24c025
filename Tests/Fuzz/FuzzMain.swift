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

/// The harness `TALLY_FUZZ_TARGET` names: `wire` (the default) or `json`.
let fuzzOne: @Sendable (UnsafeRawBufferPointer) -> Void =
    ProcessInfo.processInfo.environment["TALLY_FUZZ_TARGET"] == "json" ? fuzzJSON : fuzzWire

/// With the fuzzer (`-D TALLY_FUZZ -sanitize=fuzzer`): runs libFuzzer. Without it: replays
/// the files given as arguments (a corpus or a crash) through the same checks, so a finding
/// can be debugged with an ordinary build.
@main
struct FuzzMain {
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
