#!/usr/bin/env bash
# Builds the fuzz harnesses (Tests/Fuzz) with libFuzzer and ASan and runs each one: the wire
# decoder (seed corpus: every vector in proto/vectors) and the JSON body reader, fast path
# against strict reader (seed corpus: the bodies below, with a dictionary of JSON tokens).
# Usage: scripts/fuzz.sh [seconds per harness]   or   scripts/fuzz.sh --runs N
#
# SwiftPM names an executable's entry point itself, so libFuzzer's own main cannot be used:
# the harness links libFuzzer's no-main runtime and calls LLVMFuzzerRunDriver.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--runs" ]; then limit=(-runs="$2"); what="$2 executions"; else limit=(-max_total_time="${1:-60}"); what="${1:-60}s"; fi
scratch=.build-fuzz
rt="$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/clang"
nomain="$(ls "$rt"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -n 1)"
flags=(--scratch-path "$scratch" --product tally-fuzz
    -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer,address
    -Xswiftc -D -Xswiftc TALLY_FUZZ -Xlinker "$nomain" -Xlinker -lstdc++)
swift build "${flags[@]}" 2>&1 | grep -v "warning: Cannot export local symbol" | tail -n 3
bin="$(swift build "${flags[@]}" --show-bin-path)/tally-fuzz"
mkdir -p "$scratch/corpus-wire" "$scratch/corpus-json"
python3 - "$scratch" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for f in ("valid.json", "invalid.json"):
    for v in json.load(open(f"proto/vectors/{f}")):
        (out / "corpus-wire" / v["name"]).write_bytes(bytes.fromhex(v["hex"]))
bodies = [
    '{"site_id":"s","event_type":"page_view","path":"/a","user_id":"u","timestamp":"2025-11-14T12:00:00Z"}',
    '[{"site_id":"s","event_type":"page_view"},{"site_id":"t","event_type":"click","path":null}]',
    '{"site_id":"s","event_type":"page_view"}\n{"site_id":"s","event_type":"click","user_id":"u"}\n',
    '{"site\\u005fid":"caf\\u00e9\\ud83d\\ude00","event_type":"t","x":[1,-0.5e+3,true,false,null,{"y":{}}]}',
    '[{},7,"x",{"site_id":"s","event_type":"t","timestamp":"2025-01-01T00:00:00.123+02:00"}]',
]
for i, b in enumerate(bodies):
    (out / "corpus-json" / f"seed{i}").write_bytes(b.encode())
tokens = ['"site_id"', '"event_type"', '"path"', '"user_id"', '"timestamp"', '"page_view"', 'null', 'true', 'false',
          '\\u', '\\ud800', '\\udc00', '{', '}', '[', ']', ',', ':', '"', '\\\\', '-0.5e+3', '\\n']
(out / "json.dict").write_text("".join(f'"{t.replace(chr(92), chr(92)*2).replace(chr(34), chr(92)+chr(34))}"\n' for t in tokens))
PY
failed=0
for target in wire json; do
    echo "fuzzing the $target harness for $what"
    extra=(); [ "$target" = json ] && extra=(-dict="$scratch/json.dict")
    if TALLY_FUZZ_TARGET=$target "$bin" "${limit[@]}" "${extra[@]}" -max_len=4096 -print_final_stats=1 \
        "$scratch/corpus-$target" > "$scratch/fuzz-$target.log" 2>&1; then
        grep -E "stat::number_of_executed_units|stat::average_exec_per_sec|stat::new_units_added" "$scratch/fuzz-$target.log" | tr '\n' ' '; echo
    else
        tail -n 40 "$scratch/fuzz-$target.log"
        failed=1
    fi
done
if [ $failed = 0 ]; then echo "fuzz: 1 passed, 0 failed"; else echo "fuzz: 0 passed, 1 failed"; exit 1; fi
