#!/usr/bin/env bash
# kill -9 crash test: SIGKILLs a running collector at random moments while senders post
# events with ?ack=durable, then checks that no acknowledged event was lost and none was
# stored twice. All arguments go to scripts/crash_test.py (--kills N, --senders K,
# --seconds-between-kills MIN MAX, --seed S, --binary PATH, ...).
# Binary: $TALLY_BIN, else .build/release/tally if built, else .build/debug/tally.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${TALLY_BIN:-}" ]]; then
    bin="$TALLY_BIN"
elif [[ -x .build/release/tally ]]; then
    bin=.build/release/tally
else
    bin=.build/debug/tally
fi
exec python3 scripts/crash_test.py --binary "$bin" "$@"
