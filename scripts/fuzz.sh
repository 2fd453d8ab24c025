#!/usr/bin/env bash
# Builds the wire-decoder fuzzer (Tests/Fuzz) with libFuzzer and ASan and runs it for a
# bounded time. Seed corpus: every vector in proto/vectors. Usage: scripts/fuzz.sh [seconds]
#
# SwiftPM names an executable's entry point itself, so libFuzzer's own main cannot be used:
# the harness links libFuzzer's no-main runtime and calls LLVMFuzzerRunDriver.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds="${1:-60}"
scratch=.build-fuzz
rt="$(dirname "$(dirname "$(readlink -f "$(command -v swiftc)")")")/lib/clang"
nomain="$(ls "$rt"/*/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a | head -n 1)"
flags=(--scratch-path "$scratch" --product tally-fuzz
    -Xswiftc -sanitize=address -Xswiftc -Xfrontend -Xswiftc -sanitize=fuzzer,address
    -Xswiftc -D -Xswiftc TALLY_FUZZ -Xlinker "$nomain" -Xlinker -lstdc++)
swift build "${flags[@]}" 2>&1 | grep -v "warning: Cannot export local symbol" | tail -n 3
bin="$(swift build "${flags[@]}" --show-bin-path)/tally-fuzz"
corpus="$scratch/corpus"
mkdir -p "$corpus"
python3 - "$corpus" <<'PY'
import json, sys, pathlib
out = pathlib.Path(sys.argv[1])
for f in ("valid.json", "invalid.json"):
    for v in json.load(open(f"proto/vectors/{f}")):
        (out / v["name"]).write_bytes(bytes.fromhex(v["hex"]))
PY
echo "fuzzing the wire decoder for ${seconds}s"
"$bin" -max_total_time="$seconds" -max_len=4096 -print_final_stats=1 "$corpus" > "$scratch/fuzz.log" 2>&1 || {
    tail -n 40 "$scratch/fuzz.log"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
}
grep -E "stat::number_of_executed_runs|stat::new_units_added|cov:" "$scratch/fuzz.log" | tail -n 3
echo "fuzz: 1 passed, 0 failed"
